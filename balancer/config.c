/* SPDX-License-Identifier: BSD-3-Clause */
/* Options and the config file (balancer/config.h).  One function sets one
 * key from either, so a key means the same in both. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "remoca/hostport.h"
#include "remoca/size.h"

#define MIB (1ull << 20)

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: remoca-balancer --host-budget SIZE --vm SPEC... [options]\n"
        "       remoca-balancer --config FILE [options]\n"
        "Moves guest RAM (QMP balloon) and remote cache shares (memd pool min/max) between\n"
        "the VMs of this host to minimise their expected disk reads (docs/balancer.md).\n"
        "  --vm NAME,qmp=PATH,stats=PATH,floor=SIZE[,ceil=SIZE][,pool=NAME][,mode=MODE]\n"
        "       [,remote-min=SIZE][,remote-max=SIZE]\n"
        "                       a VM: its QMP socket (-qmp unix:PATH,server=on,wait=off and\n"
        "                       -device virtio-balloon-pci), its front end's stats file,\n"
        "                       the least RAM it may have (never less: an OOM loses the VM),\n"
        "                       the most (default its -m), its pool on the servers\n"
        "  --host-budget SIZE   guest RAM of all the VMs together (required)\n"
        "  --servers LIST       memory servers of the pools, host:port or unix:PATH, comma list\n"
        "  --remote-budget SIZE remote shares together (default: what the servers can give)\n"
        "  --secret-file FILE   the servers' shared secret (first line)\n"
        "  --tenant NAME        as tenant NAME of servers run with --tenants (its secret\n"
        "                       with --secret-file)\n"
        "  --mode MODE          inclusive or exclusive: how the front ends cache, for VMs\n"
        "                       without mode= (default inclusive)\n"
        "  --chunk SIZE         allocation unit (default 16M)\n"
        "  --step SIZE          most a VM's RAM or share moves per loop (default 128M)\n"
        "  --threshold PCT      move only to save more than PCT %% of the expected disk\n"
        "                       reads (default 5)\n"
        "  --interval SECONDS   between loops (default 5); read rates are measured over it\n"
        "  --once               decide once (after one interval of measuring) and exit\n"
        "  --dry-run            print every decision and the numbers behind it; change nothing\n"
        "  --verbose            print every decision (default: only those that change something)\n"
        "  --config FILE        options from FILE: one per line, 'KEY VALUE' as the flags\n"
        "                       without '--', and 'vm NAME key=value...'; later flags override\n"
        "  --help               this text\n"
        "SIZE: a number with K, M, G or T (powers of 1024), in whole MiB.\n"
        "Exit status: 0 done (or stopped by SIGINT/SIGTERM), 1 a VM or server cannot be\n"
        "reached at start, 2 a usage or config error.\n");
}

__attribute__((format(printf, 2, 3))) static int fail(const char *where, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "remoca-balancer: %s: ", where);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

/* SIZE in whole MiB; zero only if allowed. */
static int parse_mib(const char *where, const char *v, bool zero_ok, uint64_t *out)
{
    uint64_t b;
    if (parse_size(v, &b) < 0)
        return fail(where, "'%s' is not a size (a number with K, M, G or T)", v);
    if (b % MIB) return fail(where, "'%s' is not a whole number of MiB", v);
    if (!b && !zero_ok) return fail(where, "must be more than 0");
    *out = b / MIB;
    return 0;
}

static int parse_mode(const char *where, const char *v, enum bal_mode *m)
{
    if (!strcmp(v, "inclusive"))
        *m = BAL_INCLUSIVE;
    else if (!strcmp(v, "exclusive"))
        *m = BAL_EXCLUSIVE;
    else
        return fail(where, "'%s': expected inclusive or exclusive", v);
    return 0;
}

static int parse_double(const char *where, const char *v, double lo, double hi, const char *unit,
                        double *out)
{
    char *e;
    errno = 0;
    double d = strtod(v, &e);
    if (*e == '%' && !strcmp(unit, "%")) e++;
    if (errno || e == v || *e || !(d >= lo && d <= hi))
        return fail(where, "'%s': expected a number from %g to %g%s", v, lo, hi, unit);
    *out = d;
    return 0;
}

