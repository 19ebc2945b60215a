/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca-loadgen: a small closed-loop load generator for 4 KiB page servers.
 *
 * It drives remoca-memd (REMOCA wire protocol), memcached (meta text
 * protocol) or a plain echo server with the same key space, the same 4 KiB
 * values and the same loop, so their numbers can be compared side by side.
 *
 *   remoca-loadgen --proto remoca|memcached|echo --server HOST:PORT | --unix PATH
 *                  --op get|put|echo [--conns C] [--depth D] [--threads T]
 *                  [--duration SECS [--warmup SECS] | --ops N] [--keys K] [--seq]
 *                  [--pool NAME] [--cred SECRET]
 *   remoca-loadgen --serve-echo HOST:PORT [--port-file FILE]
 *   remoca-loadgen --free-port
 *
 * Model: C connections, each keeping exactly D requests in flight (a closed
 * loop: a response immediately triggers the next request).  Connections are
 * spread over T worker threads (default 1: the generator shares two cores
 * with the server under test, so it must stay cheap), each running its own
 * epoll loop:
 *
 *   worker ──epoll──┬─ conn 0: out buf ─write─▶ server ─▶ in buf ─parse─▶ slots
 *                   ├─ conn 1: ...
 *                   └─ ...
 *
 * Each request occupies a slot that records its key and the time it was
 * written; a response frees its slot and adds (now - send time) to the
 * latency histogram.  Keys are uniform random in [0, K), or 0..K-1 in order
 * with --seq (used to preload the server).  Every response is validated
 * (lg_proto.c): errors, misses and wrong values are counted and reported.
 *
 * Output, one line on stdout:
 *   ops=N secs=S ops_per_s=X p50_us=X p99_us=X p999_us=X mean_us=X errors=N misses=N all_ops=N
 * (ops and the latencies count the measured window only; all_ops counts every
 * response, warmup and drain included, for per-op server CPU accounting).
 * Exit status 0, or 3 when any error or miss was seen, 1 on a setup failure.
 */
#include "loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct opts {
    enum lg_proto proto;
    enum lg_op op;
    char host[256];
    int port;
    const char *unix_path;
    unsigned conns, depth, threads;
    double duration, warmup;
    uint64_t ops, keys;
    bool seq;
    const char *pool, *cred;
};

/* One request in flight. */
struct slot {
    uint64_t key;
    uint64_t t0; /* ns when written; 0 = free */
};

/* One connection:
 *
 *   out: [ooff ........ olen)  bytes encoded, not yet written
 *   in:  [0 ........... ilen)  bytes read, not yet parsed
 *   slots[depth], free stack of slot numbers, fifo of slots in send order
 *   (used by in-order protocols, whose responses carry no id)
 */
struct conn {
    int fd;
    struct lg_conn_proto cp;
    uint8_t *out, *in;
    size_t olen, ooff, ilen, icap;
    struct slot *slots;
    unsigned *freestk, nfree;
    unsigned *fifo, fhead, ftail;
    unsigned outstanding;
    uint32_t seq;
    bool pollout, dead;
};

struct worker {
    pthread_t tid;
    unsigned idx;
    const struct opts *o;
    struct conn *conns;
    unsigned nconns;
    uint64_t rng, next_key, issued, quota;
    uint64_t t_start, t_measure, t_end, t_done;
    uint64_t ok, errors, misses, all;
    struct lg_hist hist;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static bool timed(const struct opts *o) { return o->duration > 0; }

static bool can_issue(struct worker *w, uint64_t now)
{
    if (timed(w->o)) return now < w->t_end;
    return w->issued < w->quota;
}

static uint64_t pick_key(struct worker *w)
{
    if (!w->o->seq) return xorshift(&w->rng) % w->o->keys;
    uint64_t k = w->next_key;
    w->next_key += w->o->threads;
    return k % w->o->keys;
}

static void set_pollout(int ep, struct conn *c, bool on)
{
    if (c->pollout == on) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->pollout = on;
}

static void kill_conn(struct worker *w, struct conn *c, const char *why)
{
    if (c->dead) return;
    fprintf(stderr, "loadgen: connection lost (%s), %u requests in flight\n", why, c->outstanding);
    w->errors += c->outstanding;
    c->outstanding = 0;
    c->dead = true;
    close(c->fd);
}

static void flush(struct worker *w, int ep, struct conn *c)
{
    while (c->ooff < c->olen) {
        ssize_t n = write(c->fd, c->out + c->ooff, c->olen - c->ooff);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) {
            kill_conn(w, c, strerror(errno));
            return;
        }
        c->ooff += (size_t)n;
    }
    if (c->ooff == c->olen) c->ooff = c->olen = 0;
    set_pollout(ep, c, c->ooff < c->olen);
}

