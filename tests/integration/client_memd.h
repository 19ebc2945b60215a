/* SPDX-License-Identifier: BSD-3-Clause */
/* Helpers for the client core's integration programs (client_stress.c,
 * client_failover.c): start a real remoca-memd as a child process on
 * 127.0.0.1 (ephemeral port, or a given one for restarts), signal it, read its
 * RSS and its stats through the client.  Header-only; each program is built
 * on its own.
 *
 * Each server writes DIR/NAME.pid (--pid-file) and DIR/NAME.log, so the
 * calling test script can kill leftovers by pid from its trap.
 */
#ifndef CLIENT_MEMD_H
#define CLIENT_MEMD_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "remoca/client.h"

struct memd {
    pid_t pid;
    int port;
    char name[64];
    char dir[200];
    char bin[300];
    char memory[32];
    int threads;
    char secret[64]; /* non-empty: --secret */
};

static inline double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Servers started and not yet reaped, killed by die() so that a failing
 * program leaves nothing running (the test scripts' traps also kill them). */
static pid_t memd_children[8];

static inline void children_add(pid_t pid)
{
    for (unsigned i = 0; i < 8; i++)
        if (!memd_children[i]) {
            memd_children[i] = pid;
            return;
        }
}

static inline void children_del(pid_t pid)
{
    for (unsigned i = 0; i < 8; i++)
        if (memd_children[i] == pid) memd_children[i] = 0;
}

static inline void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static inline void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    for (unsigned i = 0; i < 8; i++) {
        if (memd_children[i] <= 0) continue;
        kill(memd_children[i], SIGCONT);
        kill(memd_children[i], SIGKILL);
        waitpid(memd_children[i], NULL, 0);
    }
    exit(1);
}

/* Starts (or restarts, with m->port set) a server; returns 0 or -1. */
static inline int memd_start(struct memd *m)
{
    char listen[64], port_file[300], pid_file[300], log_file[300], threads[16];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", m->port);
    snprintf(port_file, sizeof port_file, "%s/%s.port", m->dir, m->name);
    snprintf(pid_file, sizeof pid_file, "%s/%s.pid", m->dir, m->name);
    snprintf(log_file, sizeof log_file, "%s/%s.log", m->dir, m->name);
    snprintf(threads, sizeof threads, "%d", m->threads ? m->threads : 2);
    unlink(port_file);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (m->secret[0])
            execl(m->bin, m->bin, "--listen", listen, "--port-file", port_file, "--pid-file",
                  pid_file, "--memory", m->memory, "--threads", threads, "--secret", m->secret,
                  (char *)NULL);
        else
            execl(m->bin, m->bin, "--listen", listen, "--port-file", port_file, "--pid-file",
                  pid_file, "--memory", m->memory, "--threads", threads, (char *)NULL);
        _exit(127);
    }
    m->pid = pid;
    children_add(pid);
    double until = mono_ms() + 10000;
    while (mono_ms() < until) {
        FILE *f = fopen(port_file, "r");
        int port = 0;
        if (f) {
            if (fscanf(f, "%d", &port) != 1) port = 0;
            fclose(f);
        }
        if (port > 0) {
            m->port = port;
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            children_del(pid);
            m->pid = 0;
            return -1;
        }
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    children_del(pid);
    m->pid = 0;
    return -1;
}

/* Starts a 64 MiB, 2-thread server on an ephemeral port (m->port 0), or dies. */
static inline void memd_start_or_die(struct memd *m, const char *bin, const char *dir,
                                     const char *name)
{
    snprintf(m->bin, sizeof m->bin, "%s", bin);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->memory, sizeof m->memory, "64M");
    m->threads = 2;
    m->port = 0;
    if (memd_start(m) < 0) die("cannot start %s (see %s/%s.log)", bin, dir, name);
}

/* Restarts on the same port (retrying while the port is still busy). */
static inline void memd_restart(struct memd *m)
{
    for (int i = 0; i < 50; i++) {
        if (memd_start(m) == 0) return;
        usleep(100000);
    }
    die("cannot restart remoca-memd on port %d (see %s/%s.log)", m->port, m->dir, m->name);
}

