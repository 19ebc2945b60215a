/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca stats --server ADDR [--json] [--secret-file FILE]: prints a memory
 * server's stats.
 * remoca stats --mrc STATSFILE [--json | --table]: prints the miss-ratio
 * curve that remoca-vhost or the nbdkit filter keeps in its stats file.
 *
 * ADDR is HOST:PORT ([v6]:PORT works) or unix:PATH.  libremoca's
 * remoca_stats_query does the talking (HELLO, then STATS, with REMOCA_F_JSON
 * for --json); the command prints the payload as the server sent it.
 * A server started with --secret answers the first HELLO with a challenge;
 * the command then proves it knows the secret (HMAC-SHA256 of the nonce and
 * the client name, docs/protocol.md "Authentication").
 *
 * --mrc reads the file alone (nbd/statsfile.c writes it):
 *
 *   mrc_refs=N mrc_sampled=N mrc_rate=R mrc_samples=N mrc_bytes=N  counters
 *   mrc=SIZE:RATIO,SIZE:RATIO,...   SIZE in 4 KiB blocks, RATIO non-increasing
 *        │
 *        ├─ text     a table: cache MiB, blocks, miss ratio, misses per 1M reads
 *        ├─ --json   {"refs": ..., "curve": [{"blocks", "mib", "miss_ratio"}]}
 *        └─ --table  "# mib miss_ratio" and two columns, for gnuplot
 *
 * --servers STATSFILE [--json] prints the memory servers the front end uses,
 * one row each (up, weight, hits, misses, hit ratio, errors, timeouts, get
 * latency p50/p99): tools/stats_servers.c.
 *
 * Exit status: 0 on success, 1 if the server cannot be reached or answers
 * wrongly (or the file cannot be read, or has no curve), 2 on a usage error.
 * Every wait is bounded (5 s). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "remoca/client.h"
#include "stats_servers.h"

#define TIMEOUT_MS 5000

static void usage(FILE *f)
{
    fprintf(f, "usage: remoca stats --server ADDR [--json] [--secret-file FILE] [--tenant NAME]\n"
               "       remoca stats --mrc STATSFILE [--json | --table]\n"
               "       remoca stats --servers STATSFILE [--json]\n"
               "  ADDR  HOST:PORT or unix:PATH of a remoca-memd\n"
               "  --json  print the stats (or the curve) as JSON instead of text\n"
               "  --secret-file FILE  the server's --secret (first line of FILE)\n"
               "  --secret SECRET     the same, on the command line\n"
               "  --tenant NAME       as tenant NAME of a remoca-memd --tenants (its secret\n"
               "                      with --secret-file): its own pools only\n"
               "  --mrc STATSFILE  the miss-ratio curve of a virtual disk's reads (the guest's\n"
               "                   page-cache misses): misses as a function of extra cache\n"
               "                   size, from the stats file of remoca-vhost --stats or of\n"
               "                   the nbdkit filter's remoca-statsfile=\n"
               "  --servers STATSFILE  the memory servers a front end uses, as its stats file\n"
               "                   says: up, weight, hits, misses, errors, get latency\n"
               "  --table  the curve as a gnuplot-ready table: \"# mib miss_ratio\", two\n"
               "           columns (plot 'FILE' using 1:2 with lines)\n");
}

/* ---- --mrc: the curve of a stats file --------------------------------- */

struct mrc_file {
    unsigned long long refs, sampled, samples, bytes;
    double rate;
    size_t n;
    unsigned long long *blocks;
    double *ratio;
};

/* "SIZE:RATIO,...": sizes increasing, ratios in [0, 1].  0 or -1. */
static int parse_curve(struct mrc_file *m, const char *v)
{
    size_t cap = 0;
    while (*v) {
        char *end;
        errno = 0;
        unsigned long long b = strtoull(v, &end, 10);
        if (errno || end == v || *end != ':' || b == 0) return -1;
        v = end + 1;
        double r = strtod(v, &end);
        if (end == v || !(r >= 0.0 && r <= 1.0)) return -1;
        if (*end == ',' && end[1])
            end++;
        else if (*end)
            return -1;
        v = end;
        if (m->n && b <= m->blocks[m->n - 1]) return -1;
        if (m->n == cap) {
            cap = cap ? 2 * cap : 64;
            unsigned long long *nb = realloc(m->blocks, cap * sizeof *nb);
            if (nb) m->blocks = nb;
            double *nr = realloc(m->ratio, cap * sizeof *nr);
            if (nr) m->ratio = nr;
            if (!nb || !nr) return -1;
        }
        m->blocks[m->n] = b;
        m->ratio[m->n++] = r;
    }
    return m->n ? 0 : -1;
}

/* 0, or 1 with a message on stderr. */
static int read_mrc(const char *path, struct mrc_file *m)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "remoca stats: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    bool curve = false, bad = false;
    while ((len = getline(&line, &cap, f)) != -1) {
        line[strcspn(line, "\r\n")] = 0;
        char *v = strchr(line, '=');
        if (!v) continue;
        *v++ = 0;
        if (!strcmp(line, "mrc")) {
            curve = true;
            bad |= parse_curve(m, v) != 0;
        } else if (!strcmp(line, "mrc_refs")) {
            m->refs = strtoull(v, NULL, 10);
        } else if (!strcmp(line, "mrc_sampled")) {
            m->sampled = strtoull(v, NULL, 10);
        } else if (!strcmp(line, "mrc_rate")) {
            m->rate = strtod(v, NULL);
        } else if (!strcmp(line, "mrc_samples")) {
            m->samples = strtoull(v, NULL, 10);
        } else if (!strcmp(line, "mrc_bytes")) {
            m->bytes = strtoull(v, NULL, 10);
        }
    }
    bool ioerr = ferror(f);
    free(line);
    fclose(f);
    if (ioerr) {
        fprintf(stderr, "remoca stats: %s: read error\n", path);
        return 1;
    }
    if (!curve) {
        fprintf(stderr,
                "remoca stats: %s has no miss-ratio curve (written by remoca-vhost --stats FILE "
                "or the nbdkit filter's remoca-statsfile=FILE, once the disk is open)\n",
                path);
        return 1;
    }
    if (bad) {
        fprintf(stderr, "remoca stats: %s: malformed mrc= line (SIZE:RATIO,... expected)\n", path);
        return 1;
    }
    return 0;
}