static int set_servers(struct bal_conf *c, const char *where, const char *v)
{
    for (unsigned i = 0; i < c->nservers; i++) free(c->servers[i]);
    c->nservers = 0;
    const char *p = v;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 0) return fail(where, "empty entry in '%s'", v);
        if (c->nservers == BAL_MAX_SERVERS)
            return fail(where, "more than %d servers", BAL_MAX_SERVERS);
        char *s = strndup(p, n);
        if (!s) return fail(where, "out of memory");
        c->servers[c->nservers++] = s;
        struct remoca_hostport hp;
        char why[128];
        if (strncmp(s, "unix:", 5) && remoca_hostport_parse(s, 1, &hp, why, sizeof why) < 0)
            return fail(where, "'%s': %s (expected host:port or unix:PATH)", s, why);
        if (!strncmp(s, "unix:", 5) && !s[5]) return fail(where, "'%s': no path", s);
        p += n;
        if (*p) p++;
    }
    if (!c->nservers) return fail(where, "no server in '%s'", v);
    return 0;
}

static int read_secret(struct bal_conf *c, const char *where, const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    if (!f || !fgets(line, sizeof line, f)) {
        int e = errno;
        if (f) fclose(f);
        return fail(where, "%s: %s", path, f ? "empty" : strerror(e));
    }
    fclose(f);
    line[strcspn(line, "\r\n")] = 0;
    free(c->secret);
    if (!(c->secret = strdup(line))) return fail(where, "out of memory");
    return 0;
}

/* One key=value of a VM. */
static int vm_key(struct bal_vm_conf *v, const char *where, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) return fail(where, "'%s': expected key=value", kv);
    size_t kl = (size_t)(eq - kv);
    const char *val = eq + 1;
    char w[256];
    snprintf(w, sizeof w, "%s: vm %s: %.*s", where, v->name, (int)kl, kv);
#define KEY(k) (kl == sizeof(k) - 1 && !strncmp(kv, k, kl))
    char **str = KEY("qmp") ? &v->qmp : KEY("stats") ? &v->stats : KEY("pool") ? &v->pool : NULL;
    if (str) {
        if (!*val) return fail(w, "empty");
        free(*str);
        if (!(*str = strdup(val))) return fail(w, "out of memory");
        if (KEY("pool") && strlen(val) > REMOCA_MAX_NAME)
            return fail(w, "longer than %u bytes", REMOCA_MAX_NAME);
        return 0;
    }
    if (KEY("floor")) return parse_mib(w, val, false, &v->floor);
    if (KEY("ceil")) return parse_mib(w, val, false, &v->ceil);
    if (KEY("remote-min")) return parse_mib(w, val, true, &v->remote_min);
    if (KEY("remote-max")) return parse_mib(w, val, false, &v->remote_max);
    if (KEY("mode")) {
        v->mode_set = true;
        return parse_mode(w, val, &v->mode);
    }
#undef KEY
    return fail(w, "unknown key (qmp, stats, floor, ceil, pool, mode, remote-min, remote-max)");
}

/* A VM: NAME then key=value items, separated by any of seps. */
static int add_vm(struct bal_conf *c, const char *where, const char *spec, const char *seps)
{
    if (c->nvm == BAL_MAX_VMS) return fail(where, "more than %d VMs", BAL_MAX_VMS);
    char *dup = strdup(spec), *save = NULL;
    if (!dup) return fail(where, "out of memory");
    struct bal_vm_conf *v = &c->vm[c->nvm];
    memset(v, 0, sizeof *v);
    c->nvm++; /* freed with the rest, whatever happens */
    int rc = 0;
    char *name = strtok_r(dup, seps, &save);
    if (!name || strchr(name, '=')) {
        rc = fail(where, "'%s': expected NAME then key=value items", spec);
    } else if (strlen(name) >= BAL_NAME_MAX) {
        rc = fail(where, "VM name '%s' longer than %d bytes", name, BAL_NAME_MAX - 1);
    } else {
        snprintf(v->name, sizeof v->name, "%s", name);
        for (unsigned i = 0; i + 1 < c->nvm; i++)
            if (!strcmp(c->vm[i].name, name)) rc = fail(where, "VM '%s' named twice", name);
        for (char *kv; !rc && (kv = strtok_r(NULL, seps, &save));) rc = vm_key(v, where, kv);
    }
    free(dup);
    return rc;
}

