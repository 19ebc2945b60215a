/* SPDX-License-Identifier: BSD-3-Clause */
/* Careful shrinks of quiet guests (balancer/watch.h: the states). */
#include "watch.h"

#define PROBE_GROWTH 4     /* a probe that raised nothing: the next takes this much more */
#define RISE_FRACTION 0.25 /* a rise: this fraction of the rate before, at least quiet_rate */

static bool quiet(const struct bal_params *p, double rate)
{
    return rate >= 0 && rate < p->quiet_rate;
}

bool bal_watch_sample(struct bal_watch *w, const struct bal_params *p, double rate)
{
    if (w->hold && --w->hold == 0) w->guard = 0;
    if (w->refill) w->refill = quiet(p, rate) ? 0 : w->refill - 1; /* quiet again: refilled */
    if (!w->left) {
        if (rate >= 0 && !quiet(p, rate)) w->probe = 0; /* it reads: the next quiet spell anew */
        return false;
    }
    if (rate < 0) return false; /* unknown this loop: the watch waits */
    double rise = RISE_FRACTION * w->before;
    if (rise < p->quiet_rate) rise = p->quiet_rate;
    if (rate > w->before + rise) {
        w->guard = w->from;
        w->hold = p->guard_loops;
        w->refill = p->guard_loops;
        w->probe = 0;
        w->left = 0;
        return true;
    }
    if (--w->left == 0) {
        uint64_t last = w->probe ? w->probe : p->chunk;
        w->probe = last * PROBE_GROWTH < p->step ? last * PROBE_GROWTH : p->step;
    }
    return false;
}

void bal_watch_limits(const struct bal_watch *w, const struct bal_params *p, struct bal_vm_in *in)
{
    in->guard = w->hold ? w->guard : 0;
    if (w->refill) in->rate = -1;
    in->watched = w->left > 0;
    in->shrink_max = quiet(p, in->rate) ? (w->probe ? w->probe : p->chunk) : 0;
}

void bal_watch_decided(struct bal_watch *w, const struct bal_params *p, const struct bal_vm_in *in,
                       uint64_t base, uint64_t out)
{
    if (out >= base || !quiet(p, in->rate) || !p->watch_loops) return;
    w->from = base;
    w->before = in->rate;
    w->left = p->watch_loops;
}
