/* SPDX-License-Identifier: BSD-3-Clause */
/* Internals of the libremoca client core, shared by lib/client/addr.c,
 * lib/client/placement.c, lib/client/client*.c and their unit tests (not a public
 * API).  Sections name the file that defines what they declare; the
 * connection's own internals are in client_conn.h.
 *
 * How the pieces fit:
 *
 *   remoca_client ──┬── members_lock (rw) over: placement (seeds, weights),
 *                   │     conns[0..n) (client_members.c swaps them at runtime)
 *                   ├── conn[0] ── thread: connect, handshake, receive loop
 *                   ├── conn[1] ── thread: ...    (each: stop eventfd, counters)
 *                   └── counters, ready condvar
 *
 *   caller (any thread)                         reader: the conn thread, or the
 *   ─────────────────────────────────────       caller itself if recv_lock is free
 *   build frames (waiters on the stack)         ─────────────────────────────
 *   lock send_lock
 *     check up, assign ids, register waiters ─▶ table[id % BUCKETS]
 *     sendmsg(send queue + header + payload)   (no-wait frames: copied
 *     to the send queue instead, written later)
 *   unlock send_lock                            recv header, look up id, claim
 *   rc_completion_wait(deadline) ◀─ rc_waiter_complete() ─ read payload straight into the
 *   timeout? rc_conn_quarantine(gen) ───────────▶ caller's pages; or on EOF/error
 *   (fails all waiters of the connection)       fail every waiter, reconnect
 *
 * Every registered waiter is completed exactly once: when its response
 * arrives (by the connection thread, which claims it from the table first),
 * or when the connection is quarantined or torn down (by whoever drains the
 * table).  A caller that times out never unregisters anything itself: it
 * quarantines the connection, which fails every waiter still in the table at
 * once; a waiter already claimed (its response half read) completes as soon
 * as the receiver gives up on it, and if even that takes too long the caller
 * shuts the socket down.  So a caller's stack and page buffer are never
 * written after the call returns.
 */
#ifndef REMOCA_CLIENT_INTERNAL_H
#define REMOCA_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>
#include <time.h>

#include "remoca/hostport.h"
#include "remoca/mc.h"
#include "remoca/client.h"
#include "remoca/placement.h"
#include "remoca/shm.h"
#include "remoca/wire.h"

/* ---- addresses (lib/client/addr.c) -------------------------------------------- */

enum remoca_addr_kind { REMOCA_ADDR_TCP, REMOCA_ADDR_UNIX };

#define REMOCA_ADDR_MAX_HOST REMOCA_HOST_MAX
#define REMOCA_ADDR_MAX_CANON (REMOCA_ADDR_MAX_HOST + 16u)

struct remoca_addr {
    enum remoca_addr_kind kind;
    char host[REMOCA_ADDR_MAX_HOST + 1]; /* TCP: name or IP literal, no brackets */
    char port[6];                        /* TCP: decimal 1..65535 */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* UNIX */
    /* Canonical form, "tcp:HOST:PORT" or "unix:PATH": used in logs and as the
     * server's identity for placement (so it does not depend on list order). */
    char canon[REMOCA_ADDR_MAX_CANON + sizeof(((struct sockaddr_un *)0)->sun_path)];
    uint8_t weight; /* placement weight, 1..REMOCA_MAX_WEIGHT ("ADDR*W" in a list; 1) */
    bool mc;        /* "memcached:ADDR": speaks memcached's meta protocol (client_mc.c);
                       canon is then "memcached:tcp:..." or "memcached:unix:..." */
};

/* Parses one entry: "host:port", "[v6]:port", "tcp:host:port", "unix:/path"
 * or "/path", any of them after "memcached:" for a memcached server.  Returns 0, or -1 with a message in err. */
int remoca_addr_parse(const char *s, size_t len, struct remoca_addr *a, char *err, size_t errlen);

/* Parses a comma-separated list (spaces around entries are ignored) into at
 * most `max` addresses; rejects empty lists, empty entries and duplicates.
 * An entry may end in "*W", W a weight 1..REMOCA_MAX_WEIGHT (default 1); the
 * weight is not part of the address (its canonical name, its seed).
 * Returns the number of addresses, or -1 with a message in err. */
int remoca_addr_parse_list(const char *list, struct remoca_addr *out, unsigned max, char *err,
                           size_t errlen);

