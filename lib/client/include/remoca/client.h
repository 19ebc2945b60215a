/* SPDX-License-Identifier: BSD-3-Clause */
/* libremoca client core: connections to one or many memory servers.
 *
 *   caller threads (e.g. nbdkit's 16)        one connection per server
 *   ┌─────────┐ remoca_get(key, n) ┌──────────────────────────────────┐
 *   │ thread 1│ ──────────────────▶│ placement: key range -> server   │
 *   │ thread 2│ ── remoca_put ────▶│ send lock: frame written in call │ ──▶ remoca-memd A
 *   │   ...   │                    │ order; waiter table by req id    │ ──▶ remoca-memd B
 *   └─────────┘ ◀── wake on reply ─│ receiver thread per connection   │
 *                                  └──────────────────────────────────┘
 *
 * Contract (the cache engine depends on every line of it):
 * - Thread-safe. Many requests are in flight on one connection, matched by id.
 * - Ordering: a call is *ordered* when it returns, or, for the no-wait forms,
 *   when it has been handed to its connection.  Two calls on the same key from
 *   any threads reach the server in the order in which they were ordered, on
 *   the same connection, and the server executes them in that order.  So a
 *   caller holding a lock across a no-wait put knows that any later delete of
 *   that key is executed after the put.  No-wait frames may wait up to about
 *   a millisecond in their connection's send queue before they are written
 *   (batched with the next write on that connection, whatever its thread),
 *   so another connection of the server may not see them at once; on this
 *   client's own connection nothing ever overtakes them.
 * - Failure is a miss: a dead, hung or erroring server makes gets return no
 *   hits and puts/deletes be dropped; no call blocks longer than about the
 *   timeout.  A request that times out takes its connection out of service
 *   until the pool has been reset on the server (a lost delete must not be
 *   followed by gets on the same pool state): a dead server's connection is
 *   closed and reconnected; a hung one is quarantined and gets its POOL_RESET
 *   on the same connection, behind the requests it has not executed yet, so
 *   none of those can run after the reset (lib/client/client_conn.c).
 * - One-sided reads (opts.shm, a co-located remoca-memd run with --shm, over
 *   a unix socket): a get (not a take) on a connection that maps the server's
 *   page store is served by reading that memory (lib/wire/include/remoca/shm.h), with
 *   no frame sent.  It sees the server's state at the moment of its copy, not
 *   the wire order: a no-wait put still queued on the connection is a miss.
 *   Deletes stay no-wait: while an invalidation of a key ordered on the
 *   connection has not been answered, gets of that key (of a frame that
 *   includes it) are sent over the socket instead (behind the
 *   invalidation), so a get that starts after a no-wait delete returned
 *   never sees a page it removes (lib/client/client_ops.c).
 * - Reconnect resets: before a reconnected server is used again, the client
 *   re-opens its pool and resets it (docs/design.md, contract 4), since
 *   invalidations may have been lost while it was unreachable.
 * - Placement: keys are placed in chunks of REMOCA_PLACEMENT_CHUNK consecutive
 *   keys by weighted rendezvous hashing over the server list
 *   (remoca/placement.h), so a multi-block read usually goes to one server,
 *   and losing a server loses only its share.  A server that is down keeps
 *   its share: its keys miss until it is back (or removed from the list).
 * - Membership: remoca_client_set_servers changes the list at runtime without
 *   a stale read: it waits for the calls in flight, swaps the placement, and
 *   tells every server that stays and is up to drop the chunks it no longer
 *   owns (POOL_KEEP) before any call is routed by the new placement; a server
 *   that joins (or returns) is reset on connect, as always; one that leaves
 *   has its pool reset behind everything sent to it, then its connection
 *   closed (lib/client/client_members.c has the argument).
 */
#ifndef REMOCA_CLIENT_H
#define REMOCA_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "remoca/placement.h" /* REMOCA_PLACEMENT_CHUNK, REMOCA_MAX_SERVERS, weights */
#include "remoca/wire.h"

#define REMOCA_DEFAULT_TIMEOUT_MS 1000u /* per request, when opts.timeout_ms is 0 */

struct remoca_client;

