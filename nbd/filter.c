/* SPDX-License-Identifier: BSD-3-Clause */
/* nbdkit-remoca-filter: REMOCA's NBD front end.
 *
 * Puts the libremoca cache engine between nbdkit's clients and a backing
 * plugin, with remote memory servers (remoca-memd) as an inclusive
 * second-level cache:
 *
 *   NBD clients (qemu, nbdcopy, fio)   many connections, parallel threads
 *        │
 *   ┌────▼───────────────── this filter (one instance per nbdkit) ────────┐
 *   │ pread/pwrite/trim/zero/flush ──▶ struct remoca_cache (shared by all  │
 *   │ connections; created on the first connection, sized by get_size)    │
 *   │ struct remoca_client (created in .after_fork: it starts threads)    │
 *   │ stats thread: remoca-statsfile rewritten every second and at exit   │
 *   │ servers thread: remoca-servers-file polled every second (changes    │
 *   │ applied with remoca_client_set_servers; nbd/serversfile.c)          │
 *   └────┬────────────────────────────────────────────┬───────────────────┘
 *        │ next->pread/pwrite/... (per connection)     │ TCP / unix socket
 *   backing plugin (file, ...)                     remoca-memd servers
 *
 * One engine and one client per filter instance, shared by every connection,
 * so multi-conn stays consistent: a write acknowledged on one connection has
 * already invalidated the remote copy that another connection would read.
 * Everything else (extents, cache, block size, can_*) passes through.
 *
 * A dead memory server is a miss (the client's contract): the guest never sees
 * an error caused by the remote tier, only by the backing plugin.
 *
 * Sealing (remoca-seal=, default auto: on when any server is reached over
 * the network): the engine's remote is then lib/seal over the client, so
 * every page leaves this host encrypted and authenticated under a key that
 * never leaves it (remoca-key=+FILE, or a random one per process), and a
 * page that fails verification is a miss (docs/design.md, "Sealed pages").
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nbdkit-filter.h>

#include "remoca/cache.h"
#include "remoca/client.h"
#include "remoca/seal.h"
#include "serversfile.h"
#include "statsfile.h"

/* ---- configuration ---------------------------------------------------- */

static char *servers;      /* remoca-servers=, or what remoca-servers-file= holds */
static char *servers_file; /* remoca-servers-file= */
static char *pool;         /* remoca-pool=, or derived */
static char *secret;       /* remoca-secret= */
static char *tenant;       /* remoca-tenant=: the HELLO name (remoca-memd --tenants) */
static char *statsfile;    /* remoca-statsfile= */
static char *plugin_file;  /* the file plugin's file=, for the default pool */
static unsigned timeout_ms;
static enum remoca_shm_opt shm = REMOCA_SHM_ON; /* remoca-shm= */
static enum remoca_write_policy write_policy = REMOCA_WRITE_INVALIDATE;
static enum remoca_seal_mode seal_mode = REMOCA_SEAL_AUTO; /* remoca-seal= */
static bool sealed;                                        /* what seal_mode decided */
static uint8_t seal_key[REMOCA_SEAL_KEY_MAX];              /* remoca-key=+FILE */
static size_t seal_key_len;                                /* 0: a random key per process */

/* ---- per-instance state ----------------------------------------------- */

static struct remoca_client *client;
static struct remoca_cache *cache; /* set once, on the first .prepare */
static struct remoca_seal *seal;   /* with it, when sealed */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct statsfile *stats;
static struct serversfile *watch;

static void remoca_unload(void)
{
    free(servers);
    free(servers_file);
    free(pool);
    free(secret);
    free(statsfile);
    free(tenant);
    free(plugin_file);
    explicit_bzero(seal_key, sizeof seal_key);
}

