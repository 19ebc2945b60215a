/* SPDX-License-Identifier: BSD-3-Clause */
/* Listeners, acceptor and epoll workers (see net.h for the design). */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "remoca/hostport.h"
#include "log.h"
#include "peer_limit.h"
#include "proto.h"

#define SCRATCH_SIZE (256u * 1024u)
#define MAX_EVENTS 128

/* One client connection; owned by one worker.
 *
 *   fd  session(hello, handles)  in: partial frame or unprocessed input
 *                                out: unsent responses (while EPOLLOUT)
 *   deadline: when the worker's sweep closes it (0 = never), for
 *     DL_HANDSHAKE  accept + --handshake-timeout, until HELLO is done
 *     DL_FRAME      frame_start + --frame-timeout, while a frame is partial
 *                   and no output is pending
 */
enum deadline_kind { DL_NONE, DL_HANDSHAKE, DL_FRAME };

struct conn {
    int fd;
    bool closing; /* close once the pending output is written */
    struct conn *prev, *next;
    struct session ss;
    uint8_t *in;
    size_t in_len, in_cap;
    struct outbuf out; /* pending output: out.p[out_off .. out.len) */
    size_t out_off;
    size_t charged; /* in_cap + out.cap, counted in server.buf_bytes */
    char peer[72];
    uint64_t deadline, handshake_end, frame_start; /* ms, CLOCK_MONOTONIC; 0 = unset */
    enum deadline_kind dl_kind;
    struct peer_key pkey; /* counted in server.peers while open */
};

struct worker {
    struct server *srv;
    unsigned idx;
    pthread_t th;
    int epfd, evfd;
    pthread_mutex_t qlock;
    struct accepted *queue; /* accepted fds waiting to be adopted */
    size_t qlen, qcap;
    struct conn *conns;
    uint8_t *scratch;
    struct outbuf out;
    uint64_t next_due; /* earliest connection deadline (ms), UINT64_MAX: none */
};

/* An accepted fd on its way to a worker, with the peer it was counted for. */
struct accepted {
    int fd;
    struct peer_key pkey;
};

struct server {
    struct store *store;
    struct net_config cfg;
    int tcp_fd, unix_fd, sig_fd, epfd;
    unsigned nworkers, next_worker;
    struct worker *workers;
    struct proto_ctx ctx;
    int stop;
    bool joined;
    /* counters, updated atomically */
    uint64_t conns, conns_total, conns_refused, errors;
    uint64_t buf_bytes; /* all connections' buffers and fill rings (bounded by
                         * cfg.max_buffers; proto.c charges the rings) */
    uint64_t conns_refused_addr, handshake_timeouts, frame_timeouts, buffer_closes;
    struct peer_table peers; /* --max-conns-per-addr */
};

static void counters(void *arg, struct server_counters *sc)
{
    struct server *srv = arg;
    sc->conns = __atomic_load_n(&srv->conns, __ATOMIC_RELAXED);
    sc->conns_total = __atomic_load_n(&srv->conns_total, __ATOMIC_RELAXED);
    sc->conns_refused = __atomic_load_n(&srv->conns_refused, __ATOMIC_RELAXED);
    sc->errors = __atomic_load_n(&srv->errors, __ATOMIC_RELAXED);
    sc->conns_refused_addr = __atomic_load_n(&srv->conns_refused_addr, __ATOMIC_RELAXED);
    sc->handshake_timeouts = __atomic_load_n(&srv->handshake_timeouts, __ATOMIC_RELAXED);
    sc->frame_timeouts = __atomic_load_n(&srv->frame_timeouts, __ATOMIC_RELAXED);
    sc->buffer_closes = __atomic_load_n(&srv->buffer_closes, __ATOMIC_RELAXED);
    sc->threads = srv->nworkers;
}

/* ---- connections -------------------------------------------------------- */

