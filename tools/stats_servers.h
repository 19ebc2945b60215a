/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca stats --servers STATSFILE: the per-server lines of a front end's stats file. */
#ifndef REMOCA_TOOLS_STATS_SERVERS_H
#define REMOCA_TOOLS_STATS_SERVERS_H

#include <stdbool.h>

/* Prints the memory servers of a stats file (nbd/statsfile.c) as a table or
 * JSON.  0, or 1 if the file cannot be read or names no server. */
int stats_servers_main(const char *path, bool json);

#endif