/* ---- authentication (lib/client/client_auth.c) -------------------------------- */

#define RC_AUTH_NONCE_BYTES 16u /* docs/protocol.md, Authentication */
#define RC_AUTH_MAC_BYTES 32u   /* HMAC-SHA256 */

/* Whether msg[0..len) is a server's "challenge <32 hex digits>"; the nonce. */
bool rc_auth_parse_challenge(const char *msg, size_t len, uint8_t nonce[RC_AUTH_NONCE_BYTES]);
/* credential = HMAC-SHA256(secret, nonce || name); false if it failed. */
bool rc_auth_credential(const void *secret, size_t secret_len,
                        const uint8_t nonce[RC_AUTH_NONCE_BYTES], const char *name, size_t name_len,
                        uint8_t mac[RC_AUTH_MAC_BYTES], unsigned *mac_len);

/* ---- placement (lib/client/placement.c; the hash: lib/wire/placement.c) ----- */

/* The placement of a list of addresses: seeds from their canonical names,
 * their weights (remoca/placement.h). */
void remoca_placement_init(struct remoca_placement *p, const struct remoca_addr *addrs, unsigned n);

/* ---- completions (lib/client/client_wait.c) ----------------------------------- */

/* What a caller sleeps on: the number of its registered waiters not yet
 * done, plus a flag saying the caller sleeps (so the last completer makes a
 * futex wake only when needed).  4 bytes on the caller's stack.
 *
 *   word:  [31] SLEEPING | [30..0] pending
 */
struct completion {
    _Atomic uint32_t word;
};

static inline void completion_init(struct completion *cp) { atomic_init(&cp->word, 0); }
/* One more waiter to wait for (before it can possibly complete). */
static inline void completion_add(struct completion *cp)
{
    atomic_fetch_add_explicit(&cp->word, 1, memory_order_relaxed);
}
/* Marks one waiter done (release); wakes the caller after the last one. */
void rc_completion_done(struct completion *cp);
/* Waits until nothing is pending: 0, or -1 at the deadline (NULL: forever). */
int rc_completion_wait(struct completion *cp, const struct timespec *deadline);
static inline bool completion_pending(struct completion *cp)
{
    return (atomic_load_explicit(&cp->word, memory_order_acquire) & 0x7fffffffu) != 0;
}

/* ---- waiters and frames ------------------------------------------------ */

#define REMOCA_BITMAP_WORDS (REMOCA_MAX_BATCH / 64u)

/* One in-flight request that someone waits for.  Lives on the caller's stack
 * (or in a caller's array); linked into its connection's table by id.
 *
 *   conn->table[id % CONN_BUCKETS] ──▶ waiter ──▶ waiter ──▶ NULL
 *                                      (next)
 */
struct waiter {
    struct waiter *next; /* table chain (under conn->lock) */
    struct conn *conn;
    uint64_t gen; /* connection generation it was sent on */
    uint32_t id;
    uint8_t op;
    uint32_t count;
    uint32_t base;                      /* index of the frame's first key within the call */
    bool registered;                    /* in a table: will be completed exactly once */
    bool late;                          /* still pending at the caller's deadline */
    unsigned server;                    /* index of its server in the call's membership */
    uint8_t *pages;                     /* GET/TAKE: page for key i goes to pages + i*4096 */
    uint8_t *sides;                     /* sealed GET/TAKE: key i's sidecar to sides + i*32 */
    char *text;                         /* STATS: malloc'd NUL-terminated reply */
    uint64_t *cas;                      /* TAKE on memcached: CAS of hit i at cas[i] (or NULL) */
    uint64_t bits[REMOCA_BITMAP_WORDS]; /* GET/TAKE: hit bitmap of this frame */
    unsigned nhits;
    int result;      /* 0 ok, -1 failed (error reply, timeout, conn lost) */
    uint16_t status; /* server status when result != 0 and a reply came */
    atomic_bool done;
    struct completion *comp; /* the call's; signalled once when done */
};

/* A frame to send: header fields, optional payload, optional waiter. */
struct frame {
    unsigned server; /* placement result (index into client->conns) */
    uint32_t base;   /* index of the first key within the call */
    uint8_t op;
    uint16_t flags;
    uint64_t key;
    uint32_t count;
    const void *payload;
    uint32_t len;
    struct waiter *w; /* NULL: no-wait (response discarded) */
    uint8_t hdr[REMOCA_HDR_SIZE];
};

