/* SPDX-License-Identifier: BSD-3-Clause */
/* Internals shared by the files of one connection (not the rest of the
 * client core, which uses client_internal.h):
 *
 *   client_conn.c       thread, state machine (up, quarantine, teardown), readers
 *   client_recv.c       waiter table, buffered reader, decoding responses
 *   client_send.c       writing frames under the send lock
 *   client_handshake.c  HELLO (+ challenge), POOL_OPEN, POOL_RESET, SHM_MAP, FILL_RING
 *   client_shm.c        one-sided reads from the server's mapped page store
 *   client_ring.c       puts through the server's fill ring
 *   client_mc.c         a memcached connection: send, receive, connect probe
 */
#ifndef REMOCA_CLIENT_CONN_H
#define REMOCA_CLIENT_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "client_internal.h"
#include "client_sock.h"

/* Waiter table (cn->lock held). */
void rc_table_insert(struct conn *cn, struct waiter *w);
/* Completes a waiter (result 0 or -1).  Afterwards it may no longer exist. */
void rc_waiter_complete(struct waiter *w, int result);

/* Buffered reader (recv_lock held, or during the handshake). */
void rc_rbuf_reset(struct conn *cn);
/* Reads exactly n bytes.  deadline NULL: blocks (through SO_RCVTIMEO
 * expiries, unless the connection got quarantined mid-frame). */
int rc_rbuf_read(struct conn *cn, int fd, void *dst, size_t n, const struct timespec *deadline);
/* Waits for the start of the next frame.  1: data buffered; 0: quarantined,
 * nothing outstanding (deadline NULL) or the deadline passed; -1: closed. */
int rc_wait_frame(struct conn *cn, int fd, const struct timespec *deadline);
/* Validates and skips a response nobody waits for (header already read). */
int rc_skip_frame(struct conn *cn, int fd, struct remoca_hdr *h, char *why, size_t whylen);
/* Reads and dispatches one response.  0: go on; 1: quarantined (drain);
 * -1: the connection must go (reason in why). */
int rc_recv_one(struct conn *cn, int fd, char *why, size_t whylen);
/* One response read: one less outstanding (never below zero). */
void rc_outstanding_dec(struct conn *cn);

/* Ops that remove pages on the server: counted as pending invalidations
 * (client_inval.c) from when they are ordered until their response is read. */
static inline bool rc_op_invalidates(uint8_t op)
{
    return op == REMOCA_OP_DELETE || op == REMOCA_OP_DELETE_RANGE || op == REMOCA_OP_POOL_RESET ||
           op == REMOCA_OP_POOL_KEEP;
}

/* ---- pending invalidations (client_inval.c) ---- */

/* The pool state was rebuilt: nothing pending, older responses not counted
 * (send_lock and lock held, before UP, nobody reading). */
void rc_inval_restart(struct conn *cn);
/* Frames f[0..n), ids id0.., have just been ordered (send_lock held, before
 * the caller can learn so): records and counts their invalidations. */
void rc_inval_ordered(struct conn *cn, const struct frame *f, unsigned n, uint32_t id0);
/* For a response header just read (recv_lock and lock held): takes the
 * record of the invalidation it answers.  1: *rec filled; 2: an
 * invalidation counted globally without a record (the ring was full); 0:
 * nothing to count down; -1: from before the last rebuild (counts nothing). */
int rc_inval_take(struct conn *cn, const struct remoca_hdr *h, struct inval_rec *rec);
/* 0 if the response echoes the op, key and count of the taken record, else
 * -1 with a protocol error in why. */
int rc_inval_check_echo(const struct inval_rec *rec, const struct remoca_hdr *h, char *why,
                        size_t whylen);
/* The response has been read (after reset_on_error): counts down what its
 * invalidation counted up (taken: rc_inval_take's result). */
void rc_inval_answered(struct conn *cn, int taken, const struct inval_rec *rec);
/* Whether no invalidation of keys [key, key+count) (count <= REMOCA_MAX_BATCH)
 * is pending: a one-sided read of them may copy (seq_cst loads). */
bool rc_inval_clear(struct conn *cn, uint64_t key, uint32_t count);

/* HELLO, POOL_OPEN, POOL_RESET on a fresh socket; *pool = the handle.  Then,
 * on a unix socket with opts.shm on, SHM_MAP: *map is filled (data != NULL)
 * if the server offered its page store; not offered is not a failure.  On
 * failure nothing is left mapped. */
int rc_handshake(struct conn *cn, int fd, uint32_t *pool, struct shm_map *map,
                 struct ring_map *ring, char *why, size_t whylen);