/* Each connection may hold this much whatever the others hold, so that a
 * client sending ordinary frames is never refused because others hog
 * --max-buffers with stalled 1 MiB frames. */
#define CONN_BUF_FREE (64u * 1024u)

/* Brings the server-wide count of connection buffer bytes up to date after
 * c's buffers changed.  Returns false if growing them beyond CONN_BUF_FREE
 * would exceed --max-buffers: the caller closes the connection. */
static bool account(struct worker *w, struct conn *c)
{
    size_t now = c->in_cap + c->out.cap;
    if (now > c->charged) {
        uint64_t d = now - c->charged;
        uint64_t total = __atomic_add_fetch(&w->srv->buf_bytes, d, __ATOMIC_RELAXED);
        c->charged = now;
        if (now > CONN_BUF_FREE && total > w->srv->cfg.max_buffers) return false;
    } else if (now < c->charged) {
        __atomic_fetch_sub(&w->srv->buf_bytes, c->charged - now, __ATOMIC_RELAXED);
        c->charged = now;
    }
    return true;
}

#define OVER_LIMIT "connection buffers would exceed --max-buffers"

static void conn_close(struct worker *w, struct conn *c, const char *why)
{
    if (why)
        log_info("%s (%s): connection closed: %s", c->peer, c->ss.client, why);
    else
        log_debug("%s (%s): connection closed", c->peer, c->ss.client);
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    session_end(&w->srv->ctx, &c->ss);
    free(c->in);
    outbuf_free(&c->out);
    __atomic_fetch_sub(&w->srv->buf_bytes, c->charged, __ATOMIC_RELAXED);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (w->srv->cfg.max_conns_per_addr) peer_release(&w->srv->peers, &c->pkey);
    free(c);
    __atomic_fetch_sub(&w->srv->conns, 1, __ATOMIC_RELAXED);
}

/* Closes a connection whose buffers would exceed --max-buffers (counted). */
static void close_over_limit(struct worker *w, struct conn *c)
{
    __atomic_fetch_add(&w->srv->buffer_closes, 1, __ATOMIC_RELAXED);
    conn_close(w, c, OVER_LIMIT);
}

static void set_events(struct worker *w, struct conn *c, uint32_t ev)
{
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->fd, &e);
}

/* The first send of an output that starts with an SHM_MAP or FILL_RING
 * response: sendmsg with the session's fds attached (SCM_RIGHTS), which
 * travel with the first byte sent (the store's read-only data memfd and touch
 * memfd, or the ring's memfd). */
static ssize_t send_with_fds(int fd, const void *p, size_t len, const int *fds, unsigned nfds)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = ctl.buf,
                       .msg_controllen = CMSG_SPACE(nfds * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    return sendmsg(fd, &m, MSG_NOSIGNAL);
}

/* The one send loop: writes b->p[*off .. b->len) until it is all sent or the
 * socket is full, advancing *off.  Returns 1 if all was sent, 0 if the socket
 * is full (EAGAIN: wait for EPOLLOUT), -1 on a socket error. */
static int send_pending(struct worker *w, struct conn *c, const struct outbuf *b, size_t *off)
{
    while (*off < b->len) {
        ssize_t n;
        struct session *ss = &c->ss;
        if (ss->nattach) { /* proto.c put the response they go with first */
            n = send_with_fds(c->fd, b->p + *off, b->len - *off, ss->attach_fds, ss->nattach);
            if (n > 0) session_attached_sent(ss); /* the receiver has its own copies */
        } else {
            n = send(c->fd, b->p + *off, b->len - *off, MSG_NOSIGNAL);
        }
        if (n > 0) {
            *off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        } else {
            return -1;
        }
    }
    return 1;
}

/* Sends the worker's output buffer.  Returns 1 if all was sent, 0 if the rest
 * is now pending on the connection (EPOLLOUT armed), -1 on a socket error. */
