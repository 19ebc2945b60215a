/* SPDX-License-Identifier: BSD-3-Clause */
/* Pending invalidations of a connection, counted by key: what keeps
 * one-sided reads (client_shm.c) behind the deletes of their keys that are
 * ordered but not answered yet (the argument: above remoca_delete in
 * client_ops.c).
 *
 *   sender (send_lock held)            reader (recv_lock held)
 *   ─────────────────────────          ───────────────────────────────────
 *   DELETE key,count ordered ─▶ record {id, op, key, count} at the tail,
 *                               +1 in every stripe [key, key+count) touches
 *                               (or in global: see below)
 *                                      response id read ─▶ record taken by
 *                                      id (the head, memd answering in
 *                                      order), echo checked against it,
 *                                      -1 where it counted +1
 *   one-sided reader: global == 0 and every stripe of its frame == 0?
 *
 *   stripe(k) = (k / INVAL_STRIPE_KEYS) % INVAL_STRIPES
 *
 * Counted in global instead of stripes: POOL_RESET (every key), a delete
 * spanning more than INVAL_SPAN_MAX stripes, and any invalidation ordered
 * while the record ring is full (then it has no record; an invalidation
 * answered in this epoch with no record counts global down, as long as
 * such unrecorded ones are pending).
 *
 * Why a record and not the response's echo alone: memd echoes the request's
 * key and count, but the client would then unlock whatever stripes a server
 * names.  Counting down from what was sent keeps the count exact whatever
 * comes back; the echo is checked against the record, and a mismatch is a
 * protocol error (the connection goes, which resets every count).  The ring
 * is in id order (ids are assigned and records pushed under send_lock), so
 * with memd the answer matches the head; a server answering out of order
 * (the unit tests' fake) costs a short scan.
 */
#include <stdio.h>
#include <string.h>

#include "client_conn.h"

/* Whether [key, key+count) is counted in stripes: first stripe number
 * (before the modulo) and how many; false: globally. */
static bool stripe_span(uint8_t op, uint64_t key, uint64_t count, uint64_t *first, unsigned *n)
{
    if (op == REMOCA_OP_POOL_RESET || op == REMOCA_OP_POOL_KEEP || !remoca_range_ok(key, count))
        return false;
    uint64_t a = key / INVAL_STRIPE_KEYS, z = (key + (count - 1)) / INVAL_STRIPE_KEYS;
    if (z - a >= INVAL_SPAN_MAX) return false;
    *first = a;
    *n = (unsigned)(z - a + 1);
    return true;
}

/* +1 (or -1, never below zero) where an invalidation counts. */
static void count_up(struct conn *cn, uint8_t op, uint64_t key, uint64_t count)
{
    uint64_t a;
    unsigned n;
    if (!stripe_span(op, key, count, &a, &n)) {
        atomic_fetch_add(&cn->inval_global, 1);
        return;
    }
    for (unsigned i = 0; i < n; i++)
        atomic_fetch_add(&cn->inval_stripe[(a + i) % INVAL_STRIPES], 1);
}

static void dec_clamped(atomic_int *v)
{
    int x = atomic_load(v);
    while (x > 0 && !atomic_compare_exchange_weak(v, &x, x - 1))
        ;
}

static void count_down(struct conn *cn, uint8_t op, uint64_t key, uint64_t count)
{
    uint64_t a;
    unsigned n;
    if (!stripe_span(op, key, count, &a, &n)) {
        dec_clamped(&cn->inval_global);
        return;
    }
    for (unsigned i = 0; i < n; i++) dec_clamped(&cn->inval_stripe[(a + i) % INVAL_STRIPES]);
}

void rc_inval_restart(struct conn *cn)
{
    atomic_store(&cn->inval_global, 0);
    for (unsigned i = 0; i < INVAL_STRIPES; i++) atomic_store(&cn->inval_stripe[i], 0);
    cn->inval_head = cn->inval_tail = 0;
    cn->inval_unrecorded = 0;
    cn->inval_epoch_id = cn->next_id;
}

void rc_inval_ordered(struct conn *cn, const struct frame *f, unsigned n, uint32_t id0)
{
    bool locked = false;
    for (unsigned i = 0; i < n; i++) {
        if (!rc_op_invalidates(f[i].op)) continue;
        if (!locked) pthread_mutex_lock(&cn->lock), locked = true;
        if (cn->inval_tail - cn->inval_head < INVAL_RECS) {
            cn->inval_rec[cn->inval_tail++ % INVAL_RECS] = (struct inval_rec){
                .key = f[i].key, .id = id0 + i, .count = f[i].count, .op = f[i].op, .live = true};
            count_up(cn, f[i].op, f[i].key, f[i].count);
        } else {
            atomic_fetch_add(&cn->inval_global, 1); /* unrecorded: see the top */
            cn->inval_unrecorded++;
        }
    }
    if (locked) pthread_mutex_unlock(&cn->lock);
}

