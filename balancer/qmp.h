/* SPDX-License-Identifier: BSD-3-Clause */
/* A QMP client for the balloon: one short connection per loop, since a QMP
 * socket serves one client at a time and an operator may want it too.
 *
 *   connect(unix) ─▶ greeting {"QMP": ...} ─▶ {"execute":"qmp_capabilities"}
 *     ─▶ {"execute":"query-balloon"}            {"return":{"actual":BYTES}}
 *     ─▶ {"execute":"query-memory-size-summary"} {"return":{"base-memory":BYTES,...}}
 *     ─▶ {"execute":"balloon","arguments":{"value":BYTES}}   {"return":{}}
 *   lines of {"event": ...} in between are skipped; JSON by json-c.
 *
 * Every wait is bounded by the timeout given to qmp_open. */
#ifndef REMOCA_BALANCER_QMP_H
#define REMOCA_BALANCER_QMP_H

#include <stddef.h>
#include <stdint.h>

struct qmp;

/* Connects and negotiates; NULL with a message in err (which names path). */
struct qmp *qmp_open(const char *path, unsigned timeout_ms, char *err, size_t errlen);
void qmp_close(struct qmp *q);

/* The guest's RAM now, as the balloon sees it (bytes). */
int qmp_balloon_actual(struct qmp *q, uint64_t *bytes, char *err, size_t errlen);
/* The guest's RAM at boot (-m): the most the balloon can give back (bytes). */
int qmp_base_memory(struct qmp *q, uint64_t *bytes, char *err, size_t errlen);
/* Asks the balloon driver for a guest of `bytes` RAM; QEMU answers at once,
 * the guest gets there (or not) in its own time. */
int qmp_balloon_set(struct qmp *q, uint64_t bytes, char *err, size_t errlen);

#endif