static int send_out(struct worker *w, struct conn *c)
{
    size_t off = 0;
    int s = send_pending(w, c, &w->out, &off);
    if (s == 1) {
        w->out.len = 0;
    } else if (s == 0) {
        /* Hand the buffer over to the connection; the worker gets a new one. */
        c->out = w->out;
        c->out_off = off;
        w->out = (struct outbuf){0};
        set_events(w, c, EPOLLOUT);
    }
    return s;
}

enum run_result { RUN_MORE, RUN_STOP, RUN_CLOSED };

/* Executes the complete frames of data[0..len); *used = bytes consumed. */
static enum run_result run(struct worker *w, struct conn *c, const uint8_t *data, size_t len,
                           size_t *used)
{
    *used = 0;
    for (;;) {
        size_t u;
        w->out.len = 0;
        enum proto_result r =
            proto_process(&w->srv->ctx, &c->ss, data + *used, len - *used, &w->out, &u);
        *used += u;
        int s = w->out.len ? send_out(w, c) : 1;
        if (s < 0) {
            conn_close(w, c, "send failed");
            return RUN_CLOSED;
        }
        if (r == PROTO_CLOSE) {
            if (s == 1) {
                conn_close(w, c, NULL); /* proto logged why */
                return RUN_CLOSED;
            }
            c->closing = true;
            return RUN_STOP;
        }
        if (s == 0 && !account(w, c)) {
            close_over_limit(w, c);
            return RUN_CLOSED;
        }
        if (s == 0) return RUN_STOP;
        if (r == PROTO_MORE) return RUN_MORE;
    }
}

/* Keeps data[0..len) as the connection's pending input. */
static bool keep_input(struct conn *c, const uint8_t *data, size_t len)
{
    size_t need = proto_frame_size(data, len);
    size_t cap = len > need ? len : need;
    if (c->in_cap < cap) {
        uint8_t *p = realloc(c->in, cap);
        if (!p) return false;
        c->in = p;
        c->in_cap = cap;
    }
    memmove(c->in, data, len);
    c->in_len = len;
    return true;
}

static void drop_input(struct conn *c)
{
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
}

/* Reads what the socket has and executes it.  Returns false if closed. */
static bool conn_readable(struct worker *w, struct conn *c)
{
    if (c->out.len || c->closing) return true; /* backpressure: output first */
    size_t used;
    if (c->in_len) {
        size_t need = proto_frame_size(c->in, c->in_len);
        if (need > c->in_len) {
            /* Complete the partial frame in place. */
            if (c->in_cap < need) {
                uint8_t *p = realloc(c->in, need);
                if (!p) {
                    conn_close(w, c, "out of memory");
                    return false;
                }
                c->in = p;
                c->in_cap = need;
                if (!account(w, c)) {
                    close_over_limit(w, c);
                    return false;
                }
            }
            ssize_t n = recv(c->fd, c->in + c->in_len, need - c->in_len, 0);
            if (n == 0) {
                conn_close(w, c, "client disconnected in the middle of a frame");
                return false;
            }
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
                conn_close(w, c, strerror(errno));
                return false;
            }
            c->in_len += (size_t)n;
            if (c->in_len < need && proto_frame_size(c->in, c->in_len) != 0) return true;
        }
        enum run_result r = run(w, c, c->in, c->in_len, &used);
        if (r == RUN_CLOSED) return false;
        if (used) c->frame_start = 0; /* what is left is a new frame */
        if (used == c->in_len) {
            drop_input(c);
            account(w, c);
        } else {
            memmove(c->in, c->in + used, c->in_len - used);
            c->in_len -= used;
        }
        if (r == RUN_STOP || c->in_len) return true;
    }
    ssize_t n = recv(c->fd, w->scratch, SCRATCH_SIZE, 0);
    if (n == 0) {
        conn_close(w, c, NULL);
        return false;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
        conn_close(w, c, strerror(errno));
        return false;
    }
    c->frame_start = 0; /* nothing was pending: a partial frame left over is new */
    enum run_result r = run(w, c, w->scratch, (size_t)n, &used);
    if (r == RUN_CLOSED) return false;
    if (used < (size_t)n && !c->closing) {
        if (!keep_input(c, w->scratch + used, (size_t)n - used)) {
            conn_close(w, c, "out of memory");
            return false;
        }
        if (!account(w, c)) {
            close_over_limit(w, c);
            return false;
        }
    }
    return true;
}

