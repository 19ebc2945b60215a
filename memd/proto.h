/* SPDX-License-Identifier: BSD-3-Clause */
/* Frame processing for one connection: request bytes in, response bytes out.
 * No I/O here: net.c feeds what it read and writes what comes out, and the
 * fuzzer (tests/fuzz/fuzz_memd_proto.c) drives the same code in memory.
 *
 *   input:  [hdr|payload][hdr|payload][hdr|pay..   (partial frame: left over)
 *            \____ proto_process consumes complete frames only ____/
 *   output: [hdr|payload][hdr]...                  appended to struct outbuf
 *
 * Each frame's header is checked (remoca_req_check) before its payload is
 * looked at.  A header with a bad magic or a length above
 * REMOCA_MAX_REQ_PAYLOAD means the stream cannot be trusted: an error reply is
 * appended and PROTO_CLOSE returned.  Every other error gets an error reply
 * (payload = message), the payload is skipped, and processing goes on.
 *
 * A connection with a fill ring (FILL_RING, fill_ring.h) has puts waiting in
 * shared memory besides its input: each frame first drains the ring up to
 * its own id, and the end of proto_process drains up to the last id + 1.
 */
#ifndef MEMD_PROTO_H
#define MEMD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "fill_ring.h"
#include "store.h"
#include "tenants.h"

/* Stop adding responses once this much output is waiting: net.c writes it. */
#define PROTO_OUT_HIGH (256u * 1024u)
/* Error replies logged (level info) per connection; the rest at debug. */
#define PROTO_LOG_ERRORS 20u
/* Pool handles one connection may hold (reopening a name reuses its handle). */
#define PROTO_MAX_HANDLES 1024u

struct outbuf {
    uint8_t *p;
    size_t len, cap;
};

/* Makes room for `more` bytes; returns a pointer to the free part or NULL. */
uint8_t *outbuf_reserve(struct outbuf *o, size_t more);
void outbuf_free(struct outbuf *o);

struct session {
    bool hello;
    char client[64];   /* HELLO name, for logs */
    const char *peer;  /* address, for logs */
    uint32_t *handles; /* handle h (1-based) -> pool id */
    uint32_t nhandles, cap;
    uint64_t errors; /* error replies sent */
    bool challenged; /* --secret: a challenge was sent, nonce holds it */
    bool close_now;  /* close after this frame (authentication failures) */
    uint8_t auth_failures;
    uint8_t nonce[AUTH_NONCE];
    bool unix_socket; /* set by net.c: SHM_MAP and FILL_RING only over a unix socket */
    /* fds to send with the output's first byte, which is then an SHM_MAP or
     * FILL_RING response (SCM_RIGHTS): net.c sends them and sets nattach to
     * 0, closing them first if attach_close (the ring's memfd; the store's
     * shm fds stay open for the store's life).  session_end closes
     * attach_close fds that were never sent. */
    int attach_fds[2];
    unsigned nattach;
    bool attach_close;
    struct fill_ring *ring; /* FILL_RING's ring (memd/fill_ring.h), or NULL */
    uint32_t last_id;       /* id of the last request processed (the ring's order) */
    struct tenant *tenant;  /* --tenants: who HELLO proved to be (holds a conns= place) */
};

/* Server-wide context the protocol needs besides the store. */
struct proto_ctx {
    struct store *store;
    /* Fills the server counters for STATS; may be NULL. */
    void (*counters)(void *arg, struct server_counters *sc);
    void *arg;
    uint64_t *errors;        /* global error counter (atomically incremented), may be NULL */
    const struct auth *auth; /* --secret, or NULL / len 0 for none */
    /* Connection buffers of the server (net.c; NULL: not counted): a fill
     * ring's memory (ring->size) is added to *buf_bytes while the ring
     * exists, and refused with E_LIMIT if the total would exceed max_buffers. */
    uint64_t *buf_bytes;
    uint64_t max_buffers;
    /* --tenants (tenants.h), or NULL: HELLO authenticates a tenant, whose
     * pools are those its prefixes name and whose STATS show only them. */
    const struct tenants *tenants;
};

enum proto_result {
    PROTO_MORE,  /* every complete frame consumed; need more input */
    PROTO_FULL,  /* output reached PROTO_OUT_HIGH: write it, then call again */
    PROTO_CLOSE, /* stream out of sync (reply appended): close after writing */
};

/* Consumes complete frames from in[0..len), appends responses to out.
 * *used = bytes consumed.  With a fill ring, executes its entries in the
 * stream's order: before the request with id X, those whose after_id is at
 * or before X; at the end, those at or before the last id + 1.  A ring whose
 * head is out of range closes the connection (PROTO_CLOSE). */
enum proto_result proto_process(const struct proto_ctx *ctx, struct session *ss, const uint8_t *in,
                                size_t len, struct outbuf *out, size_t *used);

/* Total size of the frame starting at in: REMOCA_HDR_SIZE while the header is
 * incomplete, 0 if the header can never be valid (bad magic or length): give
 * such bytes to proto_process, which answers and closes. */
size_t proto_frame_size(const uint8_t *in, size_t len);

/* The attached fds went out (or never will): closes those that are the
 * session's (attach_close) and clears the attachment. */
void session_attached_sent(struct session *ss);

/* One more error on the connection (session and server counters). */
void proto_count_error(const struct proto_ctx *ctx, struct session *ss);

/* Releases the session's pool handles and its fill ring. */
void session_end(const struct proto_ctx *ctx, struct session *ss);

#endif
