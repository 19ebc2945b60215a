/* remoca serve: export a disk through REMOCA with sane defaults.
 *
 *   remoca serve DISK [--memory SIZE] [--servers LIST] [--socket PATH | --port N]
 *                     [--pool NAME] [--write invalidate|update] [--stats FILE]
 *
 *   ┌──────────── remoca serve (this process: supervisor) ───────────┐
 *   │  fork+exec                     fork+exec                        │
 *   │  remoca-memd --unix RUN/memd.sock     (only without --servers)  │
 *   │  nbdkit -f --filter=nbdkit-remoca-filter.so file DISK           │
 *   │         remoca-servers=... -U SOCKET | -p PORT  -P RUN/nbdkit.pid│
 *   └─ waits for SIGINT/SIGTERM/SIGCHLD, then kills both by pid ──────┘
 *
 * Sibling binaries (remoca-memd, nbdkit-remoca-filter.so) are found next to
 * /proc/self/exe, so a build tree works without installation.  nbdkit is
 * taken from $NBDKIT or PATH.  RUN is a fresh mktemp directory, removed at
 * exit.  Readiness: memd's socket accepts a connection; nbdkit has written its
 * pid file (it does so once it listens).  Then the NBD URI and a ready-to-paste
 * QEMU command line are printed, and a line "remoca serve: ready".
 * Children get PR_SET_PDEATHSIG, so even a SIGKILLed supervisor leaves nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"

struct serve {
    const char *disk, *memory, *servers, *socket, *pool, *write, *stats;
    int port;
    char rundir[64];
    char exedir[PATH_MAX];
    pid_t memd, nbdkit;
};

static void usage(void)
{
    fprintf(stderr,
            "usage: remoca serve DISK [--memory SIZE] [--servers LIST] [--socket PATH | --port N]\n"
            "                         [--pool NAME] [--write invalidate|update] [--stats FILE]\n"
            "  Without --servers a local remoca-memd with --memory SIZE (default 256M) is\n"
            "  started.  Without --socket or --port the export is a unix socket in a\n"
            "  temporary directory.  Runs until Ctrl-C or SIGTERM, then stops everything.\n");
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static pid_t spawn(char *const argv[], const sigset_t *oldmask)
{
    pid_t p = fork();
    if (p == 0) {
        /* If the supervisor dies (even SIGKILL), the children follow it. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        sigprocmask(SIG_SETMASK, oldmask, NULL);
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

static bool unix_connects(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sun.sun_path) return false;
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool ok = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
    close(fd);
    return ok;
}

/* Child still running?  Reaps it if not. */
static bool alive(pid_t *pid)
{
    if (*pid <= 0) return false;
    if (waitpid(*pid, NULL, WNOHANG) == 0) return true;
    *pid = 0;
    return false;
}

static void stop(pid_t *pid, const char *what)
{
    if (*pid <= 0) return;
    kill(*pid, SIGTERM);
    for (double t0 = now(); now() - t0 < 5;) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return;
        }
        usleep(20000);
    }
    fprintf(stderr, "remoca serve: %s (pid %d) did not stop: SIGKILL\n", what, (int)*pid);
    kill(*pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

static void remove_rundir(struct serve *s)
{
    const char *names[] = {"memd.sock", "nbd.sock", "nbdkit.pid", "stats.txt", "stats.txt.tmp"};
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", s->rundir, names[i]);
        unlink(p);
    }
    rmdir(s->rundir);
}