/* Internal op (never on a memd wire): a memcached TAKE's second half, one
 * "md K q C<cas>" per hit of frame keys [key, key+count); payload points to
 * a struct rc_mc_casdel (client_mc.c). */
#define RC_OP_MC_CASDEL 0xe0u
struct rc_mc_casdel {
    const uint64_t *bits; /* hit bitmap of the frame */
    const uint64_t *cas;  /* cas[i] for hit i */
};

/* ---- one-sided reads (lib/client/client_shm.c) -------------------------------- */

/* A server's page store mapped by one connection incarnation. */
struct shm_map {
    struct remoca_shm_view view;
    void *data; /* PROT_READ, MAP_SHARED */
    size_t data_len;
    void *touch; /* PROT_READ|PROT_WRITE, MAP_SHARED */
    size_t touch_len;
};

/* ---- fill ring (lib/client/client_ring.c) ------------------------------------- */

/* The fill ring a server handed to one connection incarnation
 * (lib/wire/include/remoca/fill_ring.h). */
struct ring_map {
    uint8_t *base; /* PROT_READ|PROT_WRITE, MAP_SHARED; NULL: none */
    size_t size;
    uint32_t nslots;
    uint64_t head; /* entries published (under send_lock) */
};

/* ---- connections (lib/client/client_conn.c, client_recv.c, client_send.c) ----- */

#define CONN_BUCKETS 64u

/* Per-server counters (remoca_client_server_stats), kept by the data path
 * (client_ops.c) and the connection thread.  Get latency: a log2 histogram
 * of microseconds, bucket b counts latencies in [2^(b-1), 2^b) (bucket 0:
 * under 1 us), from a call's send to its last answer. */
#define LAT_BUCKETS 32u
struct rc_server_counters {
    atomic_uint_least64_t requests, keys, hits, misses, puts, errors, timeouts, reconnects;
    atomic_uint_least64_t lat[LAT_BUCKETS];
};
void rc_lat_record(struct rc_server_counters *st, int64_t ns);
/* The latency below which a fraction `permille`/1000 of the samples fall
 * (the upper bound of its bucket), in us; 0 without samples. */
uint64_t rc_lat_percentile(const struct rc_server_counters *st, unsigned permille,
                           uint64_t *samples);
/* Responses to no-wait frames (puts, deletes) are read lazily: by whoever
 * reads next (a caller waiting for its own get reads them on the way), by
 * the connection thread's periodic wakeup, or, once this many frames are
 * unanswered, by a kicked connection thread.  Waking a thread per fill put
 * cost more CPU than the put itself (measured: cold reads at queue depth 1,
 * ~70 us of CPU per read, most of it in wakeups).  Error replies lose
 * nothing by waiting: the server answers a connection in order, so any
 * later get's response is read after them, and a failed invalidation
 * quarantines the connection before that get can complete. */
#define LAZY_MAX 64
#define SQ_CAP (32u * (REMOCA_HDR_SIZE + REMOCA_PAGE_SIZE)) /* bytes */
#define SQ_BATCH 16u        /* queued frames that make the queuer flush */
#define SQ_DELAY_US 1000u   /* oldest queued frame's wait at most (about) */
#define SQ_LINGER_MS 50     /* after a flush, the connection thread keeps short sleeps */
#define RING_DELAY_US 4000u /* oldest fill ring entry's wait for a request at most (about) */
#define RBUF_SIZE (64u * 1024u)

/* Buffered reader of the connection thread: small frames come out of the
 * buffer; big payloads are read straight into their destination. */
struct rbuf {
    uint8_t *buf;
    size_t pos, end;
};

/* Pending invalidations by key (client_inval.c): keys [key, key+count)
 * count in stripes ((key / INVAL_STRIPE_KEYS) % INVAL_STRIPES).  16 keys
 * (64 KiB) per stripe: a frame (up to REMOCA_MAX_BATCH keys) spans at most
 * 17, so a one-sided read checks a handful of counters and a big sequential
 * read is not held up by every delete on the disk; 1024 stripes (64 MiB
 * before they wrap): with P deletes unanswered, a random read waits with
 * probability about P/1024 instead of always.  A delete spanning more than
 * INVAL_SPAN_MAX stripes (a whole frame's worth) counts globally. */
