/* SPDX-License-Identifier: BSD-3-Clause */
/* --max-conns-per-addr: open connections counted per peer, so that one
 * address cannot take all of --max-conns (connection floods, a runaway
 * client).  The acceptor asks before handing a connection to a worker; the
 * worker that closes it gives the slot back.
 *
 * A peer is its source IP address for TCP (an IPv4-mapped IPv6 address counts
 * as the IPv4 one; the port is ignored), and its user id (SO_PEERCRED) for a
 * unix socket: local clients cannot spoof it, and everything one local user
 * runs shares that user's allowance.
 *
 *   peer_table (one mutex: taken once per accept and once per close)
 *   slots[cap], open addressing, linear probing, no tombstones:
 *     [ key{kind, addr[16]} count ] [ empty ] [ key count ] ...
 *   a key whose count drops to 0 is removed by shifting the run after it
 *   back, so lookups stop at the first empty slot; cap doubles at half full.
 */
#ifndef MEMD_PEER_LIMIT_H
#define MEMD_PEER_LIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

enum peer_kind { PEER_NONE = 0, PEER_IPV4, PEER_IPV6, PEER_UID };

struct peer_key {
    uint8_t kind;     /* enum peer_kind; PEER_NONE is never counted */
    uint8_t addr[16]; /* IPv4: first 4 bytes; uid: first 4 bytes (host order) */
};

struct peer_slot {
    struct peer_key key;
    uint32_t count; /* 0 = empty slot */
};

struct peer_table {
    pthread_mutex_t lock;
    struct peer_slot *slots;
    uint32_t cap, used; /* cap: power of two or 0 */
};

void peer_table_init(struct peer_table *t);
void peer_table_free(struct peer_table *t);

/* The peer of an accepted connection: from its address (TCP) or, for
 * AF_UNIX, from SO_PEERCRED on fd.  kind PEER_NONE if neither is known. */
void peer_key_of(int fd, const struct sockaddr *sa, struct peer_key *k);

/* Takes one connection slot for k; false if k already has max (or memory
 * for the table ran out).  A PEER_NONE key is always allowed, not counted. */
bool peer_acquire(struct peer_table *t, const struct peer_key *k, unsigned max);
/* Gives back a slot taken by peer_acquire. */
void peer_release(struct peer_table *t, const struct peer_key *k);
/* Open connections counted for k (tests). */
unsigned peer_count(struct peer_table *t, const struct peer_key *k);
/* For logs: "1.2.3.4", "[::1]" or "uid 1000". */
void peer_key_str(const struct peer_key *k, char *buf, size_t len);

#endif
