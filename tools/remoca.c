/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca: one CLI for operators.  Each subcommand lives in tools/cmd_NAME.c. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"serve", cmd_serve, "serve DISK [--memory SIZE] [--servers LIST]  export DISK through REMOCA"},
    {"stats", cmd_stats, "stats --server ADDR [--json]                 a memory server's stats"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: remoca COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  remoca %s\n", commands[i].help);
    fprintf(f, "\nbenchmarks: bench/run NAME [--quick]; demo: make demo\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "remoca: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