#define INVAL_STRIPE_KEYS 16u
#define INVAL_STRIPES 1024u
#define INVAL_SPAN_MAX (REMOCA_MAX_BATCH / INVAL_STRIPE_KEYS + 1u)
#define INVAL_RECS 256u /* recorded pending invalidations; beyond: global */

struct inval_rec {
    uint64_t key;
    uint32_t id, count;
    uint8_t op;
    bool live; /* false: answered out of order, not yet passed by head */
};

/* One connection to one memory server.
 *
 *   recv_lock ─ held by whoever reads the socket: the connection thread, or
 *               a caller reading its own response (no thread hop); guards
 *               rb, draining, reader_deadline
 *   send_lock ─ serialises frames on the wire (call order = wire order)
 *   lock ────── waiter table, fd, gen, up, kicked (and the wake condvar)
 *   lock order: recv_lock, then send_lock, then lock.
 */
struct conn {
    struct remoca_client *client;
    struct remoca_addr addr;
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping; /* client freed, or the server left the membership */
    int stop_fd;          /* eventfd, readable once stopping: wakes its polls */
    struct rc_server_counters st;

    pthread_mutex_t recv_lock;
    atomic_bool reader_active;              /* someone holds recv_lock to read */
    atomic_int outstanding;                 /* frames sent whose response was not read yet */
    atomic_int waiting;                     /* of those, frames a caller waits for (in the table) */
    const struct timespec *reader_deadline; /* a caller-reader's deadline */

    pthread_mutex_t send_lock;
    atomic_int senders; /* callers queued on send_lock (MSG_MORE hint) */
    uint32_t next_id;   /* under send_lock once up */

    pthread_mutex_t lock;
    pthread_cond_t wake;  /* backoff sleep, kicks; signalled on stop */
    bool kicked;          /* the connection thread should read (under lock) */
    int fd;               /* -1 unless up */
    _Atomic uint64_t gen; /* bumped each time a connection becomes usable */
    atomic_bool up;       /* handshake done, usable */
    bool ever_up;
    uint32_t pool; /* pool handle on the current connection */
    struct waiter *table[CONN_BUCKETS];

    /* Send queue (under send_lock): no-wait frames copied here are ordered
     * (the next frame written on the connection, from any thread, goes out
     * behind them) but sent later, in one write for many: by the next
     * sender, by the caller that fills it to SQ_BATCH frames, or by the
     * connection thread SQ_DELAY_US after the first was queued.
     *
     *   sq [hdr|page][hdr|page][hdr] ...  sqlen bytes, sqframes frames
     */
    uint8_t *sq;
    size_t sqlen;
    unsigned sqframes;
    _Atomic int64_t sq_due_ns; /* CLOCK_MONOTONIC ns the queue is due; 0 = empty */

    atomic_bool quarantined; /* hung: waiting for a POOL_RESET on this connection */
    uint8_t *qbuf;           /* rest of a frame cut by a send timeout (under lock) */
    size_t qlen;
    bool draining; /* connection thread only: in quarantine_drain */

    struct rbuf rb;             /* connection thread only */
    int64_t last_read_ns;       /* connection thread only: its last read pass */
    int64_t last_flush_ns;      /* connection thread only: its last due flush */
    _Atomic int64_t wake_at_ns; /* when the connection thread looks next, at the latest */
    char why[160];              /* reason of the current teardown (under lock) */
    bool logged_down;           /* "cannot connect" logged for this down period */

    /* One-sided reads (client_shm.c).  The mapping belongs to one
     * incarnation of the connection: installed before it becomes UP,
     * unmapped at teardown (not at quarantine: same server, still alive).
     *   shm ────── the mapping (connection thread only; data NULL: none)
     *   shm_view ─ &shm.view while mapped, else NULL (seq_cst); readers load
     *              it only after counting themselves in shm_readers */
    struct shm_map shm;
    struct remoca_shm_view *_Atomic shm_view;
    atomic_int shm_readers;
    bool shm_logged; /* "not offered" logged once */

    /* Fill ring (client_ring.c): installed before UP, unmapped at teardown
     * under send_lock; written under send_lock.  ring_unflushed: entries
     * appended since the last request was numbered (the server looks at the
     * ring when it executes a request: these wait for the next one). */
    struct ring_map ring;
    atomic_bool ring_on; /* ring.base != NULL, for stats readers */
    uint32_t ring_unflushed;
    bool ring_logged; /* "no fill ring" logged once */

