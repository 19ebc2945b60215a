/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca-balancer: guest RAM and remote cache shares for the VMs of one host.
 *
 *   remoca-balancer --host-budget SIZE --vm NAME,qmp=PATH,stats=PATH,floor=SIZE...
 *                   [--servers LIST] [--dry-run] [--once] ...   (config.c, --help)
 *
 *   start: options ─▶ every QMP socket and stats file there? (else exit 1)
 *          ─▶ each guest's -m and RAM now (QMP) ─▶ the servers' budgets
 *   loop, every --interval seconds:
 *     sample   stats files (curve, mrc_refs ─▶ reads/s since the last loop),
 *              QMP query-balloon (RAM now), memd stats (each pool's share now)
 *     watch    watch.c: a quiet VM's last shrink raised its reads? keep
 *              its size before (a guard); how much it may shrink now
 *     decide   policy.c: balloon targets and remote shares (hysteresis there)
 *     print    each VM's numbers, the verdict (always with --dry-run/--verbose)
 *     apply    QMP balloon for a changed target; POOL_OPEN with the new
 *              min = max = share / servers on each server (share.c); shrinks
 *              before grows, so the servers' minimums always fit
 *   SIGINT/SIGTERM end the loop (exit 0); --once ends it after one decision.
 *
 * A VM whose stats file, curve, read rate or QMP socket is missing in a loop
 * keeps its allocation and the decision line says why; only at start is a
 * missing socket or file an error. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config.h"
#include "curve.h"
#include "policy.h"
#include "qmp.h"
#include "remoca/client.h"
#include "remoca/wire.h"
#include "share.h"
#include "watch.h"

#define MIB (1ull << 20)
#define TIMEOUT_MS 3000
/* Quiet guests (watch.h): below QUIET_RATE blocks/s (64 KiB/s) a VM is quiet; a
 * shrink of it is watched for WATCH_S seconds (at least a loop: the balloon
 * inflates, the guest re-reads, its stats file is rewritten); a guard holds
 * for GUARD_S seconds, then the probes start again. */
#define QUIET_RATE 16.0
#define WATCH_S 3.0
#define GUARD_S 30.0

struct vm_state {
    const struct bal_vm_conf *conf;
    struct bal_stats st;
    bool stats_ok, qmp_ok;
    bool have_base; /* base_*: the sample the next read rate is measured from */
    double base_mtime;
    uint64_t base_refs;
    double rate;           /* reads/s, < 0 unknown */
    uint64_t ram, max_ram; /* MiB: RAM now (QMP), -m */
    uint64_t ceil;
    uint64_t remote; /* MiB held on the servers now */
    struct share_pool pool[BAL_MAX_SERVERS];
    bool managed;      /* its pool's parameters were set by this run */
    uint64_t sent_ram; /* last balloon target sent, MiB; 0: none */
    struct bal_watch watch;
    char note[600];
};

struct balancer {
    struct bal_conf conf;
    struct vm_state vm[BAL_MAX_VMS];
    struct bal_params params;
    struct bal_alloc prev;
    bool servers_ok;
    unsigned decisions;
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) { stop = sig; }

static double now_real(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The first reason of a loop stands: later ones only follow from it. */
__attribute__((format(printf, 2, 3))) static void note(struct vm_state *v, const char *fmt, ...)
{
    if (v->note[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->note, sizeof v->note, fmt, ap);
    va_end(ap);
}

/* The VM's RAM now over QMP (and, at start, its -m). */
static int query_vm(struct vm_state *v, bool first, char *err, size_t len)
{
    struct qmp *q = qmp_open(v->conf->qmp, TIMEOUT_MS, err, len);
    uint64_t actual, base;
    int rc = -1;
    if (q && qmp_balloon_actual(q, &actual, err, len) == 0 &&
        (!first || qmp_base_memory(q, &base, err, len) == 0)) {
        v->ram = (actual + MIB / 2) / MIB;
        if (first) v->max_ram = base / MIB;
        rc = 0;
    }
    if (rc < 0 && strstr(err, "DeviceNotActive"))
        snprintf(err + strlen(err), len - strlen(err), " (QEMU needs -device virtio-balloon-pci)");
    qmp_close(q);
    return rc;
}

/* The stats file: curve, and the read rate since the last sample that saw a rewrite. */
static void sample_stats(struct balancer *b, struct vm_state *v)
{
    if (bal_stats_read(v->conf->stats, &v->st) < 0) {
        v->stats_ok = false;
        v->rate = -1;
        v->have_base = false;
        snprintf(v->note, sizeof v->note, "stats file %s: %s", v->conf->stats, strerror(errno));
        return;
    }
    v->stats_ok = true;
    if (!v->st.has_curve) note(v, "%s", v->st.why);
    if (!v->st.has_refs) {
        v->rate = -1;
        v->have_base = false;
        return;
    }
    if (!v->have_base || v->st.mrc_refs < v->base_refs) {
        if (v->have_base)
            note(v, "%s", "mrc_refs went down (front end restarted)");
        else
            note(v, "%s", "measuring its read rate");
        v->rate = -1;
    } else if (v->st.mtime > v->base_mtime) {
        v->rate = (double)(v->st.mrc_refs - v->base_refs) / (v->st.mtime - v->base_mtime);
    } else {
        double age = now_real() - v->st.mtime, limit = 3 * b->conf.interval + 2;
        if (age > limit) { /* not rewritten: the front end is gone or stuck */
            note(v, "stats file not rewritten for %.0f s", age);
            v->rate = -1;
        }
        return; /* else: the rate of the last rewrite still stands */
    }
    v->have_base = true;
    v->base_mtime = v->st.mtime;
    v->base_refs = v->st.mrc_refs;
}

/* Each pool's share now; false if a server could not be read. */
static bool sample_servers(struct balancer *b, uint64_t *budget_mib, char *err, size_t len)
{
    const char *names[BAL_MAX_VMS];
    static struct share_pool seen[BAL_MAX_VMS][BAL_MAX_SERVERS]; /* 160 KiB: not on the stack */
    struct share_pool pools[BAL_MAX_VMS];
    uint64_t usable = UINT64_MAX, held[BAL_MAX_VMS] = {0};
    for (unsigned i = 0; i < b->conf.nvm; i++) names[i] = b->conf.vm[i].pool;
    for (unsigned s = 0; s < b->conf.nservers; s++) {
        struct share_server srv;
        if (share_read(b->conf.servers[s], b->conf.tenant, b->conf.secret, TIMEOUT_MS, names,
                       b->conf.nvm, &srv, pools, err, len) < 0)
            return false;
        uint64_t u = srv.budget > srv.others_min ? srv.budget - srv.others_min : 0;
        if (u < usable) usable = u;
        for (unsigned i = 0; i < b->conf.nvm; i++) {
            seen[i][s] = pools[i];
            held[i] += pools[i].bytes;
        }
    }
    for (unsigned i = 0; i < b->conf.nvm; i++) {
        memcpy(b->vm[i].pool, seen[i], b->conf.nservers * sizeof seen[i][0]);
        b->vm[i].remote = held[i] / MIB;
    }
    /* Keys spread evenly over the servers: a share is share / N on each. */
    if (budget_mib) *budget_mib = b->conf.nservers ? usable / MIB * b->conf.nservers : 0;
    return true;
}

static void sample(struct balancer *b)
{
    char err[512];
    for (unsigned i = 0; i < b->conf.nvm; i++) {
        struct vm_state *v = &b->vm[i];
        v->note[0] = 0;
        sample_stats(b, v);
        v->qmp_ok = query_vm(v, false, err, sizeof err) == 0;
        if (!v->qmp_ok) snprintf(v->note, sizeof v->note, "%s", err);
    }
    b->servers_ok = !b->conf.nservers || sample_servers(b, NULL, err, sizeof err);
    if (!b->servers_ok)
        fprintf(stderr, "remoca-balancer: %s (remote shares unchanged this loop)\n", err);
}

static const char *mode_name(enum bal_mode m)
{
    return m == BAL_EXCLUSIVE ? "exclusive" : "inclusive";
}

static void print_decision(const struct balancer *b, const struct bal_vm_in *in,
                           const uint64_t *base_ram, const uint64_t *base_rem,
                           const struct bal_result *r)
{
    const struct bal_alloc *o = &r->out, *g = &r->goal;
    uint64_t ram_now = 0, ram_out = 0, rem_now = 0, rem_out = 0;
    printf("decision %u: %s%s\n", b->decisions, r->why,
           b->conf.dry_run ? " (dry run: nothing applied)" : "");
    for (unsigned i = 0; i < b->conf.nvm; i++) {
        const struct vm_state *v = &b->vm[i];
        char rate[32] = "?", asked[48] = "", goal[32] = "", rgoal[32] = "";
        if (v->rate >= 0) snprintf(rate, sizeof rate, "%.1f", v->rate);
        if (base_ram[i] != in[i].ram)
            snprintf(asked, sizeof asked, " (asked %lluM)", (unsigned long long)base_ram[i]);
        if (g->ram[i] != o->ram[i])
            snprintf(goal, sizeof goal, " (goal %lluM)", (unsigned long long)g->ram[i]);
        if (g->remote[i] != o->remote[i])
            snprintf(rgoal, sizeof rgoal, " (goal %lluM)", (unsigned long long)g->remote[i]);
        printf("  vm %s: rate %s/s, ram %lluM%s -> %lluM%s (floor %lluM, ceil %lluM)",
               v->conf->name, rate, (unsigned long long)in[i].ram, asked,
               (unsigned long long)o->ram[i], goal, (unsigned long long)in[i].floor,
               (unsigned long long)in[i].ceil);
        if (b->conf.nservers)
            printf(", remote %lluM -> %lluM%s", (unsigned long long)base_rem[i],
                   (unsigned long long)o->remote[i], rgoal);
        printf(", disk reads %.1f/s -> %.1f/s, %s", r->vm_base[i], r->vm_out[i],
               mode_name(in[i].mode));
        if (r->kept[i])
            printf(", kept: %s", v->note[0] ? v->note : "no curve");
        else if (v->note[0])
            printf(", %s", v->note);
        putchar('\n');
        ram_now += base_ram[i];
        ram_out += o->ram[i];
        rem_now += base_rem[i];
        rem_out += o->remote[i];
    }
    printf("  total: disk reads %.1f/s -> %.1f/s (goal %.1f/s), ram %lluM -> %lluM of %lluM",
           r->reads_base, r->reads_out, r->reads_goal, (unsigned long long)ram_now,
           (unsigned long long)ram_out, (unsigned long long)b->params.host_budget);
    if (b->conf.nservers)
        printf(", remote %lluM -> %lluM of %lluM", (unsigned long long)rem_now,
               (unsigned long long)rem_out, (unsigned long long)b->params.remote_budget);
    putchar('\n');
}

static void apply_balloon(struct vm_state *v, uint64_t target)
{
    uint64_t last = v->sent_ram ? v->sent_ram : v->ram;
    if (!v->qmp_ok || target == last) return;
    char err[512];
    struct qmp *q = qmp_open(v->conf->qmp, TIMEOUT_MS, err, sizeof err);
    if (q && qmp_balloon_set(q, target * MIB, err, sizeof err) == 0) {
        printf("  vm %s: balloon %lluM: accepted (the guest has %lluM now)\n", v->conf->name,
               (unsigned long long)target, (unsigned long long)v->ram);
        v->sent_ram = target;
    } else {
        fprintf(stderr, "remoca-balancer: vm %s: balloon %lluM: %s\n", v->conf->name,
                (unsigned long long)target, err);
    }
    qmp_close(q);
}

/* One pass of pool updates: lowering (the servers' minimums must fit at every
 * moment, so those go first) or raising minimums. */
static void apply_shares(struct balancer *b, const uint64_t *share, const uint64_t *base,
                         bool lowering)
{
    unsigned n = b->conf.nservers;
    for (unsigned i = 0; i < b->conf.nvm; i++) {
        struct vm_state *v = &b->vm[i];
        if (!v->managed && share[i] == base[i]) continue; /* not ours to set yet */
        uint64_t per =
            (share[i] * MIB / n + REMOCA_PAGE_SIZE - 1) / REMOCA_PAGE_SIZE * REMOCA_PAGE_SIZE;
        uint64_t max = per ? per : REMOCA_PAGE_SIZE; /* max 0 would mean the whole server */
        for (unsigned s = 0; s < n; s++) {
            const struct share_pool *p = &v->pool[s];
            if (p->found && p->min_bytes == per && p->max_bytes == max) continue;
            if (lowering != (p->found && p->min_bytes > per)) continue;
            char err[512];
            if (remoca_pool_update_as(b->conf.servers[s], b->conf.tenant, b->conf.secret,
                                      v->conf->pool, per, max, 1, TIMEOUT_MS, err,
                                      sizeof err) == 0) {
                printf("  vm %s: pool %s on %s: min = max = %lluK (was %lluK / %lluK)\n",
                       v->conf->name, v->conf->pool, b->conf.servers[s],
                       (unsigned long long)per >> 10, (unsigned long long)p->min_bytes >> 10,
                       (unsigned long long)p->max_bytes >> 10);
                v->managed = true;
            } else {
                fprintf(stderr, "remoca-balancer: vm %s: %s\n", v->conf->name, err);
            }
        }
    }
}

/* One loop's decision; -1 when no allocation can keep the floors. */
static int decide(struct balancer *b)
{
    struct bal_vm_in in[BAL_MAX_VMS];
    uint64_t base_ram[BAL_MAX_VMS], base_rem[BAL_MAX_VMS];
    for (unsigned i = 0; i < b->conf.nvm; i++) {
        const struct vm_state *v = &b->vm[i];
        const struct bal_vm_conf *c = v->conf;
        bool usable = v->stats_ok && v->qmp_ok && v->st.has_curve;
        in[i] = (struct bal_vm_in){
            .name = c->name,
            .curve = usable ? &v->st.curve : NULL,
            .rate = v->rate,
            .ram = v->ram,
            .floor = c->floor,
            .ceil = v->ceil,
            .remote = v->remote,
            .remote_min = c->remote_min,
            .remote_max = c->remote_max ? c->remote_max : b->params.remote_budget,
            .mode = c->mode,
        };
        base_ram[i] = b->prev.valid ? b->prev.ram[i] : v->ram;
        base_rem[i] = b->prev.valid ? b->prev.remote[i] : v->remote;
    }
    for (unsigned i = 0; i < b->conf.nvm; i++) {
        struct vm_state *v = &b->vm[i];
        if (bal_watch_sample(&v->watch, &b->params, in[i].curve ? v->rate : -1))
            note(v, "its reads rose after a shrink from %lluM: keeps %lluM for %.0f s",
                 (unsigned long long)v->watch.guard, (unsigned long long)v->watch.guard, GUARD_S);
        bal_watch_limits(&v->watch, &b->params, &in[i]);
        if (v->watch.refill) note(v, "%s", "refilling after an undone shrink: rate not counted");
    }
    struct bal_result r;
    b->decisions++;
    if (bal_decide(&b->params, in, b->conf.nvm, &b->prev, &r) < 0) {
        fprintf(stderr, "remoca-balancer: %s\n", r.why);
        return -1;
    }
    if (!b->servers_ok) { /* shares we could not see stay as they were */
        memcpy(r.out.remote, base_rem, sizeof base_rem);
        for (unsigned i = 0; i < b->conf.nvm; i++) r.goal.remote[i] = base_rem[i];
    }
    bool change = memcmp(r.out.ram, base_ram, b->conf.nvm * sizeof base_ram[0]) ||
                  memcmp(r.out.remote, base_rem, b->conf.nvm * sizeof base_rem[0]);
    if (b->conf.dry_run || b->conf.verbose || change) print_decision(b, in, base_ram, base_rem, &r);
    if (!b->conf.dry_run) {
        for (unsigned i = 0; i < b->conf.nvm; i++) apply_balloon(&b->vm[i], r.out.ram[i]);
        if (b->conf.nservers && b->servers_ok) {
            apply_shares(b, r.out.remote, base_rem, true);
            apply_shares(b, r.out.remote, base_rem, false);
        }
    }
    fflush(stdout);
    for (unsigned i = 0; i < b->conf.nvm; i++)
        bal_watch_decided(&b->vm[i].watch, &b->params, &in[i], base_ram[i], r.out.ram[i]);
    b->prev = r.out;
    return 0;
}

/* Loops of `interval` seconds that cover s seconds (at least 1). */
static unsigned loops_of(double s, double interval)
{
    unsigned n = (unsigned)(s / interval + 0.999);
    return n ? n : 1;
}

/* What must be there before the first loop: exit status 1 or 2 on failure, else 0. */
static int start(struct balancer *b)
{
    struct bal_conf *c = &b->conf;
    char err[512];
    for (unsigned i = 0; i < c->nvm; i++) {
        struct vm_state *v = &b->vm[i];
        struct stat st;
        v->conf = &c->vm[i];
        v->rate = -1;
        if (stat(v->conf->qmp, &st) < 0 || !S_ISSOCK(st.st_mode)) {
            fprintf(stderr,
                    "remoca-balancer: vm %s: QMP socket %s: %s (QEMU's -qmp "
                    "unix:PATH,server=on,wait=off)\n",
                    v->conf->name, v->conf->qmp,
                    S_ISSOCK(st.st_mode) || errno ? strerror(errno) : "not a socket");
            return 1;
        }
        if (stat(v->conf->stats, &st) < 0) {
            fprintf(stderr,
                    "remoca-balancer: vm %s: stats file %s: %s (its front end writes it: "
                    "remoca-vhost --stats, or the NBD filter's remoca-statsfile=)\n",
                    v->conf->name, v->conf->stats, strerror(errno));
            return 1;
        }
        if (query_vm(v, true, err, sizeof err) < 0) {
            fprintf(stderr, "remoca-balancer: vm %s: %s\n", v->conf->name, err);
            return 1;
        }
        v->ceil = v->conf->ceil ? v->conf->ceil : v->max_ram;
        if (v->ceil > v->max_ram || v->conf->floor > v->max_ram) {
            fprintf(stderr,
                    "remoca-balancer: vm %s: %s=%lluM is above the guest's -m %lluM "
                    "(the balloon cannot give it more)\n",
                    v->conf->name, v->ceil > v->max_ram ? "ceil" : "floor",
                    (unsigned long long)(v->ceil > v->max_ram ? v->ceil : v->conf->floor),
                    (unsigned long long)v->max_ram);
            return 2;
        }
    }
    b->params = (struct bal_params){.host_budget = c->host_budget,
                                    .chunk = c->chunk,
                                    .step = c->step,
                                    .threshold = c->threshold,
                                    .quiet_rate = QUIET_RATE,
                                    .watch_loops = loops_of(WATCH_S, c->interval),
                                    .guard_loops = loops_of(GUARD_S, c->interval)};
    if (c->nservers) {
        uint64_t can;
        if (!sample_servers(b, &can, err, sizeof err)) {
            fprintf(stderr, "remoca-balancer: %s\n", err);
            return 1;
        }
        if (c->remote_budget > can) {
            fprintf(stderr,
                    "remoca-balancer: --remote-budget %lluM is more than the servers can give "
                    "(%lluM: %u x the smallest server's memory less other pools' minimums)\n",
                    (unsigned long long)c->remote_budget, (unsigned long long)can, c->nservers);
            return 2;
        }
        b->params.remote_budget = c->remote_budget ? c->remote_budget : can;
        uint64_t mins = 0;
        for (unsigned i = 0; i < c->nvm; i++) mins += c->vm[i].remote_min;
        if (mins > b->params.remote_budget) {
            fprintf(stderr,
                    "remoca-balancer: the VMs' remote-min together (%lluM) exceed "
                    "the remote budget (%lluM)\n",
                    (unsigned long long)mins, (unsigned long long)b->params.remote_budget);
            return 2;
        }
    }
    uint64_t ram = 0;
    for (unsigned i = 0; i < c->nvm; i++) ram += b->vm[i].ram;
    printf("remoca-balancer: %u VMs, guest RAM %lluM of a host budget of %lluM", c->nvm,
           (unsigned long long)ram, (unsigned long long)c->host_budget);
    if (c->nservers)
        printf(", remote budget %lluM on %u servers", (unsigned long long)b->params.remote_budget,
               c->nservers);
    printf("%s; measuring read rates for %gs\n", c->dry_run ? " (dry run)" : "", c->interval);
    fflush(stdout);
    for (unsigned i = 0; i < c->nvm; i++) sample_stats(b, &b->vm[i]);
    return 0;
}

static void sleep_interval(double s)
{
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (!stop && nanosleep(&t, &t) < 0 && errno == EINTR) {
    }
}

int main(int argc, char **argv)
{
    static struct balancer b; /* large: VM states with their curves */
    int rc = bal_conf_parse(&b.conf, argc, argv);
    if (rc) {
        bal_conf_free(&b.conf);
        return rc > 0 ? 0 : 2;
    }
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: sleeps end */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = start(&b);
    while (rc == 0 && !stop) {
        sleep_interval(b.conf.interval);
        if (stop) break;
        sample(&b);
        if (decide(&b) < 0) rc = 2;
        if (b.conf.once) break;
    }
    bal_conf_free(&b.conf);
    return rc;
}