static int load_file(struct bal_conf *c, const char *path, int depth);

/* One option by its long name, from a flag or a config line. */
static int set_key(struct bal_conf *c, const char *where, const char *key, const char *v, int depth)
{
    if (!strcmp(key, "host-budget")) return parse_mib(where, v, false, &c->host_budget);
    if (!strcmp(key, "remote-budget")) return parse_mib(where, v, false, &c->remote_budget);
    if (!strcmp(key, "chunk")) return parse_mib(where, v, false, &c->chunk);
    if (!strcmp(key, "step")) return parse_mib(where, v, false, &c->step);
    if (!strcmp(key, "servers")) return set_servers(c, where, v);
    if (!strcmp(key, "secret-file")) return read_secret(c, where, v);
    if (!strcmp(key, "tenant")) {
        if (!*v || strlen(v) > REMOCA_MAX_NAME)
            return fail(where, "tenant: 1..%u bytes", REMOCA_MAX_NAME);
        free(c->tenant);
        if (!(c->tenant = strdup(v))) return fail(where, "out of memory");
        return 0;
    }
    if (!strcmp(key, "mode")) return parse_mode(where, v, &c->mode);
    if (!strcmp(key, "vm")) return add_vm(c, where, v, depth < 0 ? "," : " \t");
    if (!strcmp(key, "config")) return load_file(c, v, depth < 0 ? 0 : depth + 1);
    if (!strcmp(key, "threshold")) {
        if (parse_double(where, v, 0, 100, "%", &c->threshold) < 0) return -1;
        c->threshold /= 100;
        return 0;
    }
    if (!strcmp(key, "interval"))
        return parse_double(where, v, 0.2, 86400, " seconds", &c->interval);
    return fail(where, "unknown option");
}

static int set_flag(struct bal_conf *c, const char *key)
{
    if (!strcmp(key, "once"))
        c->once = true;
    else if (!strcmp(key, "dry-run"))
        c->dry_run = true;
    else if (!strcmp(key, "verbose"))
        c->verbose = true;
    else
        return 1;
    return 0;
}

/* depth: nesting of config files (a file may name another, up to 4 deep). */
static int load_file(struct bal_conf *c, const char *path, int depth)
{
    if (depth > 4) return fail(path, "config files nested more than 4 deep");
    FILE *f = fopen(path, "r");
    if (!f) return fail("--config", "%s: %s", path, strerror(errno));
    char line[4096], where[512];
    int rc = 0;
    for (unsigned no = 1; rc == 0 && fgets(line, sizeof line, f); no++) {
        snprintf(where, sizeof where, "%s:%u", path, no);
        if (!strchr(line, '\n') && !feof(f)) {
            rc = fail(where, "line longer than %zu bytes", sizeof line - 2);
            break;
        }
        char *p = line, *hash = strchr(line, '#');
        if (hash) *hash = 0;
        while (isspace((unsigned char)*p)) p++;
        size_t n = strlen(p);
        while (n && isspace((unsigned char)p[n - 1])) p[--n] = 0;
        if (!*p) continue;
        char *key = p;
        p += strcspn(p, " \t");
        if (*p) *p++ = 0;
        while (isspace((unsigned char)*p)) p++;
        char w[640];
        snprintf(w, sizeof w, "%s: %s", where, key);
        if (!*p) {
            if (set_flag(c, key)) rc = fail(w, "expected '%s VALUE'", key);
        } else if (!strcmp(key, "vm")) {
            rc = set_key(c, where, key, p, depth);
        } else {
            rc = set_key(c, w, key, p, depth);
        }
    }
    fclose(f);
    return rc;
}