    /* Invalidations (DELETE, DELETE_RANGE, POOL_RESET) ordered on the
     * current incarnation whose response has not been read yet, counted by
     * key (client_inval.c): each counts in every stripe its keys touch, or
     * in inval_global (pool resets, spans of more than INVAL_SPAN_MAX
     * stripes, and any ordered while the record ring is full).  + under
     * send_lock when ordered (queued or written), - when the response is
     * read (client_recv.c), all 0 when the pool state is rebuilt (before UP,
     * at the handshake and at a quarantine recovery).  A one-sided read of a
     * frame needs inval_global and the stripes of its keys to be 0
     * (client_ops.c says why).
     *   inval_rec ──── what each counted invalidation was (id, op, key,
     *                  count), in id order, so its answer counts down the
     *                  stripes it counted up whatever the server echoes
     *                  (under lock; inval_head..inval_tail live)
     *   inval_epoch_id ─ first request id after that rebuild: a response
     *                    with an older id (from before a quarantine, late)
     *                    is not counted down.  Written by the connection
     *                    thread before UP, while nobody reads responses
     *                    (recv_lock held, or no socket to read); read by the
     *                    recv_lock holder. */
    atomic_int inval_global;
    atomic_int inval_stripe[INVAL_STRIPES];
    struct inval_rec inval_rec[INVAL_RECS];
    uint32_t inval_head, inval_tail;
    uint32_t inval_unrecorded; /* counted in global without a record (under lock) */
    uint32_t inval_epoch_id;

    /* memcached (client_mc.c; addr.mc only).  A memcached connection has no
     * handshake frames, no one-sided reads, no fill ring, no send queue and
     * no quarantine (a timeout closes it: the reconnect's new epoch makes
     * whatever the old connection still executes unreachable).
     *   mc_ns ───── pool id and epoch: keys are encoded with it under
     *               send_lock, so a command ordered before an epoch change
     *               uses the old epoch (set before UP by the connection
     *               thread, then under send_lock)
     *   mc_tx ───── command text of one send (under send_lock)
     *   mc_p ────── response parser (recv_lock holder)
     *   mc_rx_id ── id of the frame whose MN comes next (recv_lock holder);
     *               every frame ends with an mn, memcached answers in order
     *   mc_w, mc_claimed ─ waiter of frame mc_rx_id, claimed from the table
     *               at its first VA or its MN (recv_lock holder) */
    struct remoca_mc_ns mc_ns;
    char *mc_tx;
    struct remoca_mc_parser *mc_p;
    uint32_t mc_rx_id;
    struct waiter *mc_w;
    bool mc_claimed;
    /* Sealed pools: a value (page || sidecar) lands here, then is split into
     * the caller's page and sidecar (recv_lock holder).  mc_unit_idx: its
     * key's index in the frame; -1: no value pending. */
    uint8_t mc_unit[REMOCA_SEALED_UNIT];
    int mc_unit_idx;
};

int rc_conn_init(struct conn *cn, struct remoca_client *c, const struct remoca_addr *a);
int rc_conn_start(struct conn *cn);
/* Tells the connection's thread to end (sets cn->stopping, wakes it, shuts
 * its socket down); rc_conn_stop does that and joins it. */
void rc_conn_signal_stop(struct conn *cn);
void rc_conn_stop(struct conn *cn);
void rc_conn_destroy(struct conn *cn);

/* Sends frames in order on the connection, under its send lock.
 * CONN_DOWN: nothing was sent and no waiter registered (server down).
 * CONN_FAILED: waiters were registered but sending failed; the connection has
 *   been killed, so they will all be posted as failed.
 * CONN_SENT: every frame was written; waiters registered. */
enum conn_send_result { CONN_DOWN, CONN_FAILED, CONN_SENT };
enum conn_send_result rc_conn_send(struct conn *cn, struct frame *f, unsigned n,
                                   const struct timespec *deadline);

/* Writes the send queue out now (the connection thread, when it is due). */
void rc_conn_flush(struct conn *cn);
/* Drops the send queue (send_lock held): at quarantine and teardown, the
 * pool is reset before the connection is used again. */
void rc_sq_drop(struct conn *cn);

/* Quarantines generation `gen` of the connection if it is still current and
 * up: fails every waiter now (misses), refuses new frames, and has its
 * thread send a POOL_RESET on the same connection, behind everything already
 * sent; the connection is usable again once the server answers it. */