static int parse_args(struct serve *s, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            exit(0);
        }
        if (!strcmp(a, "--memory")) dst = &s->memory;
        else if (!strcmp(a, "--servers")) dst = &s->servers;
        else if (!strcmp(a, "--socket")) dst = &s->socket;
        else if (!strcmp(a, "--pool")) dst = &s->pool;
        else if (!strcmp(a, "--write")) dst = &s->write;
        else if (!strcmp(a, "--stats")) dst = &s->stats;
        else if (!strcmp(a, "--port")) {
            if (i + 1 >= argc || (s->port = atoi(argv[i + 1])) <= 0 || s->port > 65535) {
                fprintf(stderr, "remoca serve: --port needs a number 1..65535\n");
                return -1;
            }
            i++;
            continue;
        } else if (a[0] == '-') {
            fprintf(stderr, "remoca serve: unknown option %s\n", a);
            return -1;
        } else if (!s->disk) {
            s->disk = a;
            continue;
        } else {
            fprintf(stderr, "remoca serve: one DISK only (got %s and %s)\n", s->disk, a);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "remoca serve: %s needs a value\n", a);
            return -1;
        }
        *dst = argv[++i];
    }
    if (!s->disk) {
        fprintf(stderr, "remoca serve: DISK is required\n");
        return -1;
    }
    if (s->socket && s->port) {
        fprintf(stderr, "remoca serve: --socket and --port are exclusive\n");
        return -1;
    }
    if (s->servers && s->memory) {
        fprintf(stderr, "remoca serve: --memory sizes the local server; not with --servers\n");
        return -1;
    }
    if (access(s->disk, R_OK) != 0) {
        fprintf(stderr, "remoca serve: %s: %s\n", s->disk, strerror(errno));
        return -1;
    }
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    struct serve s = {.memory = NULL};
    if (parse_args(&s, argc, argv) == -1) {
        usage();
        return 2;
    }
    ssize_t n = readlink("/proc/self/exe", s.exedir, sizeof s.exedir - 1);
    if (n <= 0) {
        fprintf(stderr, "remoca serve: /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    s.exedir[n] = 0;
    *strrchr(s.exedir, '/') = 0;

    char memd_bin[PATH_MAX + 32], filter[PATH_MAX + 32], memd_sock[128], nbd_sock[128],
        pidfile[128], stats[PATH_MAX], servers_arg[PATH_MAX + 32], filter_arg[PATH_MAX + 48],
        pool_arg[PATH_MAX], write_arg[64], stats_arg[PATH_MAX + 32], port_s[16];
    snprintf(memd_bin, sizeof memd_bin, "%s/remoca-memd", s.exedir);
    snprintf(filter, sizeof filter, "%s/nbdkit-remoca-filter.so", s.exedir);
    if (access(filter, R_OK) != 0) {
        fprintf(stderr, "remoca serve: %s not found (build it first)\n", filter);
        return 1;
    }
    if (!s.servers && access(memd_bin, X_OK) != 0) {
        fprintf(stderr, "remoca serve: %s not found (build it, or give --servers)\n", memd_bin);
        return 1;
    }
    strcpy(s.rundir, "/tmp/remoca-serve.XXXXXX");
    if (!mkdtemp(s.rundir)) {
        fprintf(stderr, "remoca serve: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    snprintf(memd_sock, sizeof memd_sock, "%s/memd.sock", s.rundir);
    snprintf(nbd_sock, sizeof nbd_sock, "%s/nbd.sock", s.rundir);
    snprintf(pidfile, sizeof pidfile, "%s/nbdkit.pid", s.rundir);
    if (s.stats) snprintf(stats, sizeof stats, "%s", s.stats);
    else snprintf(stats, sizeof stats, "%s/stats.txt", s.rundir);
    const char *sock = s.socket ? s.socket : s.port ? NULL : nbd_sock;

    /* Signals are taken synchronously: blocked here, waited for below. */
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, &old);
    int rc = 1;

    if (!s.servers) {
        char *margv[] = {memd_bin, "--unix", memd_sock, "--memory",
                         (char *)(s.memory ? s.memory : "256M"), NULL};
        if ((s.memd = spawn(margv, &old)) <= 0) goto out;
        double t0 = now();
        while (!unix_connects(memd_sock)) {
            if (!alive(&s.memd) || now() - t0 > 10) {
                fprintf(stderr, "remoca serve: remoca-memd did not start\n");
                goto out;
            }
            usleep(20000);
        }
        snprintf(servers_arg, sizeof servers_arg, "remoca-servers=unix:%s", memd_sock);
    } else {
        snprintf(servers_arg, sizeof servers_arg, "remoca-servers=%s", s.servers);
    }

    const char *nbdkit_bin = getenv("NBDKIT") ? getenv("NBDKIT") : "nbdkit";
    snprintf(filter_arg, sizeof filter_arg, "--filter=%s", filter);
    snprintf(stats_arg, sizeof stats_arg, "remoca-statsfile=%s", stats);
    snprintf(write_arg, sizeof write_arg, "remoca-write=%s", s.write ? s.write : "invalidate");
    snprintf(pool_arg, sizeof pool_arg, "remoca-pool=%s", s.pool ? s.pool : "");
    snprintf(port_s, sizeof port_s, "%d", s.port);
    char *nargv[24];
    int k = 0;
    nargv[k++] = (char *)nbdkit_bin;
    nargv[k++] = "-f";
    nargv[k++] = "--exit-with-parent";
    nargv[k++] = "-P";
    nargv[k++] = pidfile;
    if (sock) {
        nargv[k++] = "-U";
        nargv[k++] = (char *)sock;
    } else {
        nargv[k++] = "-i";
        nargv[k++] = "127.0.0.1";
        nargv[k++] = "-p";
        nargv[k++] = port_s;
    }
    nargv[k++] = filter_arg;
    nargv[k++] = "file";
    nargv[k++] = (char *)s.disk;
    nargv[k++] = servers_arg;
    nargv[k++] = stats_arg;
    nargv[k++] = write_arg;
    if (s.pool) nargv[k++] = pool_arg;
    nargv[k] = NULL;
    if ((s.nbdkit = spawn(nargv, &old)) <= 0) goto out;
    double t0 = now();
    struct stat stb;
    while (stat(pidfile, &stb) != 0 || stb.st_size == 0) {
        if (!alive(&s.nbdkit) || now() - t0 > 15) {
            fprintf(stderr, "remoca serve: nbdkit did not start (see its messages above)\n");
            goto out;
        }
        usleep(20000);
    }

    char abs_sock[PATH_MAX];
    if (sock && !realpath(sock, abs_sock)) snprintf(abs_sock, sizeof abs_sock, "%s", sock);
    printf("remoca serve: exporting %s through REMOCA (remote memory: %s)\n", s.disk,
           s.servers ? s.servers : "local remoca-memd");
    if (sock) {
        printf("NBD URI: nbd+unix:///?socket=%s\n", abs_sock);
        printf("qemu:    qemu-system-x86_64 -m 1G -enable-kvm "
               "-drive file=nbd:unix:%s,format=raw,if=virtio\n", abs_sock);
    } else {
        printf("NBD URI: nbd://127.0.0.1:%d\n", s.port);
        printf("qemu:    qemu-system-x86_64 -m 1G -enable-kvm "
               "-drive file=nbd:127.0.0.1:%d,format=raw,if=virtio\n", s.port);
    }
    printf("stats:   %s\n", stats);
    printf("remoca serve: ready (Ctrl-C to stop)\n");
    fflush(stdout);

    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&mask, &si);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            fprintf(stderr, "remoca serve: stopping\n");
            rc = 0;
            break;
        }
        if (sig == SIGCHLD && (!alive(&s.nbdkit) || (!s.servers && !alive(&s.memd)))) {
            fprintf(stderr, "remoca serve: %s exited; stopping\n",
                    s.nbdkit ? "remoca-memd" : "nbdkit");
            break;
        }
    }
out:
    stop(&s.nbdkit, "nbdkit");
    stop(&s.memd, "remoca-memd");
    remove_rundir(&s);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}
