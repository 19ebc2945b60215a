/* SPDX-License-Identifier: BSD-3-Clause */
/* The balancer's decision (balancer/policy.h: the steps and the model).
 * No I/O, no clock: the unit test drives it with synthetic curves. */
#include <stdio.h>
#include <string.h>

#include "policy.h"

#define BLOCKS_PER_MIB 256.0 /* 4 KiB blocks */
#define MIN_GAIN 1e-9        /* reads/s per MiB: below this a chunk saves nothing */

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Miss ratio x MiB right (x > 0) or left (x < 0, mirrored) of the guest's size now. */
static double ratio_at(const struct bal_curve *c, double x)
{
    if (x >= 0) return bal_curve_at(c, x * BLOCKS_PER_MIB);
    return 2.0 - bal_curve_at(c, -x * BLOCKS_PER_MIB);
}

double bal_expected_reads(const struct bal_vm_in *v, uint64_t ram, uint64_t remote)
{
    if (v->rate <= 0) return 0;
    if (!v->curve) return v->rate; /* extra 0: every read the front end sees misses */
    double x = (double)ram - (double)v->ram;
    if (v->mode == BAL_EXCLUSIVE) {
        x += (double)remote;
    } else {
        uint64_t cache = ram > v->floor ? ram - v->floor : 0;
        if (remote > cache) x += (double)(remote - cache);
    }
    return v->rate * ratio_at(v->curve, x);
}

/* What the greedy of one resource (RAM or remote) works on. */
struct greedy {
    const struct bal_params *p;
    const struct bal_vm_in *vm;
    unsigned n;
    bool remote;         /* allocating remote shares (ram fixed) */
    uint64_t *ram, *rem; /* the allocation being built */
    const bool *kept;    /* not allocated by the greedy */
};

static double cost(const struct greedy *g, unsigned i, uint64_t amount)
{
    return g->remote ? bal_expected_reads(&g->vm[i], g->ram[i], amount)
                     : bal_expected_reads(&g->vm[i], amount, g->rem[i]);
}

/* VM i's best run of chunks from a, at most limit MiB: *add (0: none saves). */
static void best_run(const struct greedy *g, unsigned i, uint64_t a, uint64_t limit, uint64_t *add,
                     double *gain)
{
    double e0 = cost(g, i, a);
    *add = 0;
    *gain = 0;
    for (uint64_t d = g->p->chunk;; d += g->p->chunk) {
        uint64_t dd = min_u64(d, limit);
        double per_mib = (e0 - cost(g, i, a + dd)) / (double)dd;
        if (per_mib > *gain * (1 + 1e-9) && per_mib > MIN_GAIN) {
            *gain = per_mib;
            *add = dd;
        }
        if (dd == limit) break;
    }
}

/* Gives chunk runs to the VM that saves the most per MiB until *left is spent.
 * Each VM's best run is cached and recomputed when its VM grew or when it no
 * longer fits in what is left. */
static void greedy_fill(const struct greedy *g, uint64_t *alloc, const uint64_t *hi, uint64_t *left)
{
    uint64_t add[BAL_MAX_VMS];
    double gain[BAL_MAX_VMS];
    bool fresh[BAL_MAX_VMS] = {false};
    for (;;) {
        int best = -1;
        for (unsigned i = 0; i < g->n; i++) {
            if (g->kept[i] || alloc[i] >= hi[i]) continue;
            uint64_t limit = min_u64(hi[i] - alloc[i], *left);
            if (limit == 0) continue;
            if (!fresh[i] || add[i] > limit) {
                best_run(g, i, alloc[i], limit, &add[i], &gain[i]);
                fresh[i] = true;
            }
            if (add[i] && (best < 0 || gain[i] > gain[best] * (1 + 1e-9))) best = (int)i;
        }
        if (best < 0) return;
        alloc[best] += add[best];
        *left -= add[best];
        fresh[best] = false;
    }
}

/* What is left goes back to the VMs below their baseline, in VM order. */
static void give_back(unsigned n, uint64_t *alloc, const uint64_t *base, const uint64_t *hi,
                      uint64_t *left)
{
    for (unsigned i = 0; i < n && *left; i++) {
        uint64_t want = min_u64(base[i], hi[i]);
        if (alloc[i] >= want) continue;
        uint64_t d = min_u64(want - alloc[i], *left);
        alloc[i] += d;
        *left -= d;
    }
}

