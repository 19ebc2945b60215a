/* SPDX-License-Identifier: BSD-3-Clause */
/* A front end's stats file (nbd/statsfile.c) as the balancer reads it, and its
 * miss-ratio curve.
 *
 *   disk_size=...  read_blocks=...  remote_hits=...    engine counters
 *   mrc_refs=4098                  block reads the curve has seen (cumulative)
 *   mrc_sampled=..  mrc_rate=..  mrc_samples=..  mrc_bytes=..
 *   mrc=32:1.0000,64:0.9800,...,2049:0.5000
 *       SIZE:RATIO   SIZE = extra cache in 4 KiB blocks beyond what the guest
 *                    caches; RATIO = fraction of the front end's block reads
 *                    that would still miss with it (non-increasing)
 *
 *   ratio 1 ●─────●
 *           │      ╲          linear between points; (0, 1) is implied;
 *           │       ●──●      flat after the last point
 *           │           ╲
 *           0            ●────────────  extra blocks
 *
 * No mrc lines (an older front end, or a curve not yet started) is not an
 * error: has_curve is false and `why` says so. */
#ifndef REMOCA_BALANCER_CURVE_H
#define REMOCA_BALANCER_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BAL_CURVE_MAX 256 /* points kept (the front ends write 64) */

struct bal_curve {
    unsigned n;
    double size[BAL_CURVE_MAX];  /* extra cache, 4 KiB blocks, strictly increasing, > 0 */
    double ratio[BAL_CURVE_MAX]; /* in [0, 1], non-increasing */
};

struct bal_stats {
    bool has_refs;     /* mrc_refs= was present */
    uint64_t mrc_refs; /* block reads seen by the curve since the front end started */
    bool has_curve;    /* a well-formed mrc= line */
    struct bal_curve curve;
    uint64_t read_blocks, remote_hits; /* 0 when absent */
    double mtime;                      /* the file's last rewrite, seconds (CLOCK_REALTIME) */
    char why[128];                     /* when !has_curve: what was missing or malformed */
};

/* Parses the text of a stats file (len bytes, need not be NUL-terminated).
 * Unknown keys are ignored; only a malformed mrc= line loses the curve. */
void bal_stats_parse(const char *text, size_t len, struct bal_stats *st);

/* Reads and parses the file at path: 0, or -1 with errno set (ENOENT: the
 * front end is not running or not writing stats there). */
int bal_stats_read(const char *path, struct bal_stats *st);

/* The curve's miss ratio with extra_blocks (>= 0) more cache. */
double bal_curve_at(const struct bal_curve *c, double extra_blocks);

#endif