/* Writes pending output; once drained, resumes reading. */
static bool conn_writable(struct worker *w, struct conn *c)
{
    int s = send_pending(w, c, &c->out, &c->out_off);
    if (s < 0) {
        conn_close(w, c, "send failed");
        return false;
    }
    if (s == 0) return true; /* still full: EPOLLOUT stays armed */
    /* Keep the larger buffer as the worker's, free the other. */
    if (c->out.cap > w->out.cap) {
        outbuf_free(&w->out);
        w->out = c->out;
        w->out.len = 0;
    } else {
        outbuf_free(&c->out);
    }
    c->out = (struct outbuf){0};
    c->out_off = 0;
    account(w, c);
    if (c->closing) {
        conn_close(w, c, NULL); /* proto logged why */
        return false;
    }
    set_events(w, c, EPOLLIN);
    return conn_readable(w, c); /* buffered input may hold complete frames */
}

/* An accepted connection that will not be served after all. */
static void drop_accepted(struct server *srv, const struct accepted *a)
{
    close(a->fd);
    if (srv->cfg.max_conns_per_addr) peer_release(&srv->peers, &a->pkey);
    __atomic_fetch_sub(&srv->conns, 1, __ATOMIC_RELAXED);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Sets c's deadline from its state after an event (see struct conn). */
static void conn_timer(struct worker *w, struct conn *c, uint64_t now)
{
    const struct net_config *cfg = &w->srv->cfg;
    c->deadline = 0;
    c->dl_kind = DL_NONE;
    if (!c->ss.hello && c->handshake_end) {
        c->deadline = c->handshake_end;
        c->dl_kind = DL_HANDSHAKE;
    } else if (c->in_len && !c->out.len && !c->closing && cfg->frame_timeout_ms) {
        if (!c->frame_start) c->frame_start = now;
        c->deadline = c->frame_start + cfg->frame_timeout_ms;
        c->dl_kind = DL_FRAME;
    } else {
        c->frame_start = 0; /* idle, or waiting for its output to drain */
    }
    if (c->deadline && c->deadline < w->next_due) w->next_due = c->deadline;
}

/* Log the first few timeouts of each kind, then one in 1000 (a flood of
 * stalled connections must not flood the log); the stats count them all. */
#define TIMEOUT_LOG_FIRST 10u

static void conn_expire(struct worker *w, struct conn *c)
{
    struct server *srv = w->srv;
    bool hs = c->dl_kind == DL_HANDSHAKE;
    uint64_t n = __atomic_add_fetch(hs ? &srv->handshake_timeouts : &srv->frame_timeouts, 1,
                                    __ATOMIC_RELAXED);
    const char *why = hs ? "no complete HELLO within --handshake-timeout"
                         : "frame incomplete after --frame-timeout";
    if (n <= TIMEOUT_LOG_FIRST || n % 1000 == 0)
        log_info("%s (%s): connection closed: %s (%llu so far)", c->peer, c->ss.client, why,
                 (unsigned long long)n);
    else
        log_debug("%s (%s): connection closed: %s", c->peer, c->ss.client, why);
    conn_close(w, c, NULL);
}

/* Sweeps at most this often (ms): expired connections close up to this late,
 * and connections whose deadlines are spread out cost one sweep per period,
 * not one per connection. */
#define SWEEP_MS 100u

static void sweep(struct worker *w, uint64_t now)
{
    w->next_due = UINT64_MAX;
    for (struct conn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (!c->deadline) continue;
        if (c->deadline <= now)
            conn_expire(w, c);
        else if (c->deadline < w->next_due)
            w->next_due = c->deadline;
    }
}

static void adopt(struct worker *w, const struct accepted *acc, uint64_t now)
{
    int fd = acc->fd;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        drop_accepted(w->srv, acc);
        return;
    }
    c->fd = fd;
    c->pkey = acc->pkey;
    strcpy(c->ss.client, "-");
    struct sockaddr_storage ss = {0}; /* AF_UNSPEC if getpeername fails */
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%u", ip, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "[%s]:%u", ip, ntohs(a->sin6_port));
    } else {
        snprintf(c->peer, sizeof c->peer, "unix#%d", fd);
    }
    c->ss.peer = c->peer;
    c->ss.unix_socket = ss.ss_family == AF_UNIX; /* getpeername said (even unnamed) */
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
        log_warn("epoll_ctl: %s", strerror(errno));
        free(c);
        drop_accepted(w->srv, acc);
        return;
    }
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    if (w->srv->cfg.handshake_timeout_ms) c->handshake_end = now + w->srv->cfg.handshake_timeout_ms;
    conn_timer(w, c, now);
    log_debug("%s: connected (worker %u)", c->peer, w->idx);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event ev[MAX_EVENTS];
    uint64_t last_sweep = 0;
    w->next_due = UINT64_MAX;
    while (!__atomic_load_n(&w->srv->stop, __ATOMIC_ACQUIRE)) {
        int timeout = -1; /* no deadline: sleep until an event */
        if (w->next_due != UINT64_MAX) {
            uint64_t now = now_ms(), at = w->next_due;
            if (at < last_sweep + SWEEP_MS) at = last_sweep + SWEEP_MS;
            timeout = at <= now ? 0 : at - now > 60000 ? 60000 : (int)(at - now);
        }
        int n = epoll_wait(w->epfd, ev, MAX_EVENTS, timeout);
        uint64_t now = now_ms();
        if (n < 0) {
            if (errno == EINTR) continue;
            log_error("worker %u: epoll_wait: %s", w->idx, strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = ev[i].data.ptr;
            if (!c) { /* eventfd: new connections or stop */
                uint64_t v;
                ssize_t r = read(w->evfd, &v, sizeof v);
                (void)r;
                pthread_mutex_lock(&w->qlock);
                for (size_t k = 0; k < w->qlen; k++) adopt(w, &w->queue[k], now);
                w->qlen = 0;
                pthread_mutex_unlock(&w->qlock);
                continue;
            }
            uint32_t e = ev[i].events;
            if (e & EPOLLERR) {
                conn_close(w, c, "socket error");
                continue;
            }
            if ((e & EPOLLOUT) && !conn_writable(w, c)) continue;
            if ((e & (EPOLLIN | EPOLLHUP)) && !conn_readable(w, c)) continue;
            conn_timer(w, c, now);
        }
        if (now >= w->next_due && now >= last_sweep + SWEEP_MS) {
            sweep(w, now);
            last_sweep = now;
        }
    }
    unsigned closed = 0;
    while (w->conns) {
        conn_close(w, w->conns, NULL);
        closed++;
    }
    if (closed) log_info("worker %u: closed %u connections", w->idx, closed);
    return NULL;
}