/* Tops the connection up to `depth` requests in flight, then writes. */
static void fill(struct worker *w, int ep, struct conn *c)
{
    if (c->dead) return;
    uint64_t now = now_ns();
    if (c->ooff) {
        memmove(c->out, c->out + c->ooff, c->olen - c->ooff);
        c->olen -= c->ooff;
        c->ooff = 0;
    }
    while (c->outstanding < w->o->depth && can_issue(w, now)) {
        unsigned s = c->freestk[--c->nfree];
        uint64_t key = pick_key(w);
        c->olen += lg_proto_encode(&c->cp, c->out + c->olen, w->o->op, key, s, ++c->seq);
        c->slots[s] = (struct slot){.key = key, .t0 = now};
        c->fifo[c->ftail++ % w->o->depth] = s;
        c->outstanding++;
        w->issued++;
    }
    flush(w, ep, c);
}

static void complete(struct worker *w, struct conn *c, const struct lg_completion *cm, uint64_t now)
{
    unsigned depth = w->o->depth, s;
    if (cm->slot < 0) {
        if (c->fhead == c->ftail) {
            kill_conn(w, c, "response to no request");
            return;
        }
        s = c->fifo[c->fhead++ % depth];
    } else {
        s = (unsigned)cm->slot;
        if (s >= depth || !c->slots[s].t0) {
            kill_conn(w, c, "response with an unknown request id");
            return;
        }
    }
    struct slot *sl = &c->slots[s];
    enum lg_result r = cm->result;
    if (r == LG_OK && cm->value && !lg_value_check(cm->value, sl->key)) r = LG_ERROR;
    w->all++;
    bool counted = !timed(w->o) || (sl->t0 >= w->t_measure && now <= w->t_end);
    if (counted) {
        if (r == LG_OK) {
            w->ok++;
            lg_hist_add(&w->hist, now - sl->t0);
        } else if (r == LG_MISS)
            w->misses++;
        else
            w->errors++;
    } else if (r == LG_ERROR)
        w->errors++;
    sl->t0 = 0;
    c->freestk[c->nfree++] = s;
    c->outstanding--;
}

static void on_readable(struct worker *w, int ep, struct conn *c)
{
    ssize_t n = read(c->fd, c->in + c->ilen, c->icap - c->ilen);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (n <= 0) {
        kill_conn(w, c, n == 0 ? "closed by the server" : strerror(errno));
        return;
    }
    uint64_t now = now_ns();
    c->ilen += (size_t)n;
    size_t off = 0;
    for (;;) {
        struct lg_completion cm;
        ssize_t used = lg_proto_parse(&c->cp, w->o->op, c->in + off, c->ilen - off, &cm);
        if (used < 0) {
            kill_conn(w, c, "unparsable response");
            return;
        }
        if (used == 0) break;
        off += (size_t)used;
        complete(w, c, &cm, now);
        if (c->dead) return;
    }
    if (off) {
        memmove(c->in, c->in + off, c->ilen - off);
        c->ilen -= off;
    }
    fill(w, ep, c);
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    for (unsigned i = 0; i < w->nconns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &w->conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, w->conns[i].fd, &ev);
    }
    w->t_start = now_ns();
    w->t_measure = w->t_start + (uint64_t)(w->o->warmup * 1e9);
    w->t_end = w->t_measure + (uint64_t)(w->o->duration * 1e9);
    for (unsigned i = 0; i < w->nconns; i++) fill(w, ep, &w->conns[i]);

    uint64_t drain_deadline = 0;
    for (;;) {
        unsigned busy = 0, alive = 0;
        for (unsigned i = 0; i < w->nconns; i++) {
            busy += w->conns[i].outstanding;
            alive += !w->conns[i].dead;
        }
        uint64_t now = now_ns();
        if (!alive || (!busy && !can_issue(w, now))) break;
        if (!can_issue(w, now)) {
            if (!drain_deadline) drain_deadline = now + 5000000000ull;
            if (now > drain_deadline) {
                fprintf(stderr, "loadgen: %u responses never came\n", busy);
                w->errors += busy;
                break;
            }
        }
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, 10);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->dead) continue;
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(w, ep, c);
            if (!c->dead && (evs[i].events & EPOLLOUT)) flush(w, ep, c);
        }
        /* A connection with nothing in flight and nothing to read (only
         * possible at start or after a stall) is topped up here. */
        for (unsigned i = 0; i < w->nconns; i++)
            if (!w->conns[i].outstanding) fill(w, ep, &w->conns[i]);
    }
    w->t_done = now_ns();
    close(ep);
    return NULL;
}

