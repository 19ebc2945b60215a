/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca-vhost: a vhost-user-blk backend with REMOCA's remote cache.
 *
 *   remoca-vhost --socket PATH --disk FILE|NBD-URI [--servers LIST | --servers-file F]
 *                [--pool NAME]
 *                [--mode off|inclusive|exclusive] [--queues N] [--inflight N] [--readonly]
 *                [--secret-file F] [--seal auto|on|off] [--key-file F] [--stats FILE]
 *
 *   main thread: options ─▶ disk, remote client, cache engine ─▶ listen on PATH
 *     loop: accept one front end (QEMU); read its messages (msg.c), handle
 *     them (device.c), reply; when it closes, stop the queues, forget its
 *     memory and rings (vu_dev_reset), and accept the next one (QEMU with
 *     reconnect=1, or a new QEMU).  SIGINT/SIGTERM end the loop.
 *   queue threads (queue.c): one per running queue.
 *   stats thread (nbd/statsfile.c, shared with the NBD filter): --stats FILE.
 *   servers thread (nbd/serversfile.c, likewise): --servers-file FILE, polled
 *     every second; a changed list is applied with remoca_client_set_servers.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "remoca/cache.h"
#include "remoca/mrc.h"
#include "remoca/client.h"
#include "remoca/seal.h"

#include "../nbd/serversfile.h"
#include "../nbd/statsfile.h"
#include "blk.h"
#include "device.h"
#include "disk.h"
#include "io.h"
#include "vlog.h"
#include "queue.h"

struct server {
    struct vu_dev dev;
    struct blk_dev blk;
    struct vh_io io;
    struct vh_worker w[VU_MAX_QUEUES];
    struct vu_dev_ops ops;
    unsigned nqueues;
    unsigned inflight; /* per queue */
};

static void get_config(void *ctx, uint8_t *buf)
{
    struct server *s = ctx;
    blk_config(&s->blk, s->nqueues, buf);
}

static int queue_start(void *ctx, struct vu_dev *d, unsigned i)
{
    struct server *s = ctx;
    return vh_worker_start(&s->w[i], &d->q[i], i, &s->blk, &s->io, s->inflight);
}

static void queue_stop(void *ctx, struct vu_dev *d, unsigned i)
{
    struct server *s = ctx;
    vh_worker_stop(&s->w[i]);
}

/* A new memory table (QEMU's handshake, a reboot, a reconnect): exclusive
 * mode forgets which guest page held which block, and bounds its maps by the
 * new guest RAM. */
static void mem_changed(void *ctx, const struct vmem *m)
{
    struct server *s = ctx;
    vu_debug("memory table: %u regions, %" PRIu64 " guest pages", m->n, m->guest_pages);
    if (s->io.mode == VH_MODE_EXCLUSIVE &&
        remoca_cache_pages_reset(s->io.cache, m->guest_pages) < 0)
        vu_err("exclusive mode: cannot size the page maps for %" PRIu64 " guest pages: %s",
               m->guest_pages, strerror(errno));
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: remoca-vhost --socket PATH --disk FILE|NBD-URI [options]\n"
        "  --socket PATH       vhost-user socket to listen on (QEMU connects to it)\n"
        "  --disk FILE|URI     backing disk: a file, a block device, or an NBD URI\n"
        "                      (nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH)\n"
        "  --mode MODE         off: no remote tier, straight to the disk;\n"
        "                      inclusive: the remote cache of the NBD filter;\n"
        "                      exclusive: eviction inference (guest RAM + remote add up)\n"
        "                      (default: inclusive with --servers, else off)\n"
        "  --servers LIST      memory servers: host:port or unix:PATH, comma list;\n"
        "                      ADDR*W weighs a server W (1..16, default 1)\n"
        "  --servers-file FILE the list in a file instead (one entry per line or comma\n"
        "                      list, # comments), re-read when it changes (every second)\n"
        "  --pool NAME         pool on the servers (default vhost:<absolute disk path>)\n"
        "  --secret-file FILE  shared secret for servers run with --secret-file (first line)\n"
        "  --seal auto|on|off  pages encrypted and authenticated before they leave this\n"
        "                      host (auto, the default: on when a server is over TCP)\n"
        "  --key-file FILE     the sealing key's secret (32..4096 bytes, mode 600);\n"
        "                      default: a random key per process\n"
        "  --queues N          request queues offered, 1..%d (default 1)\n"
        "  --inflight N        requests executed at once per queue, 1..%d (default %d);\n"
        "                      completions still reach the guest in order\n"
        "  --readonly          refuse writes (the guest sees a read-only disk)\n"
        "  --stats FILE        key=value counters, rewritten every second and at exit\n"
        "  --verbose           log every queue start and memory change\n"
        "  --help              this text\n"
        "QEMU: -object memory-backend-memfd,id=mem,size=SIZE,share=on -machine memory-backend=mem\n"
        "      -chardev socket,id=c0,path=PATH[,reconnect=1] "
        "-device vhost-user-blk-pci,chardev=c0,num-queues=N\n",
        VU_MAX_QUEUES, VH_INFLIGHT_MAX, VH_INFLIGHT_DEFAULT);
}

