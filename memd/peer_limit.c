/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-peer connection counts for --max-conns-per-addr (see peer_limit.h). */
#include "peer_limit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

void peer_table_init(struct peer_table *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
}

void peer_table_free(struct peer_table *t)
{
    free(t->slots);
    t->slots = NULL;
    t->cap = t->used = 0;
    pthread_mutex_destroy(&t->lock);
}

void peer_key_of(int fd, const struct sockaddr *sa, struct peer_key *k)
{
    memset(k, 0, sizeof *k);
    if (sa->sa_family == AF_INET) {
        k->kind = PEER_IPV4;
        memcpy(k->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            k->kind = PEER_IPV4;
            memcpy(k->addr, a->s6_addr + 12, 4);
        } else {
            k->kind = PEER_IPV6;
            memcpy(k->addr, a->s6_addr, 16);
        }
    } else if (sa->sa_family == AF_UNIX) {
        struct ucred cr;
        socklen_t len = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && len == sizeof cr) {
            uint32_t uid = (uint32_t)cr.uid;
            k->kind = PEER_UID;
            memcpy(k->addr, &uid, sizeof uid);
        }
    }
}

static uint32_t hash(const struct peer_key *k)
{
    uint64_t h = 0xcbf29ce484222325ull ^ k->kind; /* FNV-1a */
    for (int i = 0; i < 16; i++) h = (h ^ k->addr[i]) * 0x100000001b3ull;
    return (uint32_t)(h ^ (h >> 32));
}

static bool same(const struct peer_key *a, const struct peer_key *b)
{
    return a->kind == b->kind && memcmp(a->addr, b->addr, sizeof a->addr) == 0;
}

/* The slot holding k, or the empty slot where it would go. */
static struct peer_slot *find(struct peer_table *t, const struct peer_key *k)
{
    uint32_t mask = t->cap - 1;
    for (uint32_t i = hash(k) & mask;; i = (i + 1) & mask) {
        struct peer_slot *s = &t->slots[i];
        if (!s->count || same(&s->key, k)) return s;
    }
}

static bool grow(struct peer_table *t)
{
    uint32_t ncap = t->cap ? t->cap * 2 : 64;
    struct peer_slot *old = t->slots;
    uint32_t ocap = t->cap;
    t->slots = calloc(ncap, sizeof *t->slots);
    if (!t->slots) {
        t->slots = old;
        return false;
    }
    t->cap = ncap;
    for (uint32_t i = 0; i < ocap; i++)
        if (old[i].count) *find(t, &old[i].key) = old[i];
    free(old);
    return true;
}

bool peer_acquire(struct peer_table *t, const struct peer_key *k, unsigned max)
{
    if (k->kind == PEER_NONE) return true;
    bool ok = false;
    pthread_mutex_lock(&t->lock);
    if ((t->used + 1) * 2 > t->cap && !grow(t)) goto out;
    struct peer_slot *s = find(t, k);
    if (s->count >= max) goto out;
    if (!s->count) {
        s->key = *k;
        t->used++;
    }
    s->count++;
    ok = true;
out:
    pthread_mutex_unlock(&t->lock);
    return ok;
}

void peer_release(struct peer_table *t, const struct peer_key *k)
{
    if (k->kind == PEER_NONE) return;
    pthread_mutex_lock(&t->lock);
    struct peer_slot *s = t->cap ? find(t, k) : NULL;
    if (s && s->count && --s->count == 0) {
        /* Backward-shift deletion: move each later entry of the run into the
         * hole if the hole lies between its home slot and its slot. */
        uint32_t mask = t->cap - 1, hole = (uint32_t)(s - t->slots);
        for (uint32_t j = (hole + 1) & mask; t->slots[j].count; j = (j + 1) & mask) {
            uint32_t home = hash(&t->slots[j].key) & mask;
            if (((j - home) & mask) >= ((j - hole) & mask)) {
                t->slots[hole] = t->slots[j];
                t->slots[j].count = 0;
                hole = j;
            }
        }
        t->used--;
    }
    pthread_mutex_unlock(&t->lock);
}

unsigned peer_count(struct peer_table *t, const struct peer_key *k)
{
    pthread_mutex_lock(&t->lock);
    unsigned n = t->cap ? find(t, k)->count : 0;
    pthread_mutex_unlock(&t->lock);
    return n;
}

void peer_key_str(const struct peer_key *k, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    uint32_t uid;
    switch (k->kind) {
    case PEER_IPV4: snprintf(buf, len, "%s", inet_ntop(AF_INET, k->addr, ip, sizeof ip)); break;
    case PEER_IPV6: snprintf(buf, len, "[%s]", inet_ntop(AF_INET6, k->addr, ip, sizeof ip)); break;
    case PEER_UID:
        memcpy(&uid, k->addr, sizeof uid);
        snprintf(buf, len, "uid %u", uid);
        break;
    default: snprintf(buf, len, "-");
    }
}
