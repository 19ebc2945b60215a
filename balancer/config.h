/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca-balancer's options: flags and a config file of the same keys.
 *
 *   config file                          flags
 *   # comment                            --host-budget 1G --servers unix:/run/m.sock
 *   host-budget 1G                       --vm web,qmp=/run/web.qmp,stats=/run/web.stats,
 *   servers unix:/run/m.sock                  floor=256M,pool=vm-web/vda
 *   vm web qmp=/run/web.qmp stats=/run/web.stats floor=256M pool=vm-web/vda
 *
 * Flags are applied in order, so those after --config FILE override it; each
 * --vm or `vm` line adds a VM.  Every error names the option (and FILE:LINE). */
#ifndef REMOCA_BALANCER_CONFIG_H
#define REMOCA_BALANCER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

#define BAL_MAX_SERVERS 64
#define BAL_NAME_MAX 64

struct bal_vm_conf {
    char name[BAL_NAME_MAX];
    char *qmp, *stats, *pool;        /* pool: NULL without servers */
    uint64_t floor, ceil;            /* MiB; ceil 0 = the guest's -m (from QMP) */
    uint64_t remote_min, remote_max; /* MiB; remote_max 0 = the remote budget */
    enum bal_mode mode;
    bool mode_set; /* else the global --mode */
};

struct bal_conf {
    struct bal_vm_conf vm[BAL_MAX_VMS];
    unsigned nvm;
    char *servers[BAL_MAX_SERVERS];
    unsigned nservers;
    char *secret;           /* NULL: none */
    char *tenant;           /* --tenant: the HELLO name for remoca-memd --tenants; NULL: none */
    uint64_t host_budget;   /* MiB, required */
    uint64_t remote_budget; /* MiB; 0 = what the servers can give */
    uint64_t chunk, step;   /* MiB */
    double threshold;       /* fraction */
    double interval;        /* seconds */
    enum bal_mode mode;
    bool once, dry_run, verbose;
};

/* Parses argv into c (defaults first).  0: run; 1: --help was printed (exit
 * 0); -1: an error was printed (exit 2). */
int bal_conf_parse(struct bal_conf *c, int argc, char **argv);
void bal_conf_free(struct bal_conf *c);

#endif