void rc_conn_quarantine(struct conn *cn, uint64_t gen, const char *why);

/* Makes sure someone reads the connection's responses: wakes its thread
 * unless a reader is active. */
void rc_conn_need_reader(struct conn *cn);

/* Reads the connection's responses in the calling thread, if nobody else is
 * reading, until cp has nothing pending or the deadline passes.  Saves the
 * hop through the connection thread for a caller waiting on one server. */
void rc_conn_read_until(struct conn *cn, uint64_t gen, struct completion *cp,
                        const struct timespec *deadline);

/* Tears down generation `gen` of the connection if it is still current:
 * shuts the socket down, which makes its thread fail every waiter. */
void rc_conn_kill(struct conn *cn, uint64_t gen, const char *why);

/* ---- client (lib/client/client.c) --------------------------------------------- */

/* The membership: the servers in use and their placement.  Every routed
 * call (client_ops.c, client.c) holds members_lock shared from routing until
 * its last waiter is done, so it sees one membership throughout and no
 * struct conn it routed to goes away under it; remoca_client_set_servers
 * (client_members.c) holds it exclusively to swap n, conns and place, and to
 * send POOL_KEEP before anything is routed by the new placement.  The lock
 * prefers writers: a change waits only for the calls already in flight.
 *
 *   members_lock (rw) ─ n, conns[0..n), place
 *     conns[i] ──▶ struct conn (heap; kept across changes while its address
 *                  stays in the list, so its counters and connection stay)
 *   set_lock ───────── one change at a time (taken before members_lock) */
struct remoca_client {
    pthread_rwlock_t members_lock;
    pthread_mutex_t set_lock;
    unsigned n;
    struct conn *conns[REMOCA_MAX_SERVERS];
    struct remoca_placement place;

    char pool[REMOCA_MAX_NAME + 1];
    char name[REMOCA_MAX_NAME + 1];
    uint8_t secret[REMOCA_MAX_NAME];
    size_t secret_len;
    unsigned timeout_ms;
    uint64_t pool_min, pool_max;
    uint32_t pool_weight;
    void (*log)(void *opaque, int level, const char *msg);
    void *log_opaque;

    atomic_bool stopping;

    pthread_mutex_t ready_lock;
    pthread_cond_t ready_cond;

    enum remoca_shm_opt shm;
    bool sealed; /* opts.sealed: REMOCA_F_SEALED pools, page || sidecar units */

    atomic_uint_least64_t requests, timeouts, failures, reconnects;
    atomic_uint_least64_t one_sided_lookups, one_sided_hits;
    atomic_uint_least64_t ring_puts;
    atomic_uint_least64_t membership_changes;
    atomic_uint_least64_t bad_values; /* memcached values of the wrong length (sealed) */
};

/* remoca_pool_reset with members_lock already held (shared). */
int rc_pool_reset_locked(struct remoca_client *c);

void rc_log(struct remoca_client *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void rc_notify_ready(struct remoca_client *c);

/* ---- one-sided reads, continued (lib/client/client_shm.c) ------------------- */

/* Serves a GET frame from the connection's mapping if it has one, is UP and
 * has no invalidation of the frame's keys pending (rc_inval_clear): fills w
 * (bits, nhits, result 0, unregistered) and returns true, no frame to send;
 * false: send it.  (Declared here, after struct conn; the mapping itself is
 * struct shm_map above.) */
bool rc_shm_get(struct conn *cn, const struct frame *f, struct waiter *w);

/* ---- deadlines (lib/client/client_sock.c) ------------------------------------ */

/* Absolute CLOCK_MONOTONIC deadline `ms` from now; and ms left until one. */
void rc_deadline_in(struct timespec *ts, unsigned ms);
/* CLOCK_MONOTONIC now, in ns; and a time in ns as a timespec. */
static inline int64_t rc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
static inline struct timespec rc_ns_timespec(int64_t ns)
{
    return (struct timespec){.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};
}
int rc_deadline_left_ms(const struct timespec *ts);

/* ---- completions, continued (lib/client/client_wait.c) ----------------------- */

/* Waits for every registered waiter of a call; on the deadline, kills the
 * connections of the late ones and keeps waiting (their connection threads
 * then fail them promptly).  Counts timeouts and failures. */
void rc_waiters_wait(struct remoca_client *c, struct completion *cp, struct waiter *w, unsigned n,
                     const struct timespec *deadline);

#endif
