/* SPDX-License-Identifier: BSD-3-Clause */
/* Network side of remoca-memd: listeners, one acceptor, N epoll workers.
 *
 *   main thread (acceptor)              worker 0..N-1 (one epoll each)
 *   epoll: tcp fd, unix fd, signalfd    epoll: eventfd + its connections
 *     accept4 -> round robin ---------> queue + eventfd -> conn owned here
 *     SIGTERM/SIGINT -> stop workers      EPOLLIN:  read -> proto -> write
 *                                         EPOLLOUT: drain pending output
 *
 * A connection belongs to one worker for its whole life, so its requests are
 * executed in the order received.  Per wakeup a worker reads once into its
 * scratch buffer (256 KiB), executes every complete frame, gathers all the
 * responses in one output buffer and writes it with one send.  Idle
 * connections own no buffers: only a partial frame or unsent output is kept
 * per connection (at most one frame in, one batch of responses out), and
 * while output is pending the connection is not read (backpressure).  The
 * buffers of all connections together are bounded by --max-buffers: a
 * connection that would go beyond is closed (and logged).  Fill rings
 * (memd/fill_ring.h) count too: a FILL_RING that would go beyond gets E_LIMIT.
 *
 * Hardening (see memd/README.md, "Limits and timeouts"):
 *   --handshake-timeout  a connection without a completed HELLO (and its
 *                        authentication) that long after accept is closed;
 *   --frame-timeout      a frame begun but not complete that long after its
 *                        first bytes (slow senders, slowloris) is closed; an
 *                        idle connection between frames is never closed, nor
 *                        one whose frame waits because its output is pending
 *                        (a slow reader: backpressure and --max-buffers);
 *   --max-conns-per-addr open connections per source address / unix uid
 *                        (peer_limit.h), on top of --max-conns.
 * Each worker keeps one deadline per connection and the earliest of them as
 * its epoll_wait timeout; a sweep of its list closes the expired ones.
 */
#ifndef MEMD_NET_H
#define MEMD_NET_H

#include <stdint.h>

#include "auth.h"
#include "store.h"

struct tenants; /* tenants.h */

struct net_config {
    const char *listen;    /* "HOST:PORT" or NULL for none */
    const char *unix_path; /* or NULL */
    const char *port_file; /* written with the bound TCP port, or NULL */
    unsigned threads;
    unsigned max_conns;
    uint64_t max_buffers;          /* bytes all connections' buffers may hold together */
    const struct auth *auth;       /* --secret (len 0 = none) */
    const struct tenants *tenants; /* --tenants, or NULL */
    unsigned handshake_timeout_ms; /* 0 = none */
    unsigned frame_timeout_ms;     /* 0 = none */
    unsigned max_conns_per_addr;   /* 0 = no limit */
};

struct server;

/* Binds the listeners and starts the workers; NULL on error (logged). */
struct server *server_start(const struct net_config *cfg, struct store *store);
/* Accepts connections until SIGTERM or SIGINT (blocked by the caller in all
 * threads before server_start); then stops the workers and closes everything. */
void server_run(struct server *srv);
void server_free(struct server *srv);

#endif