/* ---- listeners and acceptor --------------------------------------------- */

/* spec is --listen's HOST:PORT, in the syntax of the client's server lists
 * (lib/wire/hostport.c), with port 0 for any free port. */
static int listen_tcp(const char *spec, uint16_t *bound_port)
{
    struct remoca_hostport hp;
    char why[128];
    if (strncmp(spec, "unix:", 5) == 0 || spec[0] == '/') { /* a client's server-list form */
        log_error("--listen %s: TCP only (a unix socket is --unix PATH)", spec);
        return -1;
    }
    if (remoca_hostport_parse(spec, 0, &hp, why, sizeof why) < 0) {
        log_error("--listen %s: %s", spec, why);
        return -1;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(hp.host, hp.port, &hints, &res);
    if (rc != 0) {
        log_error("--listen %s: %s", spec, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0) break;
        log_error("--listen %s: %s", spec, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return -1;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static int listen_unix(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
        log_error("--unix %s: path too long", path);
        return -1;
    }
    strcpy(a.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path); /* stale socket */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
        log_error("--unix %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

static int write_port_file(const char *path, uint16_t port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) < 0) {
        log_error("--port-file %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

struct server *server_start(const struct net_config *cfg, struct store *store)
{
    struct server *srv = calloc(1, sizeof *srv);
    if (!srv) return NULL;
    srv->store = store;
    srv->cfg = *cfg;
    srv->tcp_fd = srv->unix_fd = srv->sig_fd = srv->epfd = -1;
    peer_table_init(&srv->peers);
    srv->ctx = (struct proto_ctx){.store = store,
                                  .counters = counters,
                                  .arg = srv,
                                  .errors = &srv->errors,
                                  .auth = cfg->auth,
                                  .buf_bytes = &srv->buf_bytes,
                                  .max_buffers = cfg->max_buffers,
                                  .tenants = cfg->tenants};
    uint16_t port = 0;
    if (cfg->listen && (srv->tcp_fd = listen_tcp(cfg->listen, &port)) < 0) goto fail;
    if (cfg->unix_path && (srv->unix_fd = listen_unix(cfg->unix_path)) < 0) goto fail;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    srv->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    srv->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (srv->sig_fd < 0 || srv->epfd < 0) {
        log_error("signalfd/epoll: %s", strerror(errno));
        goto fail;
    }
    int fds[3] = {srv->tcp_fd, srv->unix_fd, srv->sig_fd};
    for (int i = 0; i < 3; i++) {
        if (fds[i] < 0) continue;
        struct epoll_event e = {.events = EPOLLIN, .data.fd = fds[i]};
        epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fds[i], &e);
    }

    srv->nworkers = cfg->threads;
    srv->workers = calloc(srv->nworkers, sizeof *srv->workers);
    if (!srv->workers) goto fail;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        w->srv = srv;
        w->idx = i;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        w->scratch = malloc(SCRATCH_SIZE);
        pthread_mutex_init(&w->qlock, NULL);
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
        if (w->epfd < 0 || w->evfd < 0 || !w->scratch ||
            epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &e) < 0 ||
            pthread_create(&w->th, NULL, worker_main, w) != 0) {
            log_error("cannot start worker %u", i);
            srv->nworkers = i; /* the ones started are joined by server_free */
            goto fail;
        }
    }
    if (cfg->listen) log_info("listening on %s (port %u)", cfg->listen, port);
    if (cfg->unix_path) log_info("listening on unix:%s", cfg->unix_path);
    if (cfg->port_file && cfg->listen && write_port_file(cfg->port_file, port) < 0) goto fail;
    return srv;
fail:
    server_free(srv);
    return NULL;
}

static void stop_workers(struct server *srv)
{
    __atomic_store_n(&srv->stop, 1, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < srv->nworkers; i++) {
        uint64_t one = 1;
        ssize_t r = write(srv->workers[i].evfd, &one, sizeof one);
        (void)r;
    }
    for (unsigned i = 0; i < srv->nworkers; i++) pthread_join(srv->workers[i].th, NULL);
    srv->joined = true;
}

/* Hands an accepted fd to the next worker (round robin). */
static void hand_off(struct server *srv, const struct accepted *a)
{
    struct worker *w = &srv->workers[srv->next_worker++ % srv->nworkers];
    pthread_mutex_lock(&w->qlock);
    if (w->qlen == w->qcap) {
        size_t cap = w->qcap ? w->qcap * 2 : 64;
        struct accepted *q = realloc(w->queue, cap * sizeof *q);
        if (!q) {
            pthread_mutex_unlock(&w->qlock);
            drop_accepted(srv, a);
            return;
        }
        w->queue = q;
        w->qcap = cap;
    }
    w->queue[w->qlen++] = *a;
    pthread_mutex_unlock(&w->qlock);
    uint64_t one = 1;
    ssize_t r = write(w->evfd, &one, sizeof one);
    (void)r;
}

static void accept_all(struct server *srv, int lfd)
{
    for (;;) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE) {
                log_warn("accept: %s (raise ulimit -n or lower --max-conns)", strerror(errno));
                usleep(10000);
            }
            return;
        }
        if (__atomic_load_n(&srv->conns, __ATOMIC_RELAXED) >= srv->cfg.max_conns) {
            uint64_t n = __atomic_add_fetch(&srv->conns_refused, 1, __ATOMIC_RELAXED);
            if (n == 1 || n % 1000 == 0)
                log_warn("connection refused: --max-conns %u reached (%llu refused so far)",
                         srv->cfg.max_conns, (unsigned long long)n);
            close(fd);
            continue;
        }
        struct accepted a = {.fd = fd};
        if (srv->cfg.max_conns_per_addr) {
            peer_key_of(fd, (struct sockaddr *)&sa, &a.pkey);
            if (!peer_acquire(&srv->peers, &a.pkey, srv->cfg.max_conns_per_addr)) {
                uint64_t n = __atomic_add_fetch(&srv->conns_refused_addr, 1, __ATOMIC_RELAXED);
                if (n <= TIMEOUT_LOG_FIRST || n % 1000 == 0) {
                    char who[64];
                    peer_key_str(&a.pkey, who, sizeof who);
                    log_warn("connection from %s refused: --max-conns-per-addr %u reached "
                             "(%llu refused so far)",
                             who, srv->cfg.max_conns_per_addr, (unsigned long long)n);
                }
                close(fd);
                continue;
            }
        }
        if (lfd == srv->tcp_fd) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        __atomic_fetch_add(&srv->conns, 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&srv->conns_total, 1, __ATOMIC_RELAXED);
        hand_off(srv, &a);
    }
}