struct remoca_client_opts {
    const char *servers;  /* "host:port[,host:port|unix:/path...]", an entry may end in
                             "*W": placement weight 1..16 (default 1) */
    const char *pool;     /* pool name, e.g. "vm42/vda" */
    const char *name;     /* client name for server logs; NULL = "libremoca" */
    const char *secret;   /* shared secret for servers run with --secret (HMAC-SHA256
                             challenge-response, never sent itself); NULL = none */
    unsigned timeout_ms;  /* per request; 0 = 1000 */
    uint64_t pool_min;    /* bytes; 0 = none */
    uint64_t pool_max;    /* bytes; 0 = server budget */
    uint32_t pool_weight; /* 0 = 1 */
    /* Optional log sink (zero-initialised opts keep the default): level is
     * REMOCA_LOG_*; msg has no newline.
     * NULL = errors and warnings go to stderr, prefixed "libremoca: ". */
    void (*log)(void *opaque, int level, const char *msg);
    void *log_opaque;
    /* One-sided reads from a co-located server (0 = on): on a
     * unix-socket server that offers its page store (remoca-memd --shm), map
     * it and serve gets from it.  A server that does not offer it is used
     * over the socket as before. */
    enum remoca_shm_opt { REMOCA_SHM_ON = 0, REMOCA_SHM_OFF = 1 } shm;
    /* Sealed pool (false = plain): every POOL_OPEN on every server carries
     * REMOCA_F_SEALED, so the pool stores a REMOCA_SIDE_SIZE (32) byte
     * sidecar with each page (docs/protocol.md, Sealed pools); a server
     * whose pool exists with the other kind refuses it (the server stays
     * down, logged).  Only remoca_get_sealed and remoca_put_sealed work then;
     * one-sided reads (opts.shm) copy page and sidecar, and no-wait puts
     * through a fill ring carry the sidecar too. */
    bool sealed;
};

#define REMOCA_LOG_ERROR 0
#define REMOCA_LOG_WARN 1
#define REMOCA_LOG_INFO 2 /* server up/down transitions */
#define REMOCA_LOG_DEBUG 3

/* Creates a client and starts connecting.  Fails only on a configuration error
 * (bad server list, bad pool name), with a message in err.  A server that is
 * down at start is simply retried in the background (its keys miss). */
struct remoca_client *remoca_client_new(const struct remoca_client_opts *opts, char *err,
                                        size_t errlen);
void remoca_client_free(struct remoca_client *c);

/* Replaces the server list (the syntax of opts.servers) while calls go on.
 * Servers in both lists keep their connections; new ones connect in the
 * background (reset first, as always); removed ones have their pool reset and
 * their connection closed.  Waits for the calls in flight and for the
 * servers that stay to answer POOL_KEEP (about a timeout at worst), during
 * which new calls wait.  0, or -1 with a message in err (bad list: the old
 * one stays). */
int remoca_client_set_servers(struct remoca_client *c, const char *list, char *err, size_t errlen);

/* Waits up to timeout_ms until every server is connected; returns how many are. */
unsigned remoca_client_wait_ready(struct remoca_client *c, unsigned timeout_ms);

/* Gets keys [key, key+count), count <= REMOCA_MAX_BATCH * servers (split per
 * server internally).  For each hit, writes the page at pages + i*4096 and
 * sets bit i of hits (hits[i/64] >> (i%64) & 1); hits[0 .. (count+63)/64)
 * is overwritten (misses are 0 bits).  Pages of misses are left untouched,
 * except by one-sided reads (opts.shm), which may leave a copy that failed
 * validation in a miss's page.
 * take=true removes the hits from the server.  Returns the number of hits
 * (0 on any failure, and on a sealed client: remoca_get_sealed). */
unsigned remoca_get(struct remoca_client *c, uint64_t key, uint32_t count, void *pages,
                    uint64_t *hits, bool take);

/* Sealed clients (opts.sealed) only; a plain client's calls fail (0 hits,
 * -1).  As remoca_get and remoca_put, with the sidecar of key i at
 * sides + i*REMOCA_SIDE_SIZE beside its page at pages + i*4096: a hit's
 * page and sidecar are both written (read straight from the socket), a
 * miss's neither (except a one-sided copy that failed validation, as for
 * remoca_get); a put stores both.  The sidecar is opaque bytes to the
 * transport and the server. */
unsigned remoca_get_sealed(struct remoca_client *c, uint64_t key, uint32_t count, void *pages,
                           void *sides, uint64_t *hits, bool take);
int remoca_put_sealed(struct remoca_client *c, uint64_t key, uint32_t count, const void *pages,
                      const void *sides, bool wait);

/* Puts count pages for keys [key, key+count).  wait=false returns once the
 * request is ordered on its connection (see above).  Returns 0 if the request
 * was sent (and, with wait, acknowledged), -1 if it was dropped (always on
 * a sealed client: remoca_put_sealed). */
int remoca_put(struct remoca_client *c, uint64_t key, uint32_t count, const void *pages, bool wait);

/* Deletes keys [key, key+count), any count (split into frames as needed).
 * wait=false returns once ordered (see the contract above). */
int remoca_delete(struct remoca_client *c, uint64_t key, uint64_t count, bool wait);

/* Drops every page of the pool on every server. */
int remoca_pool_reset(struct remoca_client *c);