/* Table lookup and removal by id (cn->lock held): the waiter, or NULL. */
struct waiter *rc_table_take(struct conn *cn, uint32_t id);
/* Locks m before a CLOCK_MONOTONIC deadline (client_send.c). */
int rc_lock_until(pthread_mutex_t *m, const struct timespec *deadline);
/* Makes sure the buffered reader holds at least one byte: one blocking recv
 * if it is empty (SO_RCVTIMEO expiries retried as rc_rbuf_read does).
 * 0, or -1: closed or given up. */
int rc_rbuf_fill(struct conn *cn, int fd);

/* ---- memcached connections (client_mc.c) ---- */
int rc_mc_init(struct conn *cn);
void rc_mc_destroy(struct conn *cn);
/* On a fresh socket: a new epoch and a probe (a page stored and deleted in
 * the new namespace, then mn).  0, or -1 with why. */
int rc_mc_handshake(struct conn *cn, int fd, char *why, size_t whylen);
/* rc_conn_send for a memcached connection (same contract). */
enum conn_send_result rc_mc_send(struct conn *cn, struct frame *f, unsigned n,
                                 const struct timespec *deadline);
/* rc_recv_one for a memcached connection (same contract). */
int rc_mc_recv_one(struct conn *cn, int fd, char *why, size_t whylen);

/* ---- fill ring (client_ring.c) ---- */
/* Entries waiting for a request before a PING is written to carry them. */
#define RING_KICK(cn) ((cn)->ring.nslots / 4u)
/* FILL_RING on the handshake's socket: 0 with *r filled or left empty (not
 * offered: logged once; unusable: warned); -1: the connection failed. */
int rc_ring_attach(struct conn *cn, int fd, const struct timespec *deadline, struct ring_map *r,
                   char *why, size_t whylen);
void rc_ring_unmap(struct ring_map *r);
/* Installs a ring for the incarnation about to become UP (send_lock held). */
void rc_ring_install(struct conn *cn, struct ring_map *r);
/* Teardown (send_lock held, UP cleared): no sender can be inside. */
void rc_ring_uninstall(struct conn *cn);
/* send_lock held, UP: if every frame is a no-wait PUT and the ring has room
 * for all their pages, appends them (ordered before request next_id) and
 * returns true; otherwise false and nothing was appended. */
bool rc_ring_put(struct conn *cn, const struct frame *f, unsigned n);

/* One synchronous request on a connection that is not UP yet (the
 * handshake: HELLO, POOL_OPEN, POOL_RESET, SHM_MAP, FILL_RING), its response
 * read with recvmsg, which keeps descriptors passed with it (SHM_MAP's and
 * FILL_RING's memfds; the buffered reader's recv would discard them).
 * 0: OK, body and fds filled (the caller closes the fds); 1: the server
 * refused (h.flags; why says so and body holds its message,
 * NUL-terminated; no fds); -1: the connection failed (why).  Nothing is
 * buffered then: bytes in the buffered reader would be a server talking out
 * of turn (an error). */
struct hs_reply {
    struct remoca_hdr h;
    uint8_t body[REMOCA_MAX_ERRMSG + 64 + 1]; /* NUL-terminated */
    uint32_t body_len;
    int fds[RC_SOCK_MAX_FDS];
    unsigned nfds;
};
int rc_hs_call(struct conn *cn, int fd, uint8_t op, uint32_t pool, uint32_t count, const void *body,
               uint32_t len, const struct timespec *deadline, struct hs_reply *r, char *why,
               size_t whylen);
void rc_close_fds(int *fds, unsigned n);

/* ---- one-sided reads (client_shm.c) ---- */

/* SHM_MAP on the handshake's socket (the buffered reader empty): 0 with *map
 * filled or left empty (not offered, logged once); -1: the connection failed
 * (reason in why). */
int rc_shm_map(struct conn *cn, int fd, uint32_t pool, const struct timespec *deadline,
               struct shm_map *map, char *why, size_t whylen);
/* Unmaps a mapping nobody can read (not installed, or uninstalled). */
void rc_shm_unmap(struct shm_map *map);
/* Installs a mapping for the incarnation about to become UP (send_lock and
 * lock held, before up is set). */
void rc_shm_install(struct conn *cn, struct shm_map *map);
/* Teardown, after clearing up and before failing any waiter: stops
 * one-sided reads (clears the view), waits for the readers in flight,
 * unmaps. */
void rc_shm_uninstall(struct conn *cn);

#endif