static int conn_init(struct conn *c, const struct opts *o)
{
    c->cp.proto = o->proto;
    c->fd = lg_proto_connect(&c->cp, o->host, o->port, o->unix_path, o->pool, o->cred);
    if (c->fd < 0) return -1;
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    size_t ocap = (size_t)o->depth * LG_MAX_REQ;
    c->icap = (size_t)o->depth * LG_MAX_REQ + 256 * 1024;
    c->out = malloc(ocap);
    c->in = malloc(c->icap);
    c->slots = calloc(o->depth, sizeof *c->slots);
    c->freestk = malloc(o->depth * sizeof *c->freestk);
    c->fifo = malloc(o->depth * sizeof *c->fifo);
    if (!c->out || !c->in || !c->slots || !c->freestk || !c->fifo) return -1;
    for (unsigned i = 0; i < o->depth; i++) c->freestk[i] = o->depth - 1 - i;
    c->nfree = o->depth;
    return 0;
}

static int free_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
        perror("loadgen: free port");
        return 1;
    }
    printf("%d\n", ntohs(sin.sin_port));
    close(fd);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: remoca-loadgen --proto remoca|memcached|echo --server HOST:PORT|--unix PATH\n"
            "         --op get|put|echo [--conns C] [--depth D] [--threads T]\n"
            "         [--duration SECS [--warmup SECS] | --ops N] [--keys K] [--seq]\n"
            "         [--pool NAME] [--cred SECRET]\n"
            "       remoca-loadgen --serve-echo HOST:PORT [--port-file FILE]\n"
            "       remoca-loadgen --free-port\n");
    exit(2);
}

