/* SPDX-License-Identifier: BSD-3-Clause */
/* The children of remoca serve: spawn, reap, stop, and supervise one that
 * must keep running (supervise.h).
 *
 * Why remoca serve restarts its memory server instead of stopping: the
 * export (nbdkit with the filter, or remoca-vhost) does not need it to be
 * correct.  The client library turns a dead server's keys into misses,
 * reconnects in the background and resets its pool on every reconnect
 * (docs/design.md, contracts 2 and 4), so a guest only loses its hits until
 * the server is back on the same socket path.  Stopping the export instead
 * would fail the guest's I/O in flight. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervise.h"

#define LISTEN_FD 3 /* where socket activation passes the listening socket */

double sv_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* In the child, before exec: the listening socket as fd 3 and the variables
 * that say so (sd_listen_fds(3)). */
static void pass_listen_fd(int listen_fd)
{
    /* dup2 clears close-on-exec, but does nothing if the fd is already 3 */
    if (listen_fd == LISTEN_FD)
        fcntl(LISTEN_FD, F_SETFD, 0);
    else
        dup2(listen_fd, LISTEN_FD);
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_PID", pid, 1);
}

pid_t sv_spawn(char *const argv[], const sigset_t *oldmask, int listen_fd)
{
    pid_t p = fork();
    if (p == 0) {
        /* If the supervisor dies (even SIGKILL), the children follow it. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        sigprocmask(SIG_SETMASK, oldmask, NULL);
        if (listen_fd >= 0) pass_listen_fd(listen_fd);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull > 0) { /* servers read nothing from the terminal */
            dup2(devnull, 0);
            close(devnull);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "remoca serve: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (p < 0) fprintf(stderr, "remoca serve: fork: %s\n", strerror(errno));
    return p;
}

bool sv_alive(pid_t *pid, int *status)
{
    if (*pid <= 0) return false;
    int st = 0;
    if (waitpid(*pid, &st, WNOHANG) == 0) return true;
    if (status) *status = st;
    *pid = 0;
    return false;
}

const char *sv_describe(int status, char *buf, size_t len)
{
    if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, len, "ended (wait status %#x)", (unsigned)status);
    return buf;
}

bool sv_wait_for(bool (*ready)(void *), void *arg, pid_t *child, double timeout_s)
{
    for (double t0 = sv_now();; usleep(20000)) {
        if (ready(arg)) return true;
        if ((child && !sv_alive(child, NULL)) || sv_now() - t0 > timeout_s) return false;
    }
}

bool sv_unix_accepts(void *path_)
{
    const char *path = path_;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sun.sun_path) return false;
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool ok = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
    close(fd);
    return ok;
}

static bool exited(void *pid) { return !sv_alive(pid, NULL); }

void sv_stop(pid_t *pid, const char *what)
{
    if (*pid <= 0) return;
    kill(*pid, SIGTERM);
    if (sv_wait_for(exited, pid, NULL, 5)) return;
    fprintf(stderr, "remoca serve: %s (pid %d) did not stop: SIGKILL\n", what, (int)*pid);
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

/* ---- a supervised child --------------------------------------------------- */

static int launch(struct sv_child *c)
{
    c->up = false;
    c->started = sv_now();
    c->pid = sv_spawn(c->argv, c->oldmask, -1);
    if (c->pid > 0) return 0;
    c->pid = 0;
    return -1;
}

int sv_start(struct sv_child *c)
{
    c->backoff_ms = SV_BACKOFF_MIN_MS;
    c->restart_at = 0;
    c->restarts = 0;
    if (launch(c) < 0) return -1;
    if (!sv_wait_for(sv_unix_accepts, (void *)c->ready_sock, &c->pid, SV_READY_S)) {
        fprintf(stderr, "remoca serve: %s did not start\n", c->name);
        sv_stop(&c->pid, c->name);
        return -1;
    }
    c->up = true;
    fprintf(stderr, "remoca serve: %s started (pid %d), supervised: restarted if it dies\n",
            c->name, (int)c->pid);
    return 0;
}

/* The next restart, after the current backoff (which then doubles).  An
 * incarnation that stayed up SV_STABLE_S was healthy: back to the minimum. */
static unsigned schedule_restart(struct sv_child *c, double now)
{
    if (now - c->started >= SV_STABLE_S) c->backoff_ms = SV_BACKOFF_MIN_MS;
    unsigned delay = c->backoff_ms;
    c->restart_at = now + delay / 1000.0;
    c->backoff_ms = delay * 2 > SV_BACKOFF_MAX_MS ? SV_BACKOFF_MAX_MS : delay * 2;
    return delay;
}

static void died(struct sv_child *c, pid_t pid, int status)
{
    char how[96];
    unsigned delay = schedule_restart(c, sv_now());
    fprintf(stderr, "remoca serve: %s (pid %d) %s; restarting it in %u ms\n", c->name, (int)pid,
            sv_describe(status, how, sizeof how), delay);
}

static void restart(struct sv_child *c)
{
    c->restart_at = 0;
    c->restarts++;
    if (launch(c) < 0) {
        unsigned delay = schedule_restart(c, sv_now());
        fprintf(stderr, "remoca serve: cannot restart %s; trying again in %u ms\n", c->name, delay);
        return;
    }
    fprintf(stderr, "remoca serve: %s restarted (pid %d, restart %u)\n", c->name, (int)c->pid,
            c->restarts);
}

/* A restarted child that never accepts is killed: its death then brings the
 * next restart, with a longer backoff. */
static void check_ready(struct sv_child *c)
{
    if (sv_unix_accepts((void *)c->ready_sock)) {
        c->up = true;
        fprintf(stderr, "remoca serve: %s (pid %d) accepts on %s again\n", c->name, (int)c->pid,
                c->ready_sock);
    } else if (sv_now() - c->started > SV_READY_S) {
        fprintf(stderr, "remoca serve: %s (pid %d) did not accept on %s within %.0f s: SIGKILL\n",
                c->name, (int)c->pid, c->ready_sock, SV_READY_S);
        kill(c->pid, SIGKILL);
    }
}

void sv_poll(struct sv_child *c)
{
    int status;
    pid_t pid = c->pid;
    if (pid > 0 && !sv_alive(&c->pid, &status)) died(c, pid, status);
    if (c->restart_at > 0 && sv_now() >= c->restart_at) restart(c);
    if (c->pid > 0 && !c->up) check_ready(c);
}

long sv_wait_ms(const struct sv_child *c)
{
    if (c->restart_at > 0) {
        double ms = (c->restart_at - sv_now()) * 1000.0;
        return ms < 1 ? 1 : (long)ms + 1;
    }
    if (c->pid > 0 && !c->up) return 20; /* polling for its socket */
    return -1;
}