/* Serial-number order of request ids (they wrap). */
static bool id_before(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }

int rc_inval_take(struct conn *cn, const struct remoca_hdr *h, struct inval_rec *rec)
{
    if (id_before(h->id, cn->inval_epoch_id)) return -1; /* before the rebuild */
    int found = 0;
    for (uint32_t i = cn->inval_head; i != cn->inval_tail; i++) {
        struct inval_rec *r = &cn->inval_rec[i % INVAL_RECS];
        if (!r->live) continue;
        if (r->id == h->id) {
            *rec = *r;
            r->live = false;
            found = 1;
            break;
        }
        if (id_before(h->id, r->id)) break; /* ids ascend: not recorded */
    }
    while (cn->inval_head != cn->inval_tail && !cn->inval_rec[cn->inval_head % INVAL_RECS].live)
        cn->inval_head++;
    if (!found && rc_op_invalidates(h->op) && cn->inval_unrecorded > 0) {
        cn->inval_unrecorded--;
        found = 2;
    }
    return found;
}

int rc_inval_check_echo(const struct inval_rec *rec, const struct remoca_hdr *h, char *why,
                        size_t whylen)
{
    if (rec->op == h->op && rec->key == h->key && rec->count == h->count) return 0;
    snprintf(why, whylen,
             "protocol error: response id %u echoes %s key %llu count %u, sent %s key %llu "
             "count %u",
             h->id, remoca_op_name(h->op), (unsigned long long)h->key, h->count,
             remoca_op_name(rec->op), (unsigned long long)rec->key, rec->count);
    return -1;
}

/* A response read (client_recv.c, recv_lock held; for an error reply after
 * reset_on_error, so that an invalidation that failed stops one-sided reads
 * by clearing UP before it stops counting): if it answers an invalidation
 * of the current pool state, it no longer counts as pending.
 *
 * Why the counts stay exact, and can neither go below zero nor stay above
 * it for good.  They are set to 0, the records dropped, and inval_epoch_id
 * set to the next request id, only when the pool state is rebuilt: at
 * install after the handshake (a new socket: nothing of the old one can be
 * read) and at the end of a quarantine drain (client_conn.c), both before
 * UP, while no invalidation can be ordered (senders need UP) and nobody
 * else reads (the drain holds recv_lock; at install there is no reader of
 * the new socket before UP).  From then on every invalidation ordered on
 * the incarnation is counted, before the frame can reach the server, in the
 * stripes of its keys (or globally), and its response -- its record taken
 * by id, at most once -- counts down exactly there.  Responses from before
 * the rebuild -- those the drain skipped without counting, and any a server
 * answering out of order (the unit tests' fake) sends after the
 * POOL_RESET's answer -- carry ids older than inval_epoch_id and are
 * ignored, so every decrement matches a distinct counted frame whose answer
 * was read: each count is the number of invalidations of this incarnation
 * not answered yet that touch it, never negative (the clamps only guard
 * against a server answering an id twice while invalidations without a
 * record are pending).  None stays above 0: every counted frame is either
 * answered on this incarnation -- the lazy reads (the connection thread
 * reads what is pending at least every 250 ms, and any socket get reads on
 * until its own answer) read its response -- or the incarnation ends
 * (quarantine or teardown: both rebuild, and reset the counts, before UP
 * again).  A counted frame whose send failed also ends the incarnation. */
void rc_inval_answered(struct conn *cn, int taken, const struct inval_rec *rec)
{
    if (taken == 1)
        count_down(cn, rec->op, rec->key, rec->count);
    else if (taken == 2)
        dec_clamped(&cn->inval_global); /* ordered while the ring was full */
}

bool rc_inval_clear(struct conn *cn, uint64_t key, uint32_t count)
{
    if (atomic_load(&cn->inval_global) > 0) return false;
    uint64_t a;
    unsigned n;
    if (!stripe_span(REMOCA_OP_DELETE, key, count, &a, &n)) return false;
    for (unsigned i = 0; i < n; i++)
        if (atomic_load(&cn->inval_stripe[(a + i) % INVAL_STRIPES]) > 0) return false;
    return true;
}