static int check(struct bal_conf *c)
{
    if (!c->nvm) return fail("--vm", "no VM named (--vm SPEC, or 'vm' lines in --config)");
    if (!c->host_budget) return fail("--host-budget", "required (the guest RAM of all VMs)");
    if (c->remote_budget && !c->nservers) return fail("--remote-budget", "needs --servers");
    uint64_t floors = 0;
    for (unsigned i = 0; i < c->nvm; i++) {
        struct bal_vm_conf *v = &c->vm[i];
        char w[128];
        snprintf(w, sizeof w, "vm %s", v->name);
        if (!v->qmp) return fail(w, "qmp=PATH is required (its -qmp unix socket)");
        if (!v->stats) return fail(w, "stats=PATH is required (its front end's stats file)");
        if (!v->floor) return fail(w, "floor=SIZE is required (the least RAM it can live with)");
        if (v->ceil && v->ceil < v->floor)
            return fail(w, "ceil=%lluM is below floor=%lluM", (unsigned long long)v->ceil,
                        (unsigned long long)v->floor);
        if (v->remote_max && v->remote_max < v->remote_min)
            return fail(w, "remote-max=%lluM is below remote-min=%lluM",
                        (unsigned long long)v->remote_max, (unsigned long long)v->remote_min);
        if (c->nservers && !v->pool)
            return fail(w, "pool=NAME is required with --servers (its front end's pool)");
        if (!c->nservers && (v->pool || v->remote_min || v->remote_max))
            return fail(w, "pool=, remote-min= and remote-max= need --servers");
        for (unsigned j = 0; j < i; j++)
            if (v->pool && c->vm[j].pool && !strcmp(v->pool, c->vm[j].pool))
                return fail(w, "pool '%s' is also vm %s's", v->pool, c->vm[j].name);
        if (!v->mode_set) v->mode = c->mode;
        floors += v->floor;
    }
    if (floors > c->host_budget)
        return fail("--host-budget", "%lluM is less than the VMs' floors together (%lluM)",
                    (unsigned long long)c->host_budget, (unsigned long long)floors);
    if (c->chunk > c->step)
        return fail("--chunk", "%lluM is more than --step %lluM", (unsigned long long)c->chunk,
                    (unsigned long long)c->step);
    return 0;
}

int bal_conf_parse(struct bal_conf *c, int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 0},
                                         {"host-budget", required_argument, NULL, 0},
                                         {"remote-budget", required_argument, NULL, 0},
                                         {"servers", required_argument, NULL, 0},
                                         {"secret-file", required_argument, NULL, 0},
                                         {"tenant", required_argument, NULL, 0},
                                         {"mode", required_argument, NULL, 0},
                                         {"chunk", required_argument, NULL, 0},
                                         {"step", required_argument, NULL, 0},
                                         {"threshold", required_argument, NULL, 0},
                                         {"interval", required_argument, NULL, 0},
                                         {"vm", required_argument, NULL, 0},
                                         {"once", no_argument, NULL, 0},
                                         {"dry-run", no_argument, NULL, 0},
                                         {"verbose", no_argument, NULL, 0},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    memset(c, 0, sizeof *c);
    c->chunk = 16;
    c->step = 128;
    c->threshold = 0.05;
    c->interval = 5;
    c->mode = BAL_INCLUSIVE;
    int ch, idx;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":", opts, &idx)) != -1) {
        if (ch == 'h') {
            usage(stdout);
            return 1;
        }
        if (ch != 0) {
            fprintf(stderr, "remoca-balancer: %s: %s (--help lists the options)\n",
                    argv[optind - 1], ch == ':' ? "needs a value" : "unknown option");
            return -1;
        }
        char where[80];
        snprintf(where, sizeof where, "--%s", opts[idx].name);
        if (opts[idx].has_arg == no_argument)
            set_flag(c, opts[idx].name);
        else if (set_key(c, where, opts[idx].name, optarg, -1) < 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr, "remoca-balancer: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return check(c);
}

void bal_conf_free(struct bal_conf *c)
{
    for (unsigned i = 0; i < c->nvm; i++) {
        free(c->vm[i].qmp);
        free(c->vm[i].stats);
        free(c->vm[i].pool);
    }
    for (unsigned i = 0; i < c->nservers; i++) free(c->servers[i]);
    free(c->secret);
    free(c->tenant);
}
