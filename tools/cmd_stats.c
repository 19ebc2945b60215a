/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca stats --server ADDR [--json] [--secret-file FILE]: prints a memory
 * server's stats.
 *
 * ADDR is HOST:PORT ([v6]:PORT works) or unix:PATH.  libremoca's
 * remoca_stats_query does the talking (HELLO, then STATS, with REMOCA_F_JSON
 * for --json); the command prints the payload as the server sent it.
 * A server started with --secret answers the first HELLO with a challenge;
 * the command then proves it knows the secret (HMAC-SHA256 of the nonce and
 * the client name, docs/protocol.md "Authentication").
 * Exit status: 0 on success, 1 if the server cannot be reached or answers
 * wrongly, 2 on a usage error.  Every wait is bounded (5 s). */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "remoca/client.h"

#define TIMEOUT_MS 5000

static void usage(FILE *f)
{
    fprintf(f, "usage: remoca stats --server ADDR [--json] [--secret-file FILE]\n"
               "  ADDR  HOST:PORT or unix:PATH of a remoca-memd\n"
               "  --json  print the stats as JSON instead of text\n"
               "  --secret-file FILE  the server's --secret (first line of FILE)\n"
               "  --secret SECRET     the same, on the command line\n");
}

int cmd_stats(int argc, char **argv)
{
    static const struct option opts[] = {
        {"server", required_argument, NULL, 's'}, {"json", no_argument, NULL, 'j'},
        {"secret", required_argument, NULL, 'S'}, {"secret-file", required_argument, NULL, 'F'},
        {"help", no_argument, NULL, 'h'},         {0},
    };
    const char *server = NULL;
    bool json = false;
    char secret[512] = "";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
        switch (c) {
        case 's': server = optarg; break;
        case 'j': json = true; break;
        case 'S': snprintf(secret, sizeof secret, "%s", optarg); break;
        case 'F': {
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
    if (!server || optind < argc) {
        fprintf(stderr, "remoca stats: %s\n",
                server ? "unexpected argument" : "--server ADDR is required");
        usage(stderr);
        return 2;
    }
    char *text, err[512];
    if (remoca_stats_query(server, secret, json, TIMEOUT_MS, &text, err, sizeof err) < 0) {
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
