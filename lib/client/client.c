/* SPDX-License-Identifier: BSD-3-Clause */
/* libremoca client core: lifecycle, readiness, stats, logging, and the
 * control requests (pool reset, server stats).  The data path (get, put,
 * delete) is in client_ops.c; connections in client_conn.c; addresses in
 * addr.c; placement in placement.c.
 *
 *   remoca_client_new ─▶ parse servers ─▶ one conn + thread per server ─▶ return
 *                        (connecting happens in the background; a server that
 *                         is down at start just misses until it comes up)
 *   remoca_client_free ─▶ send queues written, stopping=1, each connection
 *                         stopped (its stop eventfd, shutdown, join)
 *   remoca_client_set_servers ─▶ client_members.c
 *
 * Callers must have returned from every other call before remoca_client_free.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client_internal.h"

void rc_log(struct remoca_client *c, int level, const char *fmt, ...)
{
    if (!c->log && level > REMOCA_LOG_WARN) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->log)
        c->log(c->log_opaque, level, msg);
    else
        fprintf(stderr, "libremoca: %s\n", msg);
}

void rc_notify_ready(struct remoca_client *c)
{
    pthread_mutex_lock(&c->ready_lock);
    pthread_cond_broadcast(&c->ready_cond);
    pthread_mutex_unlock(&c->ready_lock);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void client_destroy(struct remoca_client *c)
{
    if (!c) return;
    atomic_store(&c->stopping, true);
    for (unsigned i = 0; i < c->n; i++) rc_conn_signal_stop(c->conns[i]); /* all at once */
    for (unsigned i = 0; i < c->n; i++) rc_conn_stop(c->conns[i]);
    for (unsigned i = 0; i < c->n; i++) {
        rc_conn_destroy(c->conns[i]);
        free(c->conns[i]);
    }
    pthread_cond_destroy(&c->ready_cond);
    pthread_mutex_destroy(&c->ready_lock);
    pthread_rwlock_destroy(&c->members_lock);
    pthread_mutex_destroy(&c->set_lock);
    free(c);
}

struct remoca_client *remoca_client_new(const struct remoca_client_opts *opts, char *err,
                                        size_t errlen)
{
    if (!opts) {
        set_err(err, errlen, "no options");
        return NULL;
    }
    const char *name = opts->name ? opts->name : "libremoca";
    size_t pool_len = opts->pool ? strlen(opts->pool) : 0;
    if (pool_len < 1 || pool_len > REMOCA_MAX_NAME) {
        set_err(err, errlen, "pool name must be 1..%u bytes", REMOCA_MAX_NAME);
        return NULL;
    }
    if (strlen(name) < 1 || strlen(name) > REMOCA_MAX_NAME) {
        set_err(err, errlen, "client name must be 1..%u bytes", REMOCA_MAX_NAME);
        return NULL;
    }
    if (opts->secret && strlen(opts->secret) > REMOCA_MAX_NAME) {
        set_err(err, errlen, "secret longer than %u bytes", REMOCA_MAX_NAME);
        return NULL;
    }
    if (opts->pool_max && opts->pool_min > opts->pool_max) {
        set_err(err, errlen, "pool minimum (%llu) above its maximum (%llu)",
                (unsigned long long)opts->pool_min, (unsigned long long)opts->pool_max);
        return NULL;
    }
    if (opts->shm != REMOCA_SHM_ON && opts->shm != REMOCA_SHM_OFF) {
        set_err(err, errlen, "unknown shm option %d", (int)opts->shm);
        return NULL;
    }

    struct remoca_addr *addrs = calloc(REMOCA_MAX_SERVERS, sizeof *addrs);
    if (!addrs) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    int n = remoca_addr_parse_list(opts->servers, addrs, REMOCA_MAX_SERVERS, err, errlen);
    if (n < 0) {
        free(addrs);
        return NULL;
    }

    struct remoca_client *c = calloc(1, sizeof *c);
    if (!c) {
        free(addrs);
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    /* Writers first: a membership change waits for the calls in flight, not
     * for a stream of new ones (client_internal.h, above the struct). */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&c->members_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&c->set_lock, NULL);
    pthread_mutex_init(&c->ready_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->ready_cond, &ca);
    pthread_condattr_destroy(&ca);

    memcpy(c->pool, opts->pool, pool_len + 1);
    snprintf(c->name, sizeof c->name, "%s", name);
    if (opts->secret) {
        c->secret_len = strlen(opts->secret);
        memcpy(c->secret, opts->secret, c->secret_len);
    }
    c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : REMOCA_DEFAULT_TIMEOUT_MS;
    c->pool_min = opts->pool_min;
    c->pool_max = opts->pool_max;
    c->pool_weight = opts->pool_weight;
    c->log = opts->log;
    c->log_opaque = opts->log_opaque;
    c->shm = opts->shm;
    c->sealed = opts->sealed;
    c->n = (unsigned)n;
    remoca_placement_init(&c->place, addrs, c->n);

    for (unsigned i = 0; i < (unsigned)n; i++) {
        struct conn *cn = calloc(1, sizeof *cn);
        if (!cn || rc_conn_init(cn, c, &addrs[i]) < 0) {
            set_err(err, errlen, "out of memory");
            free(cn);
            c->n = i;
            free(addrs);
            client_destroy(c);
            return NULL;
        }
        c->conns[i] = cn;
    }
    free(addrs);
    for (unsigned i = 0; i < c->n; i++) {
        if (rc_conn_start(c->conns[i]) < 0) {
            set_err(err, errlen, "cannot start connection thread: %s", strerror(errno));
            client_destroy(c);
            return NULL;
        }
    }
    return c;
}

