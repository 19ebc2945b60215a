/* SPDX-License-Identifier: BSD-3-Clause */
/* Eviction policies (see policy.h for the algorithms and the measurements). */
#include "policy.h"

static void q_push_head(struct store *s, struct queue *q, uint32_t i, uint8_t which)
{
    struct slot *e = &s->slots[i];
    e->queue = which;
    e->prev = MEMD_NIL;
    e->next = q->head;
    if (q->head != MEMD_NIL)
        s->slots[q->head].prev = i;
    else
        q->tail = i;
    q->head = i;
    q->len++;
}

static void q_remove(struct store *s, struct queue *q, uint32_t i)
{
    struct slot *e = &s->slots[i];
    if (e->prev != MEMD_NIL)
        s->slots[e->prev].next = e->next;
    else
        q->head = e->next;
    if (e->next != MEMD_NIL)
        s->slots[e->next].prev = e->prev;
    else
        q->tail = e->prev;
    e->prev = e->next = MEMD_NIL;
    q->len--;
}

static void q_move_head(struct store *s, struct pool *p, uint32_t i, uint8_t to)
{
    q_remove(s, &p->q[s->slots[i].queue], i);
    q_push_head(s, &p->q[to], i, to);
}

void policy_insert(struct store *s, struct pool *p, uint32_t i, bool was_ghost)
{
    s->slots[i].freq = 0;
    switch (s->policy) {
    case POLICY_S3FIFO:
    case POLICY_2Q: q_push_head(s, &p->q[was_ghost ? 1 : 0], i, was_ghost ? 1 : 0); break;
    default: q_push_head(s, &p->q[0], i, 0); break;
    }
}

void policy_hit(struct store *s, struct pool *p, uint32_t i)
{
    struct slot *e = &s->slots[i];
    switch (s->policy) {
    case POLICY_LRU:
        if (p->q[0].head != i) q_move_head(s, p, i, 0);
        break;
    case POLICY_CLOCK: e->freq = 1; break;
    case POLICY_S3FIFO:
        if (e->freq < 3) e->freq++;
        break;
    case POLICY_2Q:
        if (e->queue == 1 && p->q[1].head != i) q_move_head(s, p, i, 1);
        break;
    default: break;
    }
}

void policy_unlink(struct store *s, struct pool *p, uint32_t i)
{
    q_remove(s, &p->q[s->slots[i].queue], i);
}

uint32_t policy_victim(struct store *s, struct pool *p)
{
    if (p->pages == 0) return MEMD_NIL;
    switch (s->policy) {
    case POLICY_LRU: return p->q[0].tail;
    case POLICY_CLOCK:
        for (;;) {
            uint32_t t = p->q[0].tail;
            if (!s->slots[t].freq) return t;
            s->slots[t].freq = 0;
            q_move_head(s, p, t, 0);
        }
    case POLICY_S3FIFO:
        for (;;) {
            struct queue *small = &p->q[0], *main = &p->q[1];
            if (small->len > 0 && (small->len * 10 >= p->pages || main->len == 0)) {
                uint32_t t = small->tail;
                if (!s->slots[t].freq) return t;
                s->slots[t].freq = 0;
                q_move_head(s, p, t, 1); /* used while in small: promote */
            } else {
                uint32_t t = main->tail;
                if (!s->slots[t].freq) return t;
                s->slots[t].freq--;
                q_move_head(s, p, t, 1);
            }
        }
    case POLICY_2Q: {
        /* Full 2Q: A1in is a FIFO (hits there do not move pages), its
         * victims become ghosts (A1out); a ghost hit enters Am. */
        struct queue *in = &p->q[0], *am = &p->q[1];
        if (in->len > 0 && (in->len * 4 >= p->pages || am->len == 0)) return in->tail;
        return am->tail;
    }
    default: return p->q[0].tail;
    }
}