static int parse_uint(const char *key, const char *value, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(value, &end, 10);
    if (errno || end == value || *end || v > UINT_MAX) {
        nbdkit_error("%s: '%s' is not a number", key, value);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static int set_string(char **dst, const char *key, const char *value)
{
    free(*dst);
    *dst = strdup(value);
    if (!*dst) {
        nbdkit_error("%s: out of memory", key);
        return -1;
    }
    return 0;
}

static int remoca_config(nbdkit_next_config *next, nbdkit_backend *nxdata, const char *key,
                         const char *value)
{
    if (!strcmp(key, "remoca-servers")) {
        if (servers_file) {
            nbdkit_error("remoca-servers= and remoca-servers-file= exclude each other");
            return -1;
        }
        return set_string(&servers, key, value);
    }
    if (!strcmp(key, "remoca-servers-file")) {
        if (servers) {
            nbdkit_error("remoca-servers= and remoca-servers-file= exclude each other");
            return -1;
        }
        return set_string(&servers_file, key, value);
    }
    if (!strcmp(key, "remoca-pool")) {
        if (!*value || strlen(value) > REMOCA_MAX_NAME) {
            nbdkit_error("remoca-pool: name must be 1..%u bytes", REMOCA_MAX_NAME);
            return -1;
        }
        return set_string(&pool, key, value);
    }
    if (!strcmp(key, "remoca-secret")) { /* nbdkit's forms: SECRET, +FILE, -, -FD */
        free(secret);
        secret = NULL;
        return nbdkit_read_password(value, &secret);
    }
    if (!strcmp(key, "remoca-seal")) {
        if (remoca_seal_mode_parse(value, &seal_mode) == 0) return 0;
        nbdkit_error("remoca-seal: '%s' is not on, off or auto", value);
        return -1;
    }
    if (!strcmp(key, "remoca-key")) { /* +FILE only: a key is never a command-line word */
        char err[256];
        int n = value[0] == '+'
                    ? remoca_seal_load_key(value + 1, seal_key, sizeof seal_key, err, sizeof err)
                    : -1;
        if (value[0] != '+') snprintf(err, sizeof err, "expected +FILE (a key file)");
        if (n < 0) {
            nbdkit_error("remoca-key: %s", err);
            return -1;
        }
        seal_key_len = (size_t)n;
        return 0;
    }
    if (!strcmp(key, "remoca-statsfile")) return set_string(&statsfile, key, value);
    if (!strcmp(key, "remoca-tenant")) return set_string(&tenant, key, value);
    if (!strcmp(key, "remoca-timeout")) return parse_uint(key, value, &timeout_ms);
    if (!strcmp(key, "remoca-mode")) {
        if (!strcmp(value, "inclusive")) return 0;
        if (!strcmp(value, "exclusive")) {
            nbdkit_error("remoca-mode=exclusive is not possible in the NBD front end: an NBD "
                         "server never sees the guest's page-cache evictions, which exclusive "
                         "caching needs (a vhost-user front end could; it is not built yet); use "
                         "remoca-mode=inclusive");
            return -1;
        }
        nbdkit_error("remoca-mode: unknown mode '%s' (expected inclusive)", value);
        return -1;
    }
    if (!strcmp(key, "remoca-shm")) {
        if (!strcmp(value, "on"))
            shm = REMOCA_SHM_ON;
        else if (!strcmp(value, "off"))
            shm = REMOCA_SHM_OFF;
        else {
            nbdkit_error("remoca-shm: '%s' is not on or off", value);
            return -1;
        }
        return 0;
    }
    if (!strcmp(key, "remoca-write")) {
        if (!strcmp(value, "invalidate"))
            write_policy = REMOCA_WRITE_INVALIDATE;
        else if (!strcmp(value, "update"))
            write_policy = REMOCA_WRITE_UPDATE;
        else {
            nbdkit_error("remoca-write: unknown policy '%s' (expected invalidate or update)",
                         value);
            return -1;
        }
        return 0;
    }
    if (!strncmp(key, "remoca-", 7)) {
        nbdkit_error("unknown parameter '%s' (see nbdkit --filter=remoca --help)", key);
        return -1;
    }
    /* The file plugin's disk names the default pool. */
    if (!strcmp(key, "file") && set_string(&plugin_file, key, value) == -1) return -1;
    return next(nxdata, key, value);
}

/* Default pool: "nbd:" + the disk's absolute path (unique per disk on a host),
 * or a hash of it when too long for a pool name.  Sealed: "nbd-sealed:", since
 * a server keeps a pool sealed or plain from its creation (turning sealing on
 * or off then simply starts another pool). */
static int default_pool(void)
{
    char buf[PATH_MAX + 32]; /* what is written fits REMOCA_MAX_NAME (checked) */
    const char *kind = sealed ? "nbd-sealed" : "nbd";
    if (!plugin_file) {
        snprintf(buf, sizeof buf, "%s:default", kind);
        nbdkit_debug("remoca: no file= parameter and no remoca-pool=: using pool %s", buf);
    } else {
        char *abs = nbdkit_realpath(plugin_file);
        if (!abs) return -1;
        if (strlen(abs) + strlen(kind) + 1 <= REMOCA_MAX_NAME) {
            snprintf(buf, sizeof buf, "%s:%s", kind, abs);
        } else {
            uint64_t h = 1469598103934665603ull; /* FNV-1a */
            for (const char *p = abs; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
            snprintf(buf, sizeof buf, "%s:hash:%016" PRIx64, kind, h);
        }
        free(abs);
    }
    return set_string(&pool, "remoca-pool", buf);
}

static int remoca_config_complete(nbdkit_next_config_complete *next, nbdkit_backend *nxdata)
{
    if (servers_file) { /* the list to start with; the watcher follows changes */
        char err[512];
        char *abs = nbdkit_realpath(servers_file);
        if (!abs) return -1;
        free(servers_file);
        servers_file = abs; /* nbdkit may change directory */
        if (!(servers = serversfile_read(servers_file, err, sizeof err))) {
            nbdkit_error("remoca-servers-file: %s", err);
            return -1;
        }
    }
    if (!servers) {
        nbdkit_error("remoca-servers= is required, or remoca-servers-file= (e.g. "
                     "remoca-servers=127.0.0.1:7410 or remoca-servers=unix:/run/remoca.sock)");
        return -1;
    }
    sealed = remoca_seal_wanted(seal_mode, servers);
    if (!pool && default_pool() == -1) return -1;
    if (sealed && strlen(pool) > REMOCA_SEAL_POOL_MAX) {
        nbdkit_error("remoca-pool: at most %u bytes with sealing on", REMOCA_SEAL_POOL_MAX);
        return -1;
    }
    if (seal_key_len && !sealed)
        nbdkit_debug("remoca: remoca-key= given but sealing is off (remoca-seal=%s)",
                     seal_mode == REMOCA_SEAL_OFF ? "off" : "auto, all servers local");
    return next(nxdata);
}

#define remoca_config_help                                                                 \
    "remoca-servers=LIST     memory servers: host:port or unix:PATH, comma list;\n"        \
    "                        ADDR*W weighs a server W (1..16, default 1).\n"               \
    "remoca-servers-file=FILE  the list in a file instead (one entry per line or comma\n"  \
    "                        list, # comments), re-read when it changes (every second).\n" \
    "remoca-pool=NAME        pool on the servers (default: nbd:<absolute disk path>,\n"    \
    "                        nbd-sealed:<path> when sealed).\n"                            \
    "remoca-mode=inclusive   caching policy (the only one an NBD server can do).\n"        \
    "remoca-write=invalidate|update  writes delete (default) or put remote copies.\n"      \
    "remoca-timeout=MS       per remote request (default 1000); then it is a miss.\n"      \
    "remoca-shm=on|off       shared memory with a local memd: one-sided reads (--shm)\n"   \
    "                        and the fill ring (default on).\n"                            \
    "remoca-secret=SECRET|+FILE  shared secret for memory servers with --secret-file.\n"   \
    "remoca-seal=auto|on|off pages encrypted and authenticated before they leave this\n"   \
    "                        host (auto, the default: on when a server is over TCP).\n"    \
    "remoca-key=+FILE        the sealing key's secret (32..4096 bytes, mode 600);\n"       \
    "                        default: a random key per process.\n"                         \
    "remoca-tenant=NAME      the tenant to authenticate as (remoca-memd --tenants).\n"     \
    "remoca-statsfile=PATH   key=value counters, rewritten every second and at exit."

/* ---- lifecycle -------------------------------------------------------- */

static void client_log(void *opaque, int level, const char *msg)
{
    if (level <= REMOCA_LOG_WARN)
        nbdkit_error("remoca: %s", msg); /* logged, never returned to a client */
    else
        nbdkit_debug("remoca: %s", msg);
}

static void seal_log(void *arg, const char *msg) { nbdkit_error("remoca: %s", msg); }

/* Threads (the client's and the stats writer) start after nbdkit forks. */
static int remoca_after_fork(nbdkit_backend *nxdata)
{
    char err[256];
    struct remoca_client_opts o = {
        .servers = servers,
        .pool = pool,
        .name = tenant ? tenant : "nbdkit-remoca-filter",
        .secret = secret,
        .timeout_ms = timeout_ms,
        .log = client_log,
        .shm = shm,
        .sealed = sealed,
    };
    client = remoca_client_new(&o, err, sizeof err);
    if (!client) {
        nbdkit_error("remoca: %s", err);
        return -1;
    }
    unsigned up =
        remoca_client_wait_ready(client, timeout_ms ? timeout_ms : REMOCA_DEFAULT_TIMEOUT_MS);
    nbdkit_debug("remoca: pool %s, %u of %u servers up", pool, up, remoca_server_count(client));
    if (statsfile && !(stats = statsfile_start(statsfile, &cache, client))) return -1;
    if (stats) statsfile_set_seal(stats, &seal);
    if (servers_file && !(watch = serversfile_start(servers_file, client))) return -1;
    return 0;
}

static void remoca_cleanup(nbdkit_backend *nxdata)
{
    serversfile_stop(watch); /* before the client goes */
    watch = NULL;
    if (stats) statsfile_stop(stats); /* writes the final counters */
    stats = NULL;
    remoca_cache_free(cache);
    cache = NULL;
    remoca_seal_free(seal); /* after the engine, before the client it calls */
    seal = NULL;
    remoca_client_free(client);
    client = NULL;
}

/* The engine is sized by the disk, known on the first connection. */
static int remoca_prepare(nbdkit_next *next, void *handle, int readonly)
{
    int r = 0;
    pthread_mutex_lock(&cache_lock);
    if (!__atomic_load_n(&cache, __ATOMIC_ACQUIRE)) {
        int64_t size = next->get_size(next);
        if (size < 0) {
            r = -1;
        } else {
            char err[256];
            struct remoca_cache_opts o = {.disk_size = (uint64_t)size,
                                          .write = write_policy,
                                          .remote = &remoca_client_remote_ops,
                                          .remote_ctx = client};
            if (sealed && !seal) {
                struct remoca_seal_opts so = {.remote = &remoca_client_sealed_ops,
                                              .remote_ctx = client,
                                              .key = seal_key_len ? seal_key : NULL,
                                              .key_len = seal_key_len,
                                              .pool = pool,
                                              .nblocks = (uint64_t)size / REMOCA_PAGE_SIZE,
                                              .log = seal_log};
                struct remoca_seal *sl = remoca_seal_new(&so, err, sizeof err);
                if (!sl) {
                    nbdkit_error("remoca: %s", err);
                    pthread_mutex_unlock(&cache_lock);
                    return -1;
                }
                __atomic_store_n(&seal, sl, __ATOMIC_RELEASE);
            }
            if (seal) {
                o.remote = &remoca_seal_remote_ops;
                o.remote_ctx = seal;
            }
            struct remoca_cache *c = remoca_cache_new(&o, err, sizeof err);
            if (!c) {
                nbdkit_error("remoca: %s", err);
                r = -1;
            } else {
                __atomic_store_n(&cache, c, __ATOMIC_RELEASE);
                nbdkit_debug("remoca: engine for %" PRIi64 " bytes, write-%s, %s", size,
                             write_policy == REMOCA_WRITE_UPDATE ? "update" : "invalidate",
                             seal ? "sealed" : "plain");
            }
        }
    }
    pthread_mutex_unlock(&cache_lock);
    return r;
}

/* ---- I/O -------------------------------------------------------------- */

static int b_pread(void *ctx, void *buf, uint32_t n, uint64_t off, uint32_t fl, int *err)
{
    nbdkit_next *next = ctx;
    return next->pread(next, buf, n, off, fl, err);
}
static int b_pwrite(void *ctx, const void *buf, uint32_t n, uint64_t off, uint32_t fl, int *err)
{
    nbdkit_next *next = ctx;
    return next->pwrite(next, buf, n, off, fl, err);
}
static int b_trim(void *ctx, uint32_t n, uint64_t off, uint32_t fl, int *err)
{
    nbdkit_next *next = ctx;
    return next->trim(next, n, off, fl, err);
}
static int b_zero(void *ctx, uint32_t n, uint64_t off, uint32_t fl, int *err)
{
    nbdkit_next *next = ctx;
    return next->zero(next, n, off, fl, err);
}
static int b_flush(void *ctx, uint32_t fl, int *err)
{
    nbdkit_next *next = ctx;
    return next->flush(next, fl, err);
}

static const struct remoca_backing_ops next_ops = {b_pread, b_pwrite, b_trim, b_zero, b_flush};

static struct remoca_cache *engine(void) { return __atomic_load_n(&cache, __ATOMIC_ACQUIRE); }

/* A request beyond the size the engine was built for (the disk grew under
 * us) only touches uncacheable blocks: the engine passes it through. */
static int remoca_pread(nbdkit_next *next, void *handle, void *buf, uint32_t count, uint64_t offset,
                        uint32_t flags, int *err)
{
    struct remoca_backing b = {&next_ops, next};
    return remoca_cache_read(engine(), &b, buf, count, offset, flags, err);
}

static int remoca_pwrite(nbdkit_next *next, void *handle, const void *buf, uint32_t count,
                         uint64_t offset, uint32_t flags, int *err)
{
    struct remoca_backing b = {&next_ops, next};
    return remoca_cache_write(engine(), &b, buf, count, offset, flags, err);
}

static int remoca_trim(nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
                       uint32_t flags, int *err)
{
    struct remoca_backing b = {&next_ops, next};
    return remoca_cache_trim(engine(), &b, count, offset, flags, err);
}

static int remoca_zero(nbdkit_next *next, void *handle, uint32_t count, uint64_t offset,
                       uint32_t flags, int *err)
{
    struct remoca_backing b = {&next_ops, next};
    return remoca_cache_zero(engine(), &b, count, offset, flags, err);
}

static int remoca_flush(nbdkit_next *next, void *handle, uint32_t flags, int *err)
{
    struct remoca_backing b = {&next_ops, next};
    return remoca_cache_flush(engine(), &b, flags, err);
}

static struct nbdkit_filter filter = {
    .name = "remoca",
    .longname = "nbdkit REMOCA remote memory cache filter",
    .unload = remoca_unload,
    .config = remoca_config,
    .config_complete = remoca_config_complete,
    .config_help = remoca_config_help,
    .after_fork = remoca_after_fork,
    .cleanup = remoca_cleanup,
    .prepare = remoca_prepare,
    .pread = remoca_pread,
    .pwrite = remoca_pwrite,
    .trim = remoca_trim,
    .zero = remoca_zero,
    .flush = remoca_flush,
};

/* What NBDKIT_REGISTER_FILTER defines: nbdkit looks it up by name. */
struct nbdkit_filter *filter_init(void);
NBDKIT_REGISTER_FILTER(filter)