void remoca_client_free(struct remoca_client *c)
{
    /* Queued no-wait frames go out first (best effort: a client that starts
     * later resets the pool anyway). */
    for (unsigned i = 0; c && i < c->n; i++) rc_conn_flush(c->conns[i]);
    client_destroy(c);
}

/* Servers up, and in the list (*n), now. */
static unsigned count_up(struct remoca_client *c, unsigned *n)
{
    unsigned up = 0;
    pthread_rwlock_rdlock(&c->members_lock);
    for (unsigned i = 0; i < c->n; i++) up += atomic_load(&c->conns[i]->up);
    *n = c->n;
    pthread_rwlock_unlock(&c->members_lock);
    return up;
}

/* Polls in short steps rather than sleeping on the condvar with the count
 * taken under it: members_lock is never taken while ready_lock is held (a
 * membership change joins connection threads, which notify under it). */
unsigned remoca_client_wait_ready(struct remoca_client *c, unsigned timeout_ms)
{
    struct timespec end;
    rc_deadline_in(&end, timeout_ms);
    unsigned n, up;
    while ((up = count_up(c, &n)) < n && rc_deadline_left_ms(&end) > 0) {
        struct timespec step;
        rc_deadline_in(&step, 20);
        pthread_mutex_lock(&c->ready_lock);
        pthread_cond_timedwait(&c->ready_cond, &c->ready_lock, &step);
        pthread_mutex_unlock(&c->ready_lock);
    }
    return up;
}

unsigned remoca_server_of(struct remoca_client *c, uint64_t key)
{
    pthread_rwlock_rdlock(&c->members_lock);
    unsigned s = remoca_placement_key(&c->place, key);
    pthread_rwlock_unlock(&c->members_lock);
    return s;
}

unsigned remoca_server_count(struct remoca_client *c)
{
    pthread_rwlock_rdlock(&c->members_lock);
    unsigned n = c->n;
    pthread_rwlock_unlock(&c->members_lock);
    return n;
}

/* One control request to each of the given servers, waiting for all
 * (members_lock held shared). */
static int control(struct remoca_client *c, unsigned first, unsigned last, uint8_t op,
                   uint16_t flags, struct waiter *ws, bool *down)
{
    struct completion comp;
    completion_init(&comp);
    struct timespec deadline;
    rc_deadline_in(&deadline, c->timeout_ms);
    for (unsigned s = first; s < last; s++) {
        struct waiter *w = &ws[s - first];
        memset(w, 0, sizeof *w);
        w->op = op;
        w->comp = &comp;
        w->result = -1;
        struct frame f = {.server = s, .op = op, .flags = flags, .w = w};
        if (rc_conn_send(c->conns[s], &f, 1, &deadline) == CONN_DOWN) down[s - first] = true;
    }
    rc_waiters_wait(c, &comp, ws, last - first, &deadline);
    int rc = 0;
    for (unsigned s = first; s < last; s++)
        if (!down[s - first] && ws[s - first].result != 0) rc = -1;
    return rc;
}

int rc_pool_reset_locked(struct remoca_client *c)
{
    struct waiter ws[REMOCA_MAX_SERVERS];
    bool down[REMOCA_MAX_SERVERS] = {false};
    /* A server that is down is reset when it reconnects, so it counts as done;
     * a failed reset tears its connection down, which also resets on reconnect. */
    return control(c, 0, c->n, REMOCA_OP_POOL_RESET, 0, ws, down);
}

int remoca_pool_reset(struct remoca_client *c)
{
    pthread_rwlock_rdlock(&c->members_lock);
    int rc = rc_pool_reset_locked(c);
    pthread_rwlock_unlock(&c->members_lock);
    return rc;
}

int remoca_server_stats(struct remoca_client *c, unsigned server, bool json, char **out)
{
    *out = NULL;
    pthread_rwlock_rdlock(&c->members_lock);
    if (server >= c->n) {
        pthread_rwlock_unlock(&c->members_lock);
        return -1;
    }
    struct waiter w;
    bool down = false;
    int rc = control(c, server, server + 1, REMOCA_OP_STATS, json ? REMOCA_F_JSON : 0, &w, &down);
    pthread_rwlock_unlock(&c->members_lock);
    if (down || rc != 0 || !w.text) {
        free(w.text);
        return -1;
    }
    *out = w.text;
    return 0;
}

void remoca_client_get_stats(struct remoca_client *c, struct remoca_client_stats *st)
{
    memset(st, 0, sizeof *st);
    st->requests = atomic_load(&c->requests);
    st->timeouts = atomic_load(&c->timeouts);
    st->failures = atomic_load(&c->failures);
    st->reconnects = atomic_load(&c->reconnects);
    st->one_sided_lookups = atomic_load(&c->one_sided_lookups);
    st->one_sided_hits = atomic_load(&c->one_sided_hits);
    st->ring_puts = atomic_load(&c->ring_puts);
    st->membership_changes = atomic_load(&c->membership_changes);
    st->bad_values = atomic_load(&c->bad_values);
    pthread_rwlock_rdlock(&c->members_lock);
    st->servers = c->n;
    for (unsigned i = 0; i < c->n; i++) {
        bool up = atomic_load(&c->conns[i]->up);
        st->servers_up += up;
        st->servers_shm += up && atomic_load(&c->conns[i]->shm_view);
        st->servers_ring += up && atomic_load(&c->conns[i]->ring_on);
    }
    pthread_rwlock_unlock(&c->members_lock);
}
