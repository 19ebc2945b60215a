/* SPDX-License-Identifier: BSD-3-Clause */
/* The children of remoca serve (tools/supervise.c): starting them, reaping
 * them, and keeping one of them (the local memory server) running.
 *
 * A supervised child is restarted whenever it dies, after a backoff that
 * starts at SV_BACKOFF_MIN_MS and doubles up to SV_BACKOFF_MAX_MS; the backoff
 * starts over once an incarnation has stayed up SV_STABLE_S.  Every death and
 * every restart is reported on stderr.  All of it runs in the supervisor's one
 * thread: sv_poll is called whenever the supervisor wakes (a signal, or the
 * timeout sv_wait_ms asks for). */
#ifndef REMOCA_TOOLS_SUPERVISE_H
#define REMOCA_TOOLS_SUPERVISE_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#define SV_BACKOFF_MIN_MS 100u
#define SV_BACKOFF_MAX_MS 5000u
#define SV_STABLE_S 10.0 /* up this long: a later death restarts at the minimum delay again */
#define SV_READY_S 10.0  /* a (re)started child must accept on its socket within this */

double sv_now(void); /* monotonic seconds */

/* Starts argv[0] (looked up in PATH) with the signal mask *oldmask, stdin on
 * /dev/null and PR_SET_PDEATHSIG.  listen_fd >= 0 is handed over by socket
 * activation (fd 3, LISTEN_FDS=1, LISTEN_PID).  The pid, or -1 (reported). */
pid_t sv_spawn(char *const argv[], const sigset_t *oldmask, int listen_fd);

/* Child *pid still running?  If not, reaps it, stores its wait status in
 * *status (if not NULL) and sets *pid to 0. */
bool sv_alive(pid_t *pid, int *status);

/* "exited with status 1", "killed by signal 9 (Killed)": a wait status in words. */
const char *sv_describe(int status, char *buf, size_t len);

/* Polls ready(arg) every 20 ms.  True once it holds; false after timeout_s,
 * or as soon as the child *child (if not NULL) has exited. */
bool sv_wait_for(bool (*ready)(void *), void *arg, pid_t *child, double timeout_s);

bool sv_unix_accepts(void *path); /* a unix socket at path accepts a connection */

/* SIGTERM, then SIGKILL after 5 s (saying so); reaps it.  *pid = 0. */
void sv_stop(pid_t *pid, const char *what);

/* A child kept running: restarted when it dies, ready once ready_sock accepts. */
struct sv_child {
    const char *name;        /* in messages, e.g. "remoca-memd" */
    char *const *argv;       /* what to run, again on each restart */
    const char *ready_sock;  /* unix socket: the child is up once it accepts */
    const sigset_t *oldmask; /* the signal mask the child starts with */
    pid_t pid;               /* 0: not running (dead, a restart pending) */
    bool up;                 /* ready_sock has accepted since pid started */
    double started;          /* when pid was started */
    double restart_at;       /* > 0: start again at this time */
    unsigned backoff_ms;     /* the delay before the next restart */
    unsigned restarts;       /* how many times it was restarted */
};

/* First start: runs the child and waits until it accepts.  0, or -1 if it
 * exited or did not accept within SV_READY_S (reported; nothing left running). */
int sv_start(struct sv_child *c);

/* Reaps the child if it died and schedules its restart; restarts it when
 * due; notices when a restarted child accepts.  Call on every wake-up. */
void sv_poll(struct sv_child *c);

/* How long the supervisor may sleep before sv_poll has work: -1 (until a
 * signal), or milliseconds. */
long sv_wait_ms(const struct sv_child *c);

#endif