static inline void memd_kill(struct memd *m, int sig)
{
    if (m->pid <= 0) return;
    kill(m->pid, sig);
    if (sig == SIGKILL || sig == SIGTERM) {
        bool reaped = false;
        if (sig == SIGTERM) {
            double until = mono_ms() + 5000;
            while (mono_ms() < until && !reaped) {
                reaped = waitpid(m->pid, NULL, WNOHANG) == m->pid;
                if (!reaped) usleep(10000);
            }
            if (!reaped) kill(m->pid, SIGKILL);
        }
        if (!reaped) waitpid(m->pid, NULL, 0);
        children_del(m->pid);
        m->pid = 0;
    }
}

/* VmRSS of the server, in bytes (0 if unknown). */
static inline uint64_t memd_rss(const struct memd *m)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)m->pid);
    FILE *f = fopen(path, "r");
    uint64_t kb = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %llu kB", (unsigned long long *)&kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

/* Reads KEY=VALUE from a stats text line starting with `prefix` ("server" or
 * "pool name=NAME"); returns -1 if absent. */
static inline long long stats_value(const char *text, const char *prefix, const char *key)
{
    size_t plen = strlen(prefix);
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        if (strncmp(line, prefix, plen) == 0 && (line[plen] == ' ' || line[plen] == '\n')) {
            char pat[64];
            snprintf(pat, sizeof pat, " %s=", key);
            const char *p = strstr(line, pat);
            if (p && (!eol || p < eol)) return atoll(p + strlen(pat));
            return -1;
        }
        line = eol ? eol + 1 : NULL;
    }
    return -1;
}

static inline long long server_stat(struct remoca_client *c, unsigned server, const char *prefix,
                                    const char *key)
{
    char *text = NULL;
    if (remoca_server_stats(c, server, false, &text) < 0) return -1;
    long long v = stats_value(text, prefix, key);
    free(text);
    return v;
}

static inline struct remoca_client *client_open_secret(const char *servers, const char *pool,
                                                       unsigned timeout_ms, const char *secret)
{
    char err[256];
    struct remoca_client_opts o = {.servers = servers,
                                   .pool = pool,
                                   .name = "client-test",
                                   .timeout_ms = timeout_ms,
                                   .secret = secret};
    struct remoca_client *c = remoca_client_new(&o, err, sizeof err);
    if (!c) die("remoca_client_new(%s): %s", servers, err);
    return c;
}

static inline struct remoca_client *client_open(const char *servers, const char *pool,
                                                unsigned timeout_ms)
{
    char err[256];
    struct remoca_client_opts o = {
        .servers = servers, .pool = pool, .name = "client-test", .timeout_ms = timeout_ms};
    struct remoca_client *c = remoca_client_new(&o, err, sizeof err);
    if (!c) die("remoca_client_new(%s): %s", servers, err);
    return c;
}

/* Page contents: a function of (pool, key, version), checkable anywhere. */
static inline void page_fill(uint8_t *p, unsigned pool, uint64_t key, uint32_t version)
{
    uint64_t *w = (uint64_t *)p;
    uint64_t seed =
        (key * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)pool << 56) ^ ((uint64_t)version << 24);
    for (unsigned i = 0; i < REMOCA_PAGE_SIZE / 8; i++) w[i] = seed ^ (i * 0xff51afd7ed558ccdull);
}

static inline bool page_check(const uint8_t *p, unsigned pool, uint64_t key, uint32_t version)
{
    const uint64_t *w = (const uint64_t *)p;
    uint64_t seed =
        (key * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)pool << 56) ^ ((uint64_t)version << 24);
    for (unsigned i = 0; i < REMOCA_PAGE_SIZE / 8; i++)
        if (w[i] != (seed ^ (i * 0xff51afd7ed558ccdull))) return false;
    return true;
}

#endif