static double mib(unsigned long long blocks) { return (double)blocks * 4096.0 / 1048576.0; }

static void print_text(const char *path, const struct mrc_file *m)
{
    printf("miss-ratio curve of %s: %llu block reads, %llu sampled (rate %.4g), %llu samples, "
           "%llu KiB\n",
           path, m->refs, m->sampled, m->rate, m->samples, (m->bytes + 1023) / 1024);
    printf("LRU miss ratio of the guest's reads with this much cache added below the guest\n");
    printf("%12s %14s %12s %20s\n", "cache MiB", "cache blocks", "miss ratio",
           "misses per 1M reads");
    for (size_t i = 0; i < m->n; i++)
        printf("%12.2f %14llu %12.4f %20.0f\n", mib(m->blocks[i]), m->blocks[i], m->ratio[i],
               m->ratio[i] * 1e6);
}

static void print_json(const struct mrc_file *m)
{
    printf("{\"refs\": %llu, \"sampled\": %llu, \"rate\": %.6g, \"samples\": %llu, "
           "\"bytes\": %llu,\n \"curve\": [",
           m->refs, m->sampled, m->rate, m->samples, m->bytes);
    for (size_t i = 0; i < m->n; i++)
        printf("%s\n  {\"blocks\": %llu, \"mib\": %.10g, \"miss_ratio\": %.4f}", i ? "," : "",
               m->blocks[i], mib(m->blocks[i]), m->ratio[i]);
    printf("\n]}\n");
}

static void print_table(const struct mrc_file *m)
{
    printf("# mib miss_ratio\n");
    for (size_t i = 0; i < m->n; i++) printf("%.10g %.4f\n", mib(m->blocks[i]), m->ratio[i]);
}

static int mrc_main(const char *path, bool json, bool table)
{
    struct mrc_file m = {0};
    int r = read_mrc(path, &m);
    if (r == 0) {
        if (json)
            print_json(&m);
        else if (table)
            print_table(&m);
        else
            print_text(path, &m);
        r = fflush(stdout) == 0 ? 0 : 1;
    }
    free(m.blocks);
    free(m.ratio);
    return r;
}

int cmd_stats(int argc, char **argv)
{
    static const struct option opts[] = {
        {"server", required_argument, NULL, 's'},  {"json", no_argument, NULL, 'j'},
        {"secret", required_argument, NULL, 'S'},  {"secret-file", required_argument, NULL, 'F'},
        {"mrc", required_argument, NULL, 'm'},     {"table", no_argument, NULL, 't'},
        {"servers", required_argument, NULL, 'v'}, {"tenant", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},          {0},
    };
    const char *server = NULL, *mrc = NULL, *servers = NULL, *tenant = NULL;
    bool json = false, table = false, secret_given = false;
    char secret[512] = "";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
        switch (c) {
        case 's': server = optarg; break;
        case 'j': json = true; break;
        case 'm': mrc = optarg; break;
        case 'v': servers = optarg; break;
        case 'T': tenant = optarg; break;
        case 't': table = true; break;
        case 'S':
            snprintf(secret, sizeof secret, "%s", optarg);
            secret_given = true;
            break;
        case 'F': {
            secret_given = true;
            FILE *f = fopen(optarg, "r");
            if (!f || !fgets(secret, sizeof secret, f)) {
                fprintf(stderr, "remoca stats: --secret-file %s: %s\n", optarg,
                        f ? "empty" : strerror(errno));
                if (f) fclose(f);
                return 1;
            }
            fclose(f);
            secret[strcspn(secret, "\r\n")] = 0;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    const char *conflict = !!server + !!mrc + !!servers > 1
                               ? "--server, --mrc and --servers exclude each other"
                           : tenant && !server ? "--tenant goes with --server"
                           : servers && (secret_given || table || optind < argc)
                               ? "--servers reads a file: only --json goes with it"
                           : mrc && secret_given  ? "--mrc reads a file: no secret needed"
                           : table && !mrc        ? "--table needs --mrc STATSFILE"
                           : json && table        ? "--json and --table exclude each other"
                           : mrc && optind < argc ? "unexpected argument"
                                                  : NULL;
    if (conflict) {
        fprintf(stderr, "remoca stats: %s\n", conflict);
        usage(stderr);
        return 2;
    }
    if (mrc) return mrc_main(mrc, json, table);
    if (servers) return stats_servers_main(servers, json);
    if (!server || optind < argc) {
        fprintf(stderr, "remoca stats: %s\n",
                server ? "unexpected argument" : "--server ADDR or --mrc STATSFILE is required");
        usage(stderr);
        return 2;
    }
    char *text, err[512];
    if (remoca_stats_query_as(server, tenant, secret, json, TIMEOUT_MS, &text, err, sizeof err) <
        0) {
        fprintf(stderr, "remoca stats: %s%s\n", err,
                strstr(err, "needs a secret") ? " (--secret-file FILE)" : "");
        return 1;
    }
    size_t len = strlen(text);
    fwrite(text, 1, len, stdout);
    if (len && text[len - 1] != '\n') putchar('\n');
    free(text);
    return fflush(stdout) == 0 ? 0 : 1;
}
