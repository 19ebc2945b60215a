/* SPDX-License-Identifier: BSD-3-Clause */
/* Command line of remoca-memd: parsing and --help. */
#ifndef MEMD_CONFIG_H
#define MEMD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "store.h"
#include "tenants.h"

struct memd_config {
    const char *listen; /* NULL = no TCP */
    const char *unix_path;
    const char *port_file;
    const char *pid_file;
    uint64_t memory; /* bytes */
    unsigned threads;
    unsigned max_conns;
    unsigned max_pools;
    uint64_t max_buffers;
    int log_level;
    enum policy_kind policy;
    bool shm;                    /* --shm: the store in memfds, SHM_MAP on the unix socket */
    struct auth auth;            /* --secret / --secret-file */
    const char *tenants_file;    /* --tenants FILE (tenants.h); excludes --secret */
    struct tenants tenants;      /* loaded from it (n = 0 without) */
    unsigned max_conns_per_addr; /* 0 = no limit */
    unsigned handshake_timeout, frame_timeout; /* seconds, 0 = none */
    const char *user;                          /* --user: drop root to it */
};

/* Parses argv.  Returns 0 to run, 1 if --help was printed (exit 0), or -1
 * after printing an error (exit 2). */
int config_parse(struct memd_config *cfg, int argc, char **argv);

#endif
