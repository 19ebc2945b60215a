/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca-statsfile: a thread that rewrites a key=value stats file. */
#ifndef REMOCA_NBD_STATSFILE_H
#define REMOCA_NBD_STATSFILE_H

struct remoca_cache;
struct remoca_client;
struct statsfile;

/* *cache may be NULL until the first connection; it is read atomically. */
struct statsfile *statsfile_start(const char *path, struct remoca_cache *const *cache,
                                  struct remoca_client *client);
/* Stops the thread and writes the file a last time. */
void statsfile_stop(struct statsfile *s);

#endif
