/* SPDX-License-Identifier: BSD-3-Clause */
/* The balancer's decision: a pure function of what one loop measured.
 *
 *   per VM: curve, read rate, RAM now, floor, ceiling, remote share now, mode
 *   budgets: host RAM, remote memory;  the previous decision
 *        │
 *        ▼
 *   1. local:  every VM at its floor; greedy: the chunk run with the most
 *              disk reads saved per MiB goes to its VM, until the host budget
 *              is spent or nothing saves reads; what is left goes back to the
 *              VMs that had it (nothing shrinks without a reason)
 *   2. remote: the same over the remote budget, from each pool's minimum,
 *              with the local allocation fixed (local RAM is faster: first)
 *      1'+2'. again, step 1 judging each VM with all the remote memory it
 *              could get: a set that fits only in RAM and remote together
 *              is a cliff neither step reaches alone; the allocation with
 *              fewer expected reads of the two is the goal
 *   3. hysteresis: the goal is taken only if it saves more than `threshold`
 *              of the expected disk reads of the previous decision (or the
 *              current state breaks a floor, a ceiling or a budget); each VM
 *              then moves at most `step` MiB per loop, shrinks before grows;
 *              a quiet VM (no reads seen) shrinks in watched probes and
 *              keeps a size whose shrink raised its reads (watch.h)
 *        │
 *        ▼
 *   per VM: balloon target (MiB), remote share (MiB)
 *
 * The model (why these numbers mean disk reads).  A front end sees the
 * guest's page-cache misses, and its curve says what fraction of them would
 * still miss with x MiB more cache.  Giving the guest D MiB more RAM (balloon)
 * moves it D MiB to the right on that curve; so does D MiB of remote share in
 * exclusive mode (guest and remote hold different blocks: they add up).  In
 * inclusive mode the remote holds copies of what the guest caches too, so it
 * only helps beyond the guest's page cache, estimated as its RAM above its
 * floor: extra = max(0, remote - (ram - floor)).  Expected disk reads per
 * second of a VM = rate * ratio(x), rate = its front end's block reads per
 * second.  Left of 0 (less RAM than now) the curve says nothing: the memory
 * the guest has is assumed worth what the next memory would be, the curve
 * mirrored, ratio(-x) = 2 - ratio(x).  That is wrong for a guest whose
 * working set just fits; floors and `step` bound the harm.
 *
 * A greedy by single chunks never climbs a cliff (a loop that fits only with
 * 100 MiB more gains nothing from the first 16): each VM's candidate is the
 * run of k chunks with the best gain per MiB (the lookahead of Qureshi and
 * Patt's utility-based cache partitioning, MICRO '06). */
#ifndef REMOCA_BALANCER_POLICY_H
#define REMOCA_BALANCER_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "curve.h"

#define BAL_MAX_VMS 64

enum bal_mode { BAL_INCLUSIVE, BAL_EXCLUSIVE };

/* One VM as measured by a loop.  Sizes in MiB. */
struct bal_vm_in {
    const char *name;              /* for messages; NULL: "VM <index + 1>" */
    const struct bal_curve *curve; /* NULL: no curve yet: its allocation is kept */
    double rate;                   /* front-end block reads/s; < 0: unknown: kept */
    uint64_t ram;                  /* guest RAM now (QMP query-balloon) */
    uint64_t floor, ceil;          /* never below floor (guest OOM), never above ceil */
    uint64_t remote;               /* remote share now */
    uint64_t remote_min, remote_max;
    enum bal_mode mode;
    /* from watch.h (all 0: no limits) */
    uint64_t guard;      /* RAM it keeps (a shrink from there raised its reads); 0: none */
    uint64_t shrink_max; /* most its RAM shrinks in a move, MiB; 0: the step */
    bool watched;        /* a shrink of it is being watched: no other one now */
};

struct bal_params {
    uint64_t host_budget;   /* guest RAM of all VMs together, MiB */
    uint64_t remote_budget; /* remote shares together, MiB */
    uint64_t chunk;         /* allocation unit, MiB (> 0) */
    uint64_t step;          /* most a VM's RAM or share moves per loop, MiB (> 0) */
    double threshold;       /* fraction of expected reads a move must save (0.05) */
    /* watch.h */
    double quiet_rate;    /* reads/s below which a VM is quiet (16: 64 KiB/s) */
    unsigned watch_loops; /* loops a quiet VM's shrink is watched */
    unsigned guard_loops; /* loops a guard holds */
};

/* An allocation: what the balancer asked for. */
struct bal_alloc {
    bool valid;  /* false: no previous decision (the first loop) */
    bool moving; /* the last move stopped short of its goal (step): go on */
    uint64_t ram[BAL_MAX_VMS], remote[BAL_MAX_VMS];
};

enum bal_verdict {
    BAL_HOLD, /* saving below the threshold: the previous allocation stays */
    BAL_MOVE, /* towards the goal, at most a step */
    BAL_FIX,  /* the previous allocation broke a rule: straight to the goal */
};

struct bal_result {
    struct bal_alloc out;  /* the decision (out.valid is true) */
    struct bal_alloc goal; /* where the greedy would go */
    enum bal_verdict verdict;
    double reads_base, reads_goal, reads_out; /* expected disk reads/s, all VMs */
    double vm_base[BAL_MAX_VMS], vm_goal[BAL_MAX_VMS], vm_out[BAL_MAX_VMS];
    bool kept[BAL_MAX_VMS]; /* no curve or no rate: allocation kept */
    char why[200];          /* the verdict in words, or the error */
};

/* Expected disk reads/s of v with ram MiB of guest RAM and remote MiB of share. */
double bal_expected_reads(const struct bal_vm_in *v, uint64_t ram, uint64_t remote);

/* Decides for n VMs (<= BAL_MAX_VMS).  prev: the previous decision, or NULL /
 * !valid at the first loop (the current state is then the baseline).
 * -1 with r->why when the floors or the remote minimums exceed their budgets
 * (no allocation can keep every guest alive); else 0. */
int bal_decide(const struct bal_params *p, const struct bal_vm_in *vm, unsigned n,
               const struct bal_alloc *prev, struct bal_result *r);

#endif
