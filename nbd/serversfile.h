/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca-servers-file= (the filter) and --servers-file (remoca-vhost): the
 * memory server list in a file, re-read when it changes. */
#ifndef REMOCA_NBD_SERVERSFILE_H
#define REMOCA_NBD_SERVERSFILE_H

#include <stddef.h>

struct remoca_client;
struct serversfile;

/* Reads FILE into a server list (comma-separated, for remoca_client_new and
 * remoca_client_set_servers): entries one per line or comma-separated on a
 * line, '#' to the end of a line is a comment, blank lines are ignored.
 * malloc'd, or NULL with a message in err (no file, no entry, too long). */
char *serversfile_read(const char *path, char *err, size_t errlen);

/* Polls FILE every second (inode, size, mtime) and applies a changed list
 * with remoca_client_set_servers; a file that cannot be read or parsed is
 * logged and the current list kept.  NULL on failure (logged). */
struct serversfile *serversfile_start(const char *path, struct remoca_client *client);
/* Stops the thread: before remoca_client_free. */
void serversfile_stop(struct serversfile *w);

#endif
