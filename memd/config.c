/* SPDX-License-Identifier: BSD-3-Clause */
/* Command line of remoca-memd (see config.h and usage() below). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "remoca/size.h"

#define DEFAULT_LISTEN "127.0.0.1:7400"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: remoca-memd --memory SIZE [options]\n"
            "\n"
            "REMOCA memory server: holds 4 KiB pages for remote disk caches in a fixed budget.\n"
            "\n"
            "  --memory SIZE       page budget, e.g. 64M, 512M, 2G (required; at least 1M).\n"
            "                      The process uses SIZE plus ~1.1%% metadata plus a few MiB\n"
            "                      per thread (see docs/protocol.md, Memory accounting).\n"
            "  --listen HOST:PORT  TCP address (default " DEFAULT_LISTEN "; port 0 = any free\n"
            "                      port; [::1]:PORT for IPv6).  If only --unix is given, no TCP.\n"
            "  --unix PATH         also (or only) listen on a unix socket.\n"
            "  --port-file FILE    write the bound TCP port to FILE once listening.\n"
            "  --pid-file FILE     write the process id to FILE.\n"
            "  --threads N         worker threads (default: number of CPUs).\n"
            "  --max-conns N       simultaneous connections (default 4096); more are closed.\n"
            "  --max-conns-per-addr N  simultaneous connections per client address (TCP)\n"
            "                      or per user id (unix socket); more are closed\n"
            "                      (default 0: no limit but --max-conns).\n"
            "  --handshake-timeout SECS  close a connection that has not completed HELLO\n"
            "                      (and authentication) SECS after connecting (default 10;\n"
            "                      0 = never).\n"
            "  --frame-timeout SECS  close a connection whose request frame is still\n"
            "                      incomplete SECS after its first bytes (default 30;\n"
            "                      0 = never).  Idle connections are never closed.\n"
            "  --user NAME         started as root: run as user NAME (and its groups) once\n"
            "                      the sockets are bound and the store is allocated.\n"
            "  --max-pools N       pools the server will create (default 1024).\n"
            "  --max-buffers SIZE  memory all connections' buffers may hold together for\n"
            "                      partial requests and unread responses (default 64M, at\n"
            "                      least 4M); a connection that would exceed it is closed.\n"
            "  --secret SECRET     require clients to prove they know SECRET (HMAC-SHA256\n"
            "                      challenge-response in HELLO; see docs/protocol.md).\n"
            "  --secret-file FILE  the same, with the secret read from FILE's first line\n"
            "                      (keeps it out of the process list).\n"
            "  --tenants FILE      one tenant per line, each with its secret, pool name\n"
            "                      prefixes, memory cap and floor, connection cap:\n"
            "                        tenant NAME secret=S pools=P[,P...] memory=SIZE [min=SIZE] "
            "conns=N\n"
            "                        [stats=own|all]\n"
            "                      A client says HELLO as NAME or NAME/... (docs/protocol.md).\n"
            "                      FILE must not be readable by others.  Excludes --secret.\n"
            "  --policy NAME       eviction within a pool: s3fifo (default), 2q, clock, lru.\n"
            "  --shm               keep the store in shared memory (memfds) and hand it out\n"
            "                      read-only over the unix socket (SHM_MAP) to clients on\n"
            "                      this host, which then read pages without a round trip.\n"
            "                      Needs --unix.  A client that maps it can read every pool\n"
            "                      of the server: for a server that serves one trust domain.\n"
            "  --log-level LEVEL   error, warn, info (default) or debug; logs go to stderr.\n"
            "  --help              this text.\n"
            "\n"
            "SIGTERM or SIGINT shuts the server down cleanly (exit status 0).\n");
}

static int parse_uint(const char *opt, const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || !isdigit((unsigned char)*s) || *end || v < min || v > max) {
        fprintf(stderr, "remoca-memd: %s: expected a number from %u to %u, got '%s'\n", opt, min,
                max, s);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

int config_parse(struct memd_config *cfg, int argc, char **argv)
{
    enum {
        O_MEMORY = 256,
        O_LISTEN,
        O_UNIX,
        O_PORT_FILE,
        O_PID_FILE,
        O_THREADS,
        O_MAX_CONNS,
        O_MAX_POOLS,
        O_MAX_BUFFERS,
        O_POLICY,
        O_LOG_LEVEL,
        O_SECRET,
        O_SECRET_FILE,
        O_SHM,
        O_TENANTS,
        O_MAX_CONNS_PER_ADDR,
        O_HANDSHAKE_TIMEOUT,
        O_FRAME_TIMEOUT,
        O_USER,
        O_HELP
    };
    static const struct option opts[] = {
        {"memory", required_argument, NULL, O_MEMORY},
        {"listen", required_argument, NULL, O_LISTEN},
        {"unix", required_argument, NULL, O_UNIX},
        {"port-file", required_argument, NULL, O_PORT_FILE},
        {"pid-file", required_argument, NULL, O_PID_FILE},
        {"threads", required_argument, NULL, O_THREADS},
        {"max-conns", required_argument, NULL, O_MAX_CONNS},
        {"max-pools", required_argument, NULL, O_MAX_POOLS},
        {"max-buffers", required_argument, NULL, O_MAX_BUFFERS},
        {"policy", required_argument, NULL, O_POLICY},
        {"secret", required_argument, NULL, O_SECRET},
        {"secret-file", required_argument, NULL, O_SECRET_FILE},
        {"log-level", required_argument, NULL, O_LOG_LEVEL},
        {"shm", no_argument, NULL, O_SHM},
        {"tenants", required_argument, NULL, O_TENANTS},
        {"max-conns-per-addr", required_argument, NULL, O_MAX_CONNS_PER_ADDR},
        {"handshake-timeout", required_argument, NULL, O_HANDSHAKE_TIMEOUT},
        {"frame-timeout", required_argument, NULL, O_FRAME_TIMEOUT},
        {"user", required_argument, NULL, O_USER},
        {"help", no_argument, NULL, O_HELP},
        {0},
    };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    *cfg = (struct memd_config){
        .threads = ncpu > 0 ? (unsigned)ncpu : 1,
        .max_conns = 4096,
        .max_pools = 1024,
        .max_buffers = 64u << 20,
        .log_level = LOG_INFO,
        .policy = POLICY_S3FIFO,
        .handshake_timeout = 10,
        .frame_timeout = 30,
    };
    bool listen_set = false;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_MEMORY:
            if (parse_size(optarg, &cfg->memory) < 0 || cfg->memory < MEMD_MEMORY_MIN) {
                fprintf(stderr,
                        "remoca-memd: --memory '%s': expected a size of at least 1M "
                        "such as 64M, 512M or 2G\n",
                        optarg);
                return -1;
            }
            if (memd_memory_too_big(cfg->memory)) {
                fprintf(stderr, "remoca-memd: --memory '%s': at most 15T\n", optarg);
                return -1;
            }
            break;
        case O_LISTEN:
            cfg->listen = optarg;
            listen_set = true;
            break;
        case O_UNIX: cfg->unix_path = optarg; break;
        case O_PORT_FILE: cfg->port_file = optarg; break;
        case O_PID_FILE: cfg->pid_file = optarg; break;
        case O_SHM: cfg->shm = true; break;
        case O_TENANTS: cfg->tenants_file = optarg; break;
        case O_THREADS:
            if (parse_uint("--threads", optarg, 1, 256, &cfg->threads) < 0) return -1;
            break;
        case O_MAX_CONNS:
            if (parse_uint("--max-conns", optarg, 1, 1u << 24, &cfg->max_conns) < 0) return -1;
            break;
        case O_MAX_CONNS_PER_ADDR:
            if (parse_uint("--max-conns-per-addr", optarg, 0, 1u << 24, &cfg->max_conns_per_addr) <
                0)
                return -1;
            break;
        case O_HANDSHAKE_TIMEOUT:
            if (parse_uint("--handshake-timeout", optarg, 0, 86400, &cfg->handshake_timeout) < 0)
                return -1;
            break;
        case O_FRAME_TIMEOUT:
            if (parse_uint("--frame-timeout", optarg, 0, 86400, &cfg->frame_timeout) < 0) return -1;
            break;
        case O_USER: cfg->user = optarg; break;
        case O_MAX_POOLS:
            if (parse_uint("--max-pools", optarg, 1, 1u << 20, &cfg->max_pools) < 0) return -1;
            break;
        case O_MAX_BUFFERS:
            if (parse_size(optarg, &cfg->max_buffers) < 0 || cfg->max_buffers < (4u << 20)) {
                fprintf(stderr,
                        "remoca-memd: --max-buffers '%s': expected a size of at least "
                        "4M\n",
                        optarg);
                return -1;
            }
            break;
        case O_SECRET:
        case O_SECRET_FILE: {
            char line[512];
            const char *sec = optarg;
            if (c == O_SECRET_FILE) {
                FILE *f = fopen(optarg, "r");
                if (!f || !fgets(line, sizeof line, f)) {
                    fprintf(stderr, "remoca-memd: --secret-file %s: %s\n", optarg,
                            f ? "empty" : strerror(errno));
                    if (f) fclose(f);
                    return -1;
                }
                fclose(f);
                line[strcspn(line, "\r\n")] = 0;
                sec = line;
            }
            size_t n = strlen(sec);
            if (n == 0 || n > sizeof cfg->auth.secret) {
                fprintf(stderr, "remoca-memd: the secret must be 1 to %zu bytes\n",
                        sizeof cfg->auth.secret);
                return -1;
            }
            memcpy(cfg->auth.secret, sec, n);
            cfg->auth.len = n;
            break;
        }
        case O_POLICY: {
            int p = policy_parse(optarg);
            if (p < 0) {
                fprintf(stderr, "remoca-memd: --policy '%s': expected s3fifo, 2q, clock or lru\n",
                        optarg);
                return -1;
            }
            cfg->policy = (enum policy_kind)p;
            break;
        }
        case O_LOG_LEVEL:
            if ((cfg->log_level = log_level_parse(optarg)) < 0) {
                fprintf(stderr,
                        "remoca-memd: --log-level '%s': expected error, warn, info or "
                        "debug\n",
                        optarg);
                return -1;
            }
            break;
        case 'h':
        case O_HELP: usage(stdout); return 1;
        default:
            if (optopt)
                fprintf(stderr, "remoca-memd: option '%s' needs a value\n", argv[optind - 1]);
            else
                fprintf(stderr, "remoca-memd: unknown option '%s'\n", argv[optind - 1]);
            fprintf(stderr, "Try 'remoca-memd --help'.\n");
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "remoca-memd: unexpected argument '%s'\nTry 'remoca-memd --help'.\n",
                argv[optind]);
        return -1;
    }
    if (!cfg->memory) {
        fprintf(stderr, "remoca-memd: --memory SIZE is required (e.g. --memory 512M)\n"
                        "Try 'remoca-memd --help'.\n");
        return -1;
    }
    if (!listen_set && !cfg->unix_path) cfg->listen = DEFAULT_LISTEN;
    if (cfg->shm && !cfg->unix_path) {
        fprintf(stderr, "remoca-memd: --shm needs --unix PATH (the shared store is handed "
                        "out only over a unix socket)\n");
        return -1;
    }
    if (cfg->tenants_file && cfg->auth.len) {
        fprintf(stderr, "remoca-memd: --tenants and --secret exclude each other (each tenant "
                        "has its own secret)\n");
        return -1;
    }
    if (cfg->tenants_file) {
        char err[512];
        if (tenants_load(&cfg->tenants, cfg->tenants_file, err, sizeof err) < 0) {
            fprintf(stderr, "remoca-memd: --tenants %s\n", err);
            return -1;
        }
        uint64_t floors = 0;
        for (unsigned i = 0; i < cfg->tenants.n; i++) floors += cfg->tenants.t[i].acct.min_pages;
        if (floors > cfg->memory / REMOCA_PAGE_SIZE) {
            fprintf(stderr,
                    "remoca-memd: --tenants %s: the floors (min=) add up to more than "
                    "--memory\n",
                    cfg->tenants_file);
            tenants_free(&cfg->tenants);
            return -1;
        }
        if (cfg->shm && cfg->tenants.n > 1) {
            fprintf(stderr,
                    "remoca-memd: --shm with %u tenants: a client that maps the store "
                    "reads every pool, so --shm serves one tenant at most\n",
                    cfg->tenants.n);
            tenants_free(&cfg->tenants);
            return -1;
        }
    }
    if (cfg->port_file && !cfg->listen) {
        fprintf(stderr, "remoca-memd: --port-file needs a TCP listener (--listen)\n");
        return -1;
    }
    return 0;
}
