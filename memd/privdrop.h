/* SPDX-License-Identifier: BSD-3-Clause */
/* --user NAME: remoca-memd started as root gives root up once it holds what
 * only root could get (a privileged port, the arena, the pid/port files),
 * before it accepts its first connection:
 *
 *   main: parse -> privdrop_lookup -> store -> pid file -> server_start
 *         (bind, workers, port file) -> privdrop_apply -> server_run
 *
 * privdrop_apply sets the supplementary groups (initgroups), the gid, then
 * the uid (glibc applies each to every thread), and checks that the process
 * cannot become root again.  The workers exist already but accept nothing
 * until server_run, so no client is ever served as root. */
#ifndef MEMD_PRIVDROP_H
#define MEMD_PRIVDROP_H

#include <sys/types.h>

struct privdrop {
    const char *name;
    uid_t uid;
    gid_t gid;
};

/* Resolves NAME (getpwnam).  Returns 0, or -1 after logging why. */
int privdrop_lookup(const char *name, struct privdrop *p);
/* Becomes p's user and groups; -1 (logged) if that fails or root could be
 * regained.  Not root and already p's user: nothing to do, 0. */
int privdrop_apply(const struct privdrop *p);

#endif