/* At most a step per VM from base towards goal within budget: shrinks first
 * (at most down[i] if down), then grows in VM order with what the shrinks (and
 * the budget) left. */
static void step_toward(unsigned n, const uint64_t *base, const uint64_t *goal, uint64_t *out,
                        uint64_t step, const uint64_t *down, uint64_t budget)
{
    uint64_t used = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t most = down ? min_u64(down[i], step) : step;
        out[i] = base[i];
        if (goal[i] < base[i]) out[i] = base[i] - min_u64(base[i] - goal[i], most);
        used += out[i];
    }
    for (unsigned i = 0; i < n; i++) {
        if (goal[i] <= base[i]) continue;
        uint64_t room = budget > used ? budget - used : 0;
        uint64_t d = min_u64(min_u64(goal[i] - base[i], step), room);
        out[i] += d;
        used += d;
    }
}

static double total(const struct bal_vm_in *vm, unsigned n, const uint64_t *ram,
                    const uint64_t *rem, double *per_vm)
{
    double t = 0;
    for (unsigned i = 0; i < n; i++) t += per_vm[i] = bal_expected_reads(&vm[i], ram[i], rem[i]);
    return t;
}

static const char *name_of(const struct bal_vm_in *v, unsigned i, char *buf, size_t len)
{
    if (v->name) return v->name;
    snprintf(buf, len, "VM %u", i + 1);
    return buf;
}

/* Why the baseline cannot stay, or "" if it may.  flo: the floors, guards included. */
static void broken_rule(const struct bal_params *p, const struct bal_vm_in *vm, unsigned n,
                        const uint64_t *flo, const uint64_t *ram, const uint64_t *rem, char *why,
                        size_t len)
{
    uint64_t sr = 0, ss = 0;
    why[0] = 0;
    for (unsigned i = 0; i < n; i++) {
        char nb[16];
        const char *name = name_of(&vm[i], i, nb, sizeof nb);
        sr += ram[i];
        ss += rem[i];
        if (ram[i] < vm[i].floor)
            snprintf(why, len, "%s: RAM %llu MiB is below its floor %llu MiB", name,
                     (unsigned long long)ram[i], (unsigned long long)vm[i].floor);
        else if (ram[i] < flo[i])
            snprintf(why, len,
                     "%s: RAM %llu MiB is below the %llu MiB a shrink raised its reads from", name,
                     (unsigned long long)ram[i], (unsigned long long)flo[i]);
        else if (ram[i] > vm[i].ceil)
            snprintf(why, len, "%s: RAM %llu MiB is above its ceiling %llu MiB", name,
                     (unsigned long long)ram[i], (unsigned long long)vm[i].ceil);
        else if (rem[i] < vm[i].remote_min || rem[i] > vm[i].remote_max)
            snprintf(why, len, "%s: remote share %llu MiB is outside [%llu, %llu] MiB", name,
                     (unsigned long long)rem[i], (unsigned long long)vm[i].remote_min,
                     (unsigned long long)vm[i].remote_max);
        if (why[0]) return;
    }
    if (sr > p->host_budget)
        snprintf(why, len, "guest RAM %llu MiB is above the host budget %llu MiB",
                 (unsigned long long)sr, (unsigned long long)p->host_budget);
    else if (ss > p->remote_budget)
        snprintf(why, len, "remote shares %llu MiB are above the remote budget %llu MiB",
                 (unsigned long long)ss, (unsigned long long)p->remote_budget);
}

/* Kept VMs (no curve or no rate) keep their baseline, clamped to their limits;
 * if they and everyone else's minimum do not fit, they shrink towards their
 * minimum in VM order.  Others start at their minimum.  Returns what is left. */