static unsigned long long num(const char *s, const char *what, unsigned long long max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < 1 || v > max) {
        fprintf(stderr, "loadgen: bad %s: %s (1..%llu)\n", what, s, max);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    struct opts o = {.proto = LG_REMOCA,
                     .op = LG_GET,
                     .conns = 1,
                     .depth = 1,
                     .threads = 1,
                     .warmup = -1,
                     .keys = 16384,
                     .pool = "bench"};
    const char *echo_at = NULL, *port_file = NULL, *server = NULL;
    bool have_op = false;
    static const struct option lopts[] = {{"proto", 1, 0, 'P'},
                                          {"server", 1, 0, 's'},
                                          {"unix", 1, 0, 'u'},
                                          {"op", 1, 0, 'o'},
                                          {"conns", 1, 0, 'c'},
                                          {"depth", 1, 0, 'd'},
                                          {"threads", 1, 0, 't'},
                                          {"duration", 1, 0, 'D'},
                                          {"warmup", 1, 0, 'W'},
                                          {"ops", 1, 0, 'n'},
                                          {"keys", 1, 0, 'k'},
                                          {"seq", 0, 0, 'S'},
                                          {"pool", 1, 0, 'p'},
                                          {"cred", 1, 0, 'C'},
                                          {"serve-echo", 1, 0, 'E'},
                                          {"port-file", 1, 0, 'F'},
                                          {"free-port", 0, 0, 'R'},
                                          {"help", 0, 0, 'h'},
                                          {0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
        switch (ch) {
        case 'P':
            if (!strcmp(optarg, "remoca"))
                o.proto = LG_REMOCA;
            else if (!strcmp(optarg, "memcached"))
                o.proto = LG_MEMCACHED;
            else if (!strcmp(optarg, "echo"))
                o.proto = LG_ECHO;
            else
                usage();
            break;
        case 's': server = optarg; break;
        case 'u': o.unix_path = optarg; break;
        case 'o':
            have_op = true;
            if (!strcmp(optarg, "get"))
                o.op = LG_GET;
            else if (!strcmp(optarg, "put"))
                o.op = LG_PUT;
            else if (!strcmp(optarg, "echo"))
                o.op = LG_ECHO_OP;
            else
                usage();
            break;
        case 'c': o.conns = (unsigned)num(optarg, "--conns", 4096); break;
        case 'd': o.depth = (unsigned)num(optarg, "--depth", 1024); break;
        case 't': o.threads = (unsigned)num(optarg, "--threads", 64); break;
        case 'D': o.duration = atof(optarg); break;
        case 'W': o.warmup = atof(optarg); break;
        case 'n': o.ops = num(optarg, "--ops", UINT64_MAX); break;
        case 'k': o.keys = num(optarg, "--keys", UINT64_MAX); break;
        case 'S': o.seq = true; break;
        case 'p': o.pool = optarg; break;
        case 'C': o.cred = optarg; break;
        case 'E': echo_at = optarg; break;
        case 'F': port_file = optarg; break;
        case 'R': return free_port();
        default: usage();
        }
    }
    if (optind != argc) usage();
    if (echo_at) {
        char host[256];
        int port;
        if (lg_parse_hostport(echo_at, host, sizeof host, &port)) usage();
        return lg_echo_serve(host, port, port_file) ? 1 : 0;
    }
    if (!server && !o.unix_path) usage();
    if (server && lg_parse_hostport(server, o.host, sizeof o.host, &o.port)) usage();
    if (o.proto == LG_ECHO)
        o.op = LG_ECHO_OP;
    else if (!have_op || o.op == LG_ECHO_OP)
        usage();
    if (o.seq && !o.ops && !timed(&o)) o.ops = o.keys;
    if (!timed(&o) && !o.ops) {
        fprintf(stderr, "loadgen: give --duration or --ops\n");
        return 2;
    }
    if (o.warmup < 0) o.warmup = timed(&o) ? (o.duration >= 2 ? 0.5 : 0.1) : 0;
    if (!timed(&o)) o.warmup = 0;
    if (o.threads > o.conns) o.threads = o.conns;

    struct conn *conns = calloc(o.conns, sizeof *conns);
    struct worker *ws = calloc(o.threads, sizeof *ws);
    if (!conns || !ws) return 1;
    for (unsigned i = 0; i < o.conns; i++)
        if (conn_init(&conns[i], &o)) return 1;
    /* Connections are dealt out in contiguous runs, one run per worker. */
    for (unsigned t = 0, first = 0; t < o.threads; t++) {
        struct worker *w = &ws[t];
        unsigned n = o.conns / o.threads + (t < o.conns % o.threads);
        *w = (struct worker){.idx = t,
                             .o = &o,
                             .conns = conns + first,
                             .nconns = n,
                             .rng = 0x9E3779B97F4A7C15ull * (t + 1) ^ (uint64_t)now_ns(),
                             .next_key = t};
        w->quota = o.ops / o.threads + (t < o.ops % o.threads);
        first += n;
    }
    for (unsigned t = 0; t < o.threads; t++)
        if (pthread_create(&ws[t].tid, NULL, worker_run, &ws[t])) {
            perror("loadgen: thread");
            return 1;
        }
    struct lg_hist *all = calloc(1, sizeof *all);
    uint64_t ok = 0, errors = 0, misses = 0, all_ops = 0, t0 = UINT64_MAX, t1 = 0;
    for (unsigned t = 0; t < o.threads; t++) {
        pthread_join(ws[t].tid, NULL);
        lg_hist_merge(all, &ws[t].hist);
        ok += ws[t].ok;
        errors += ws[t].errors;
        misses += ws[t].misses;
        all_ops += ws[t].all;
        if (ws[t].t_start < t0) t0 = ws[t].t_start;
        if (ws[t].t_done > t1) t1 = ws[t].t_done;
    }
    double secs = timed(&o) ? o.duration : (double)(t1 - t0) / 1e9;
    printf("ops=%llu secs=%.3f ops_per_s=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f mean_us=%.1f "
           "errors=%llu misses=%llu all_ops=%llu\n",
           (unsigned long long)ok, secs, secs > 0 ? (double)ok / secs : 0,
           lg_hist_quantile(all, 0.50) / 1e3, lg_hist_quantile(all, 0.99) / 1e3,
           lg_hist_quantile(all, 0.999) / 1e3, all->n ? all->sum_ns / (double)all->n / 1e3 : 0,
           (unsigned long long)errors, (unsigned long long)misses, (unsigned long long)all_ops);
    return errors || misses ? 3 : 0;
}