static void client_log(void *opaque, int level, const char *msg)
{
    vu_log(level <= REMOCA_LOG_WARN ? VU_LOG_WARN : VU_LOG_DEBUG, "remote: %s", msg);
}

static int listen_on(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
        vu_err("--socket %s: path longer than %zu bytes", path, sizeof a.sun_path - 1);
        return -1;
    }
    strcpy(a.sun_path, path);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            vu_err("--socket %s: exists and is not a socket", path);
            return -1;
        }
        unlink(path); /* a stale socket of an earlier run */
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4) < 0) {
        vu_err("--socket %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    return fd;
}

static void log_stats(const struct server *s)
{
    const struct blk_stats *b = &s->blk.st;
    vu_info("requests=%" PRIu64 " reads=%" PRIu64 " writes=%" PRIu64 " flushes=%" PRIu64
            " discards=%" PRIu64 " write_zeroes=%" PRIu64 " get_ids=%" PRIu64 " ioerr=%" PRIu64
            " unsupp=%" PRIu64 " bad_chains=%" PRIu64 " bounced=%" PRIu64 " page_calls=%" PRIu64,
            b->requests, b->reads, b->writes, b->flushes, b->discards, b->write_zeroes, b->get_ids,
            b->ioerr, b->unsupp, b->bad_chains, s->io.st.bounced, s->io.st.page_calls);
}

/* Serves one front end until it closes, or a signal: 1 on a signal. */
static int serve_connection(struct server *s, int conn, int sigfd)
{
    struct vu_msg m;
    struct vu_reply r;
    char err[512];
    for (;;) {
        struct pollfd p[2] = {{conn, POLLIN, 0}, {sigfd, POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            vu_err("poll: %s", strerror(errno));
            return 1;
        }
        if (p[1].revents) return 1;
        int rc = vu_msg_recv(conn, &m, err, sizeof err);
        if (rc == 0) {
            vu_info("front end closed the connection");
            return 0;
        }
        if (rc < 0 || vu_msg_check(&m, err, sizeof err) < 0) {
            vu_warn("closing the connection: %s", err);
            vu_msg_close_fds(&m);
            return 0;
        }
        vu_debug("%s", vu_request_name(m.hdr.request));
        if (vu_dev_handle(&s->dev, &m, &r, err, sizeof err) < 0) {
            vu_warn("closing the connection: %s", err);
            return 0;
        }
        if (r.send && vu_msg_reply(conn, m.hdr.request, &r.p, r.size) < 0) {
            vu_warn("closing the connection: reply to %s: %s", vu_request_name(m.hdr.request),
                    strerror(errno));
            return 0;
        }
    }
}

static char *default_pool(const char *disk, bool sealed)
{
    char abs[PATH_MAX], *out = NULL;
    const char *name = realpath(disk, abs) ? abs : disk;
    const char *kind = sealed ? "vhost-sealed" : "vhost"; /* a pool is one or the other */
    if (strlen(name) + strlen(kind) + 1 <= REMOCA_MAX_NAME) {
        if (asprintf(&out, "%s:%s", kind, name) < 0) return NULL;
    } else {
        uint64_t h = 1469598103934665603ull; /* FNV-1a */
        for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
        if (asprintf(&out, "%s:hash:%016" PRIx64, kind, h) < 0) return NULL;
    }
    return out;
}

/* A whole number from 1 to max for option opt, or a message and false. */
static bool parse_count(const char *opt, const char *arg, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    *out = strtoul(arg, &end, 10);
    if (errno || end == arg || *end || *out < 1 || *out > max) {
        fprintf(stderr, "remoca-vhost: %s '%s': expected a number from 1 to %lu\n", opt, arg, max);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"socket", required_argument, NULL, 's'},
                                         {"disk", required_argument, NULL, 'd'},
                                         {"servers", required_argument, NULL, 'S'},
                                         {"servers-file", required_argument, NULL, 'L'},
                                         {"pool", required_argument, NULL, 'p'},
                                         {"mode", required_argument, NULL, 'm'},
                                         {"queues", required_argument, NULL, 'q'},
                                         {"readonly", no_argument, NULL, 'r'},
                                         {"secret-file", required_argument, NULL, 'F'},
                                         {"seal", required_argument, NULL, 'E'},
                                         {"key-file", required_argument, NULL, 'K'},
                                         {"stats", required_argument, NULL, 'T'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"inflight", required_argument, NULL, 'i'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *sock = NULL, *disk_spec = NULL, *servers = NULL, *pool = NULL, *mode = NULL,
               *secret_file = NULL, *stats_path = NULL, *servers_file = NULL, *key_file = NULL;
    enum remoca_seal_mode seal_mode = REMOCA_SEAL_AUTO;
    char *servers_from_file = NULL;
    unsigned long queues = 1, inflight = VH_INFLIGHT_DEFAULT;
    bool readonly = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': sock = optarg; break;
        case 'd': disk_spec = optarg; break;
        case 'S': servers = optarg; break;
        case 'L': servers_file = optarg; break;
        case 'p': pool = optarg; break;
        case 'm': mode = optarg; break;
        case 'F': secret_file = optarg; break;
        case 'K': key_file = optarg; break;
        case 'E':
            if (remoca_seal_mode_parse(optarg, &seal_mode) < 0) {
                fprintf(stderr, "remoca-vhost: --seal: '%s' is not auto, on or off\n", optarg);
                return 2;
            }
            break;
        case 'T': stats_path = optarg; break;
        case 'r': readonly = true; break;
        case 'v': vu_log_level = VU_LOG_DEBUG; break;
        case 'q':
            if (!parse_count("--queues", optarg, VU_MAX_QUEUES, &queues)) return 2;
            break;
        case 'i':
            if (!parse_count("--inflight", optarg, VH_INFLIGHT_MAX, &inflight)) return 2;
            break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "remoca-vhost: unknown option or missing value: %s\n",
                    argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "remoca-vhost: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!sock || !disk_spec) {
        fprintf(stderr, "remoca-vhost: --socket and --disk are required (--help)\n");
        return 2;
    }
    if (servers && servers_file) {
        fprintf(stderr, "remoca-vhost: --servers and --servers-file exclude each other\n");
        return 2;
    }
    if (servers_file) { /* the list to start with; the watcher follows changes */
        char ferr[512];
        if (!(servers = servers_from_file = serversfile_read(servers_file, ferr, sizeof ferr))) {
            fprintf(stderr, "remoca-vhost: --servers-file: %s\n", ferr);
            return 2;
        }
    }
    enum vh_mode m = servers ? VH_MODE_INCLUSIVE : VH_MODE_OFF;
    if (mode) {
        if (!strcmp(mode, "off"))
            m = VH_MODE_OFF;
        else if (!strcmp(mode, "inclusive"))
            m = VH_MODE_INCLUSIVE;
        else if (!strcmp(mode, "exclusive"))
            m = VH_MODE_EXCLUSIVE;
        else {
            fprintf(stderr, "remoca-vhost: --mode '%s': expected off, inclusive or exclusive\n",
                    mode);
            return 2;
        }
    }
    if (m == VH_MODE_OFF && (servers || pool || secret_file)) {
        fprintf(stderr, "remoca-vhost: --servers, --pool and --secret-file configure the remote "
                        "cache, which --mode off does not use\n");
        return 2;
    }
    if (m != VH_MODE_OFF && !servers) {
        fprintf(stderr,
                "remoca-vhost: --mode %s needs --servers (e.g. --servers "
                "127.0.0.1:7400 or --servers unix:/run/remoca.sock)\n",
                mode);
        return 2;
    }
    if (pool && (!*pool || strlen(pool) > REMOCA_MAX_NAME)) {
        fprintf(stderr, "remoca-vhost: --pool: name must be 1..%u bytes\n", REMOCA_MAX_NAME);
        return 2;
    }
    char secret[512] = "";
    if (secret_file) {
        FILE *f = fopen(secret_file, "r");
        if (!f || !fgets(secret, sizeof secret, f)) {
            fprintf(stderr, "remoca-vhost: --secret-file %s: %s\n", secret_file,
                    f ? "empty" : strerror(errno));
            if (f) fclose(f);
            return 2;
        }
        fclose(f);
        secret[strcspn(secret, "\r\n")] = 0;
        if (!*secret) {
            fprintf(stderr, "remoca-vhost: --secret-file %s: the first line is empty\n",
                    secret_file);
            return 2;
        }
    }

    /* Before any thread starts (the remote client's): SIGINT and SIGTERM
     * are read from a signalfd by the main loop only. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    struct server *s = calloc(1, sizeof *s);
    if (!s) return 1;
    /* an NBD disk gets one connection per request that may be in flight */
    struct disk *disk =
        disk_open(disk_spec, readonly, (unsigned)(queues * inflight), err, sizeof err);
    if (!disk) {
        fprintf(stderr, "remoca-vhost: %s\n", err);
        return 1;
    }
    if (disk_size(disk) % 512)
        vu_warn("--disk %s: size %" PRIu64 " is not a multiple of 512; the last %" PRIu64
                " bytes are not visible to the guest",
                disk_spec, disk_size(disk), disk_size(disk) % 512);

    struct remoca_client *client = NULL;
    struct remoca_cache *cache = NULL;
    struct remoca_seal *seal = NULL;
    char *pool_name = NULL;
    uint8_t key[REMOCA_SEAL_KEY_MAX];
    int key_len = 0;
    if (key_file &&
        (key_len = remoca_seal_load_key(key_file, key, sizeof key, err, sizeof err)) < 0) {
        fprintf(stderr, "remoca-vhost: --key-file: %s\n", err);
        return 2;
    }
    bool sealed = m != VH_MODE_OFF && remoca_seal_wanted(seal_mode, servers);
    if (m != VH_MODE_OFF) {
        pool_name = pool ? strdup(pool) : default_pool(disk_spec, sealed);
        struct remoca_client_opts co = {.servers = servers,
                                        .pool = pool_name,
                                        .name = "remoca-vhost",
                                        .secret = *secret ? secret : NULL,
                                        .log = client_log,
                                        .shm = REMOCA_SHM_ON,
                                        .sealed = sealed};
        client = remoca_client_new(&co, err, sizeof err);
        if (!client) {
            fprintf(stderr, "remoca-vhost: %s\n", err);
            return 1;
        }
        unsigned up = remoca_client_wait_ready(client, REMOCA_DEFAULT_TIMEOUT_MS);
        vu_info("pool %s: %u of %u memory servers up", pool_name, up, remoca_server_count(client));
        struct remoca_cache_opts o = {.disk_size = disk_size(disk),
                                      .write = REMOCA_WRITE_INVALIDATE,
                                      .remote = &remoca_client_remote_ops,
                                      .remote_ctx = client,
                                      /* exclusive: the maps are sized again by every memory
                                       * table (mem_changed); 1 page until the first */
                                      .mode = m == VH_MODE_EXCLUSIVE ? REMOCA_MODE_EXCLUSIVE
                                                                     : REMOCA_MODE_INCLUSIVE,
                                      .guest_pages = 1};
        if (sealed) {
            struct remoca_seal_opts so = {.remote = &remoca_client_sealed_ops,
                                          .remote_ctx = client,
                                          .key = key_len ? key : NULL,
                                          .key_len = (size_t)key_len,
                                          .pool = pool_name,
                                          .nblocks = disk_size(disk) / REMOCA_PAGE_SIZE};
            if (!(seal = remoca_seal_new(&so, err, sizeof err))) {
                fprintf(stderr, "remoca-vhost: %s\n", err);
                return 1;
            }
            o.remote = &remoca_seal_remote_ops;
            o.remote_ctx = seal;
        }
        cache = remoca_cache_new(&o, err, sizeof err);
        if (!cache) {
            fprintf(stderr, "remoca-vhost: %s\n", err);
            return 1;
        }
    }
    memset(secret, 0, sizeof secret);
    explicit_bzero(key, sizeof key);

    s->nqueues = (unsigned)queues;
    s->inflight = (unsigned)inflight;
    s->blk.size = disk_size(disk);
    s->blk.readonly = readonly;
    s->blk.ops = &vh_io_ops;
    strncpy(s->blk.serial, "remoca-vhost", sizeof s->blk.serial);
    s->io.mode = m;
    s->io.disk = disk;
    s->io.cache = cache;
    s->io.mem = &s->dev.mem;
    if (m == VH_MODE_OFF) { /* a curve of its own: what a cache would save (remoca stats --mrc) */
        uint64_t blocks = (disk_size(disk) + 4095) / 4096;
        if (blocks > REMOCA_CACHE_MRC_MAX_BLOCKS) blocks = REMOCA_CACHE_MRC_MAX_BLOCKS;
        s->io.mrc = remoca_mrc_new(REMOCA_CACHE_MRC_SAMPLES, blocks ? blocks : 1);
        if (!s->io.mrc) vu_warn("no miss-ratio curve: %s", strerror(errno));
    }
    s->ops = (struct vu_dev_ops){.device_features = blk_features(&s->blk, s->nqueues),
                                 .nqueues = s->nqueues,
                                 .get_config = get_config,
                                 .queue_start = queue_start,
                                 .queue_stop = queue_stop,
                                 .mem_changed = mem_changed};
    vu_dev_init(&s->dev, &s->ops, s);

    int sigfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    int lfd = listen_on(sock);
    if (sigfd < 0 || lfd < 0) return 1;

    struct remoca_cache *cache_ptr = cache;
    struct statsfile *stats = NULL;
    if (stats_path && !(stats = statsfile_start(stats_path, &cache_ptr, client))) return 1;
    if (stats && s->io.mrc) statsfile_set_mrc(stats, s->io.mrc);
    if (stats && seal) statsfile_set_seal(stats, &seal);
    struct serversfile *watch = NULL;
    if (servers_file && client && !(watch = serversfile_start(servers_file, client))) return 1;

    vu_info("serving %s (%" PRIu64 " bytes%s) on %s, mode %s, %u queue%s", disk_spec,
            disk_size(disk), readonly ? ", read-only" : "", sock,
            m == VH_MODE_OFF         ? "off"
            : m == VH_MODE_INCLUSIVE ? "inclusive"
                                     : "exclusive",
            s->nqueues, s->nqueues > 1 ? "s" : "");
    if (m != VH_MODE_OFF) vu_info("remote pages %s", seal ? "sealed (AES-256-GCM)" : "plain");
    for (;;) {
        struct pollfd p[2] = {{lfd, POLLIN, 0}, {sigfd, POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            vu_err("poll: %s", strerror(errno));
            break;
        }
        if (p[1].revents) break;
        int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0) {
            if (errno != EINTR && errno != ECONNABORTED) vu_warn("accept: %s", strerror(errno));
            continue;
        }
        vu_info("front end connected");
        int stop = serve_connection(s, conn, sigfd);
        vu_dev_reset(&s->dev);
        close(conn);
        log_stats(s);
        if (stop) break;
    }
    vu_info("exiting");
    close(lfd);
    unlink(sock);
    vu_dev_reset(&s->dev);
    serversfile_stop(watch); /* before the client goes */
    if (stats) statsfile_stop(stats);
    remoca_cache_free(cache);
    remoca_seal_free(seal); /* after the engine, before the client it calls */
    remoca_mrc_free(s->io.mrc);
    remoca_client_free(client);
    int fe = disk_flush(disk);
    if (fe) vu_warn("flush at exit: %s", strerror(fe));
    disk_close(disk);
    free(pool_name);
    free(servers_from_file);
    free(s);
    return 0;
}
