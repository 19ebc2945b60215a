/* SPDX-License-Identifier: BSD-3-Clause */
/* Shrinking a quiet guest with care.  A guest whose front end sees (almost)
 * no reads is either idle or holds its whole working set in its page cache:
 * the front end cannot tell which, and the curve prices its RAM at nothing
 * either way.  So its RAM is taken in probes, and each probe is watched:
 *
 *   quiet (rate < quiet_rate), no shrink being watched
 *        │  may shrink by `probe` MiB: a chunk first, x4 after each probe
 *        │  that raised nothing, at most the step
 *        ▼
 *   shrunk from F MiB: watched for watch_loops loops, no other shrink
 *        ├─ its reads rose (above before + max(25% of before, quiet_rate)):
 *        │     guard = F for guard_loops loops: F is then its floor (below
 *        │     a floor is a broken rule: the decision restores it at once);
 *        │     the probe starts again from a chunk; until it is quiet again
 *        │     (at most guard_loops loops) its rate counts as unknown (the VM
 *        │     keeps what it has): its reads then are the refill of what the
 *        │     probe evicted, which would buy it far more RAM than it lost
 *        └─ no rise: the probe grows
 *
 * A guest that reads (not quiet) is shrunk as the curve says, a step at a
 * time: its curve already prices its RAM.  The guard is kept only while the
 * floors and guards fit in the host budget (bal_decide drops them otherwise).
 * Pure, like policy.c: main.c keeps one bal_watch per VM and calls the three
 * functions around each decision. */
#ifndef REMOCA_BALANCER_WATCH_H
#define REMOCA_BALANCER_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

struct bal_watch {
    uint64_t probe;  /* most the next shrink of a quiet guest takes, MiB; 0: a chunk */
    uint64_t from;   /* RAM target before the shrink being watched, MiB */
    double before;   /* its read rate then */
    unsigned left;   /* loops still to watch it; 0: none watched */
    uint64_t guard;  /* RAM it keeps (a shrink from there raised its reads); 0: none */
    unsigned hold;   /* loops the guard still holds */
    unsigned refill; /* loops its rate may still count as unknown (a guard was just set) */
};

/* Before a decision, with this loop's read rate (< 0: unknown): counts the
 * watch and the guard down; true when a watched shrink raised the reads (the
 * guard is then set). */
bool bal_watch_sample(struct bal_watch *w, const struct bal_params *p, double rate);

/* Sets in->guard, in->shrink_max and in->watched (in->rate must be set), and
 * in->rate to -1 (unknown: kept) while the guest refills after an undone probe. */
void bal_watch_limits(const struct bal_watch *w, const struct bal_params *p, struct bal_vm_in *in);

/* After the decision: the VM's RAM target went from base to out MiB. */
void bal_watch_decided(struct bal_watch *w, const struct bal_params *p, const struct bal_vm_in *in,
                       uint64_t base, uint64_t out);

#endif