static uint64_t start_at_minimum(unsigned n, const bool *kept, const uint64_t *base,
                                 const uint64_t *lo, const uint64_t *hi, uint64_t budget,
                                 uint64_t *alloc)
{
    uint64_t used = 0;
    for (unsigned i = 0; i < n; i++) {
        alloc[i] = kept[i] ? clamp_u64(base[i], lo[i], hi[i]) : lo[i];
        used += alloc[i];
    }
    for (unsigned i = 0; i < n && used > budget; i++) {
        if (!kept[i]) continue;
        uint64_t d = min_u64(alloc[i] - lo[i], used - budget);
        alloc[i] -= d;
        used -= d;
    }
    return budget - used; /* the caller checked that the minimums fit */
}

/* Each VM's floor, raised to its guard (within its ceiling) if all of them fit
 * in the host budget; else the plain floors (a guard is advice, a floor a rule). */
static void guarded_floors(const struct bal_params *p, const struct bal_vm_in *vm, unsigned n,
                           const uint64_t *fhi, uint64_t *flo)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < n; i++) {
        flo[i] = vm[i].guard > vm[i].floor ? min_u64(vm[i].guard, fhi[i]) : vm[i].floor;
        sum += flo[i];
    }
    if (sum <= p->host_budget) return;
    for (unsigned i = 0; i < n; i++) flo[i] = vm[i].floor;
}

/* The most each VM's RAM shrinks in a move: the step, a quiet VM's probe, 0 while watched. */
static void shrink_limits(const struct bal_params *p, const struct bal_vm_in *vm, unsigned n,
                          uint64_t *down)
{
    for (unsigned i = 0; i < n; i++)
        down[i] = vm[i].watched ? 0 : vm[i].shrink_max ? vm[i].shrink_max : p->step;
}

