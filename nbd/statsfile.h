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
/* The curve to write while there is no engine (remoca-vhost --mode off keeps
 * one of its own); an engine's own curve comes first.  Call before reads. */
struct remoca_mrc;
void statsfile_set_mrc(struct statsfile *s, const struct remoca_mrc *m);
/* The seal to report (seal_* lines), once it exists: *seal is read
 * atomically, like *cache; NULL (or never called): no seal_* lines. */
struct remoca_seal;
void statsfile_set_seal(struct statsfile *s, struct remoca_seal *const *seal);
/* Stops the thread and writes the file a last time. */
void statsfile_stop(struct statsfile *s);

#endif
