/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca stats --servers STATSFILE [--json]: what a front end (the nbdkit
 * filter's remoca-statsfile=, remoca-vhost --stats) sees of each memory
 * server of its list.  nbd/statsfile.c writes one line per server:
 *
 *   serverI=ADDR up=0|1 weight=W requests=N keys=N hits=N misses=N puts=N
 *          errors=N timeouts=N reconnects=N p50_us=N p99_us=N
 *
 * Text: one row per server with its hit ratio; --json: an array of objects
 * with the same fields.  Unknown fields are ignored (newer writers). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats_servers.h"

#define NFIELDS 12
static const char *const fields[NFIELDS] = {"up",       "weight",     "requests", "keys",
                                            "hits",     "misses",     "puts",     "errors",
                                            "timeouts", "reconnects", "p50_us",   "p99_us"};
enum {
    F_UP,
    F_WEIGHT,
    F_REQ,
    F_KEYS,
    F_HITS,
    F_MISSES,
    F_PUTS,
    F_ERR,
    F_TMO,
    F_RECONN,
    F_P50,
    F_P99
};

struct server_line {
    char addr[512];
    unsigned long long v[NFIELDS];
};

/* "serverI=ADDR k=v k=v ...": 0, or -1 if not a server line. */
static int parse_line(char *line, struct server_line *s)
{
    char *eq = strchr(line, '=');
    if (strncmp(line, "server", 6) != 0 || !eq || eq == line + 6) return -1;
    for (char *p = line + 6; p < eq; p++)
        if (*p < '0' || *p > '9') return -1;
    memset(s, 0, sizeof *s);
    char *save = NULL;
    char *tok = strtok_r(eq + 1, " \n", &save);
    if (!tok) return -1;
    snprintf(s->addr, sizeof s->addr, "%s", tok);
    while ((tok = strtok_r(NULL, " \n", &save))) {
        char *v = strchr(tok, '=');
        if (!v) continue;
        *v++ = '\0';
        for (unsigned i = 0; i < NFIELDS; i++)
            if (!strcmp(tok, fields[i])) s->v[i] = strtoull(v, NULL, 10);
    }
    return 0;
}

int stats_servers_main(const char *path, bool json)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "remoca stats: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char line[2048];
    unsigned n = 0;
    struct server_line s;
    while (fgets(line, sizeof line, f)) {
        if (parse_line(line, &s) < 0) continue;
        if (json) {
            printf("%s{\"addr\": \"", n ? ",\n " : "[");
            for (const char *p = s.addr; *p; p++)
                printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
            printf("\"");
            for (unsigned i = 0; i < NFIELDS; i++) printf(", \"%s\": %llu", fields[i], s.v[i]);
            printf("}");
        } else {
            if (!n)
                printf("%-32s %2s %3s %10s %10s %7s %7s %8s %8s %8s\n", "server", "up", "w", "hits",
                       "misses", "hit%", "errors", "timeouts", "p50_us", "p99_us");
            unsigned long long looked = s.v[F_HITS] + s.v[F_MISSES];
            printf("%-32s %2llu %3llu %10llu %10llu %7.2f %7llu %8llu %8llu %8llu\n", s.addr,
                   s.v[F_UP], s.v[F_WEIGHT], s.v[F_HITS], s.v[F_MISSES],
                   looked ? 100.0 * (double)s.v[F_HITS] / (double)looked : 0.0, s.v[F_ERR],
                   s.v[F_TMO], s.v[F_P50], s.v[F_P99]);
        }
        n++;
    }
    fclose(f);
    if (json && n) printf("]\n");
    if (!n) {
        fprintf(stderr, "remoca stats: %s: no server lines (not a front end's stats file?)\n",
                path);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