/* Which server index (position in the current list) holds key. */
unsigned remoca_server_of(struct remoca_client *c, uint64_t key);
unsigned remoca_server_count(struct remoca_client *c);
/* Whether a server list (the syntax of opts.servers) names a server reached
 * over the network (TCP, or memcached over TCP), not only unix sockets on
 * this host; false for a list that does not parse (the client reports it). */
bool remoca_servers_remote(const char *list);

/* Fetches a server's stats (text, or JSON); *out is malloc'd, NUL-terminated. */
int remoca_server_stats(struct remoca_client *c, unsigned server, bool json, char **out);

/* The same without a client: connects to addr (the syntax of a server list
 * entry), says HELLO (proving it knows secret if the server asks; NULL or ""
 * for none), asks for STATS and disconnects; every wait is bounded by
 * timeout_ms.  0 with *out malloc'd and NUL-terminated, or -1 with a message
 * in err that names addr ("... needs a secret" when one was wanted). */
int remoca_stats_query(const char *addr, const char *secret, bool json, unsigned timeout_ms,
                       char **out, char *err, size_t errlen);

/* Likewise, a POOL_OPEN of pool with these parameters, then disconnects: a
 * pool that exists keeps its pages and takes the new min, max (0 = the
 * server's budget) and weight (0 = 1); one that does not is created.  Unlike
 * a client, which resets its pool after opening it, this changes nothing
 * else.  A sealed pool is updated as one (a second, sealed POOL_OPEN after
 * the server's refusal of the plain one); a pool that does not exist is
 * created plain, which a sealed client would then find refused.  0, or -1
 * with a message in err (remoca-balancer's remote shares). */
int remoca_pool_update(const char *addr, const char *secret, const char *pool, uint64_t min_bytes,
                       uint64_t max_bytes, uint32_t weight, unsigned timeout_ms, char *err,
                       size_t errlen);

/* The two above saying HELLO as name (NULL: "remoca-stats"): a server run
 * with --tenants knows its clients by the HELLO name, TENANT or TENANT/...,
 * and checks the secret of that tenant (docs/protocol.md, Tenants). */
int remoca_stats_query_as(const char *addr, const char *name, const char *secret, bool json,
                          unsigned timeout_ms, char **out, char *err, size_t errlen);
int remoca_pool_update_as(const char *addr, const char *name, const char *secret, const char *pool,
                          uint64_t min_bytes, uint64_t max_bytes, uint32_t weight,
                          unsigned timeout_ms, char *err, size_t errlen);

struct remoca_client_stats {
    uint64_t requests;           /* frames sent */
    uint64_t timeouts;           /* requests that timed out */
    uint64_t failures;           /* requests failed: server down, error reply, dropped */
    uint64_t reconnects;         /* successful reconnects and recoveries of a hung
                             connection (each followed by a pool reset) */
    unsigned servers_up;         /* connected now */
    uint64_t one_sided_lookups;  /* keys looked up in a server's mapped memory */
    uint64_t one_sided_hits;     /* of those, hits (no frame sent for them) */
    unsigned servers_shm;        /* up and mapped now (one-sided reads) */
    uint64_t ring_puts;          /* pages put through a server's fill ring (no frame) */
    unsigned servers_ring;       /* up with a fill ring now */
    unsigned servers;            /* in the list now */
    uint64_t membership_changes; /* remoca_client_set_servers calls that changed it */
    uint64_t bad_values;         /* sealed pools on memcached: values of the wrong
                                    length, taken as misses */
};
void remoca_client_get_stats(struct remoca_client *c, struct remoca_client_stats *st);

/* One server of the current list, as this client sees it.  Counted since the
 * server entered the list (a server that leaves and returns starts again). */
#define REMOCA_SERVER_ADDR_MAX 384
struct remoca_server_stats {
    char addr[REMOCA_SERVER_ADDR_MAX]; /* canonical: "tcp:HOST:PORT" or "unix:PATH" */
    unsigned weight;
    bool up;                  /* connected, pool reset, usable */
    uint64_t requests;        /* get frames (over the socket or one-sided) */
    uint64_t keys;            /* keys looked up */
    uint64_t hits;            /* of those, hits */
    uint64_t misses;          /* of those, misses (a failed frame's keys count as misses) */
    uint64_t puts;            /* pages handed to the server (socket or fill ring) */
    uint64_t errors;          /* frames failed: down, error reply, timeout, dropped */
    uint64_t timeouts;        /* of those, timeouts */
    uint64_t reconnects;      /* connections re-established (each resets the pool) */
    uint64_t latency_samples; /* gets timed (frames answered) */
    uint64_t p50_us, p99_us;  /* get latency percentiles: upper bounds of log2 buckets */
};
/* Fills out[0 .. min(n, max)) in list order; returns n, the servers in the list. */
unsigned remoca_client_server_stats(struct remoca_client *c, struct remoca_server_stats *out,
                                    unsigned max);

#endif