void server_run(struct server *srv)
{
    struct epoll_event ev[4];
    for (;;) {
        int n = epoll_wait(srv->epfd, ev, 4, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            log_error("epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd;
            if (fd == srv->sig_fd) {
                struct signalfd_siginfo si;
                ssize_t r = read(srv->sig_fd, &si, sizeof si);
                log_info("%s received: shutting down (%llu connections open)",
                         r == sizeof si ? strsignal((int)si.ssi_signo) : "signal",
                         (unsigned long long)__atomic_load_n(&srv->conns, __ATOMIC_RELAXED));
                goto out;
            }
            accept_all(srv, fd);
        }
    }
out:
    stop_workers(srv);
}

void server_free(struct server *srv)
{
    if (!srv) return;
    if (srv->workers && !srv->joined) stop_workers(srv);
    for (unsigned i = 0; srv->workers && i < srv->cfg.threads; i++) {
        struct worker *w = &srv->workers[i];
        if (w->epfd > 0) close(w->epfd);
        if (w->evfd > 0) close(w->evfd);
        for (size_t k = 0; k < w->qlen; k++) close(w->queue[k].fd);
        free(w->queue);
        free(w->scratch);
        outbuf_free(&w->out);
        if (w->srv) pthread_mutex_destroy(&w->qlock);
    }
    free(srv->workers);
    if (srv->tcp_fd >= 0) close(srv->tcp_fd);
    if (srv->unix_fd >= 0) {
        close(srv->unix_fd);
        unlink(srv->cfg.unix_path);
    }
    if (srv->sig_fd >= 0) close(srv->sig_fd);
    if (srv->epfd >= 0) close(srv->epfd);
    peer_table_free(&srv->peers);
    free(srv);
}