int bal_decide(const struct bal_params *p, const struct bal_vm_in *vm, unsigned n,
               const struct bal_alloc *prev, struct bal_result *r)
{
    memset(r, 0, sizeof *r);
    if (n > BAL_MAX_VMS || p->chunk == 0 || p->step == 0) {
        snprintf(r->why, sizeof r->why, "bad parameters");
        return -1;
    }
    uint64_t floors = 0, mins = 0, base_ram[BAL_MAX_VMS], base_rem[BAL_MAX_VMS];
    uint64_t rlo[BAL_MAX_VMS], rhi[BAL_MAX_VMS], flo[BAL_MAX_VMS], fhi[BAL_MAX_VMS];
    bool have_prev = prev && prev->valid;
    for (unsigned i = 0; i < n; i++) {
        fhi[i] = vm[i].ceil > vm[i].floor ? vm[i].ceil : vm[i].floor;
        rlo[i] = vm[i].remote_min;
        rhi[i] = vm[i].remote_max > rlo[i] ? vm[i].remote_max : rlo[i];
        floors += vm[i].floor;
        mins += rlo[i];
        base_ram[i] = have_prev ? prev->ram[i] : vm[i].ram;
        base_rem[i] = have_prev ? prev->remote[i] : vm[i].remote;
        r->kept[i] = !vm[i].curve || vm[i].rate < 0;
    }
    if (floors > p->host_budget || mins > p->remote_budget) {
        snprintf(r->why, sizeof r->why, "the %s (%llu MiB) exceed the %s budget (%llu MiB)",
                 floors > p->host_budget ? "floors" : "remote minimums",
                 (unsigned long long)(floors > p->host_budget ? floors : mins),
                 floors > p->host_budget ? "host" : "remote",
                 (unsigned long long)(floors > p->host_budget ? p->host_budget : p->remote_budget));
        return -1;
    }
    guarded_floors(p, vm, n, fhi, flo);

    /* 1. local, with each share at its minimum (kept VMs: their share);
     * 2. remote, over the local allocation. */
    struct bal_alloc *g = &r->goal;
    struct greedy gr = {p, vm, n, false, g->ram, g->remote, r->kept};
    uint64_t left = start_at_minimum(n, r->kept, base_rem, rlo, rhi, p->remote_budget, g->remote);
    uint64_t lleft = start_at_minimum(n, r->kept, base_ram, flo, fhi, p->host_budget, g->ram);
    greedy_fill(&gr, g->ram, fhi, &lleft);
    give_back(n, g->ram, base_ram, fhi, &lleft);
    gr.remote = true;
    greedy_fill(&gr, g->remote, rhi, &left);
    give_back(n, g->remote, base_rem, rhi, &left);
    g->valid = true;
    /* 1'. and 2'. once more, the local greedy judging each VM with all the remote memory it
     * could get (its minimum + what no minimum holds): a set that fits only in RAM and remote
     * together is a cliff out of reach of either alone; the better allocation is the goal. */
    struct bal_alloc alt = *g;
    struct greedy ga = {p, vm, n, false, alt.ram, alt.remote, r->kept};
    uint64_t spare = start_at_minimum(n, r->kept, base_rem, rlo, rhi, p->remote_budget, alt.remote);
    for (unsigned i = 0; i < n; i++)
        if (!r->kept[i]) alt.remote[i] = min_u64(rhi[i], alt.remote[i] + spare);
    lleft = start_at_minimum(n, r->kept, base_ram, flo, fhi, p->host_budget, alt.ram);
    greedy_fill(&ga, alt.ram, fhi, &lleft);
    give_back(n, alt.ram, base_ram, fhi, &lleft);
    ga.remote = true;
    left = start_at_minimum(n, r->kept, base_rem, rlo, rhi, p->remote_budget, alt.remote);
    greedy_fill(&ga, alt.remote, rhi, &left);
    give_back(n, alt.remote, base_rem, rhi, &left);
    double dummy[BAL_MAX_VMS];
    if (total(vm, n, alt.ram, alt.remote, dummy) <
        total(vm, n, g->ram, g->remote, dummy) * (1 - 1e-9))
        *g = alt;

    /* 3. hysteresis. */
    r->reads_base = total(vm, n, base_ram, base_rem, r->vm_base);
    r->reads_goal = total(vm, n, g->ram, g->remote, r->vm_goal);
    double saving = r->reads_base - r->reads_goal;
    double pct = r->reads_base > 0 ? 100 * saving / r->reads_base : 0;
    char broken[160];
    broken_rule(p, vm, n, flo, base_ram, base_rem, broken, sizeof broken);
    struct bal_alloc *o = &r->out;
    bool same = !memcmp(base_ram, g->ram, n * sizeof g->ram[0]) &&
                !memcmp(base_rem, g->remote, n * sizeof g->remote[0]);
    if (broken[0]) {
        *o = *g;
        r->verdict = BAL_FIX;
        snprintf(r->why, sizeof r->why, "%s: straight to the goal", broken);
    } else if (same || saving <= 0 ||
               (!(have_prev && prev->moving) && saving <= p->threshold * r->reads_base)) {
        memcpy(o->ram, base_ram, n * sizeof base_ram[0]);
        memcpy(o->remote, base_rem, n * sizeof base_rem[0]);
        r->verdict = BAL_HOLD;
        if (same)
            snprintf(r->why, sizeof r->why, "hold: already at the goal");
        else if (saving <= 0)
            snprintf(r->why, sizeof r->why, "hold: the goal would save nothing");
        else
            snprintf(r->why, sizeof r->why, "hold: the goal would save %.1f%%, not more than %g%%",
                     pct, 100 * p->threshold);
    } else {
        uint64_t down[BAL_MAX_VMS] = {0};
        shrink_limits(p, vm, n, down);
        step_toward(n, base_ram, g->ram, o->ram, p->step, down, p->host_budget);
        step_toward(n, base_rem, g->remote, o->remote, p->step, NULL, p->remote_budget);
        r->verdict = BAL_MOVE;
        if (have_prev && prev->moving)
            snprintf(r->why, sizeof r->why, "move on: a move in progress (the goal saves %.1f%%)",
                     pct);
        else
            snprintf(r->why, sizeof r->why, "move: the goal saves %.1f%%, more than %g%%", pct,
                     100 * p->threshold);
    }
    o->valid = true;
    /* only a move goes on: a hold that "goes on" would skip the threshold every other loop */
    o->moving = r->verdict == BAL_MOVE && (memcmp(o->ram, g->ram, n * sizeof o->ram[0]) ||
                                           memcmp(o->remote, g->remote, n * sizeof o->remote[0]));
    r->reads_out = total(vm, n, o->ram, o->remote, r->vm_out);
    return 0;
}
