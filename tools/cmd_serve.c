/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca serve: export a disk through REMOCA with sane defaults.
 *
 *   remoca serve DISK [--memory SIZE] [--servers LIST] [--socket PATH | --port N]
 *                     [--pool NAME] [--write invalidate|update] [--stats FILE]
 *                     [--seal auto|on|off] [--key-file FILE]
 *                     [--vhost [--mode exclusive|inclusive|off] [--queues N]]
 *
 *   ┌──────────── remoca serve (this process: supervisor) ───────────┐
 *   │  fork+exec                     fork+exec                        │
 *   │  remoca-memd --unix RUN/memd.sock --shm (only without --servers)│
 *   │  nbdkit -f --filter=nbdkit-remoca-filter.so file DISK           │
 *   │         remoca-servers=... [-U SOCKET]  -P RUN/nbdkit.pid       │
 *   │  or, with --vhost:                                              │
 *   │  remoca-vhost --socket SOCKET --disk DISK --servers ... --mode M│
 *   └─ waits for SIGINT/SIGTERM/SIGCHLD ──────────────────────────────┘
 *
 * The memory server is supervised (tools/supervise.c): when it dies it is
 * restarted on the same socket, with backoff, and the export stays up; its
 * clients reconnect by themselves and reset their pool, so the guest loses
 * hits, never data or a request (docs/design.md, contract 2).  Only the
 * export's own exit, or SIGINT/SIGTERM/SIGHUP, ends serve, which then stops
 * everything it started, by pid.
 *
 * Sibling binaries (remoca-memd, nbdkit-remoca-filter.so) are found next to
 * /proc/self/exe, so a build tree works without installation.  nbdkit is
 * taken from $NBDKIT or PATH.  RUN is a fresh mktemp directory, removed at
 * exit.  Readiness: memd's socket accepts a connection; nbdkit has written its
 * pid file (it does so once it listens); remoca-vhost has created its socket.
 * Then the NBD URI (or the vhost-user socket) and a ready-to-paste
 * QEMU command line are printed, and a line "remoca serve: ready".
 * Children get PR_SET_PDEATHSIG, so even a SIGKILLed supervisor leaves nothing.
 * The local memory server runs with --shm: it serves this nbdkit alone (one
 * trust domain), so the filter may map its page store and serve hits with
 * one-sided reads, no round trip (lib/wire/include/remoca/shm.h).
 *
 * Nothing is started before every option is known to be good: numbers and
 * sizes are parsed strictly here (--memory with remoca-memd's own parser), and
 * with --port the supervisor binds 127.0.0.1:N itself and hands the listening
 * socket to nbdkit by socket activation (LISTEN_FDS, nbdkit-service(1)).  So a
 * busy port is reported before anything runs, and --port 0 (any free port)
 * works: the URI printed names the port the kernel chose.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "remoca/size.h"
#include "supervise.h"

#define DEFAULT_MEMORY "256M"

struct serve {
    const char *disk, *memory, *servers, *socket, *pool, *write, *stats;
    const char *seal, *key_file; /* passed on: remoca-seal=, remoca-key=+ (--seal, --key-file) */
    bool vhost;                  /* --vhost: remoca-vhost instead of nbdkit */
    const char *mode, *queues;   /* remoca-vhost's --mode and --queues */
    const char *port_arg;        /* --port, NULL: not TCP */
    int port;                    /* its value; once bound, the port actually listened on */
    int listen_fd;               /* the bound TCP socket, -1 if none */
    char rundir[64];
    char exedir[PATH_MAX];
    struct sv_child memd; /* the local memory server (without --servers) */
    pid_t nbdkit;         /* the front end's process (nbdkit or remoca-vhost) */
};

static void usage(void)
{
    fprintf(stderr,
            "usage: remoca serve DISK [--memory SIZE] [--servers LIST] [--socket PATH | --port N]\n"
            "                         [--pool NAME] [--write invalidate|update] [--stats FILE]\n"
            "                         [--seal auto|on|off] [--key-file FILE]\n"
            "                         [--vhost [--mode exclusive|inclusive|off] [--queues N]]\n"
            "  Without --servers a local remoca-memd with --memory SIZE (default " DEFAULT_MEMORY
            ", at\n"
            "  least 1M; e.g. 512M, 2G) is started.  Without --socket or --port the export\n"
            "  is a unix socket in a temporary directory.  --port N exports on 127.0.0.1:N\n"
            "  (0 = any free port, printed in the NBD URI).  --vhost serves the disk with\n"
            "  remoca-vhost (vhost-user-blk, guest RAM must be shared memory) instead of\n"
            "  nbdkit: --mode (default exclusive) and --queues (default 1) are its options.\n"
            "  The local memory server is supervised: if it dies it is restarted (after\n"
            "  0.1 s, doubling to 5 s while it keeps dying) on the same socket, and the\n"
            "  export stays up; the guest loses cache hits meanwhile, never data.\n"
            "  --seal: pages encrypted and authenticated before they leave this host (auto,\n"
            "  the default: on when a --servers entry is over TCP); --key-file: its secret\n"
            "  (32..4096 bytes, mode 600; default a random key per process).\n"
            "  Runs until Ctrl-C or SIGTERM, or until the export (nbdkit, remoca-vhost)\n"
            "  exits; then stops everything it started.\n");
}

/* The QEMU line offers -enable-kvm only where KVM can be used (open(2) of
 * /dev/kvm read-write is what QEMU does first); elsewhere QEMU runs the guest
 * under TCG, and a note says why. */
static const char *kvm_option(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        printf("note:    /dev/kvm: %s: the QEMU line below has no -enable-kvm (TCG, slow)\n",
               strerror(errno));
        return "";
    }
    close(fd);
    return "-enable-kvm ";
}

static bool pidfile_written(void *path)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

static void remove_rundir(struct serve *s)
{
    const char *names[] = {"memd.sock",  "nbd.sock",  "nbdkit.pid",
                           "vhost.sock", "stats.txt", "stats.txt.tmp"};
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", s->rundir, names[i]);
        unlink(p);
    }
    rmdir(s->rundir);
}

/* --port: 0..65535, all digits. */
static int parse_port(const char *arg, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (!isdigit((unsigned char)arg[0]) || *end || errno || v > 65535) {
        fprintf(stderr,
                "remoca serve: --port '%s': expected a number from 0 (any free port) "
                "to 65535\n",
                arg);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* --memory: what remoca-memd --memory accepts (lib/wire/include/remoca/size.h).  Checked here
 * so that a bad value starts nothing. */
static int check_memory(const char *arg)
{
    uint64_t bytes;
    if (parse_size(arg, &bytes) < 0 || bytes < MEMD_MEMORY_MIN || memd_memory_too_big(bytes)) {
        fprintf(stderr,
                "remoca serve: --memory '%s': expected a size from 1M to 15T such as "
                "64M, 512M or 2G\n",
                arg);
        return -1;
    }
    return 0;
}

static int parse_args(struct serve *s, int argc, char **argv)
{
    const struct {
        const char *name, **value;
    } opts[] = {
        {"--memory", &s->memory}, {"--servers", &s->servers},   {"--socket", &s->socket},
        {"--port", &s->port_arg}, {"--pool", &s->pool},         {"--write", &s->write},
        {"--stats", &s->stats},   {"--mode", &s->mode},         {"--queues", &s->queues},
        {"--seal", &s->seal},     {"--key-file", &s->key_file},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            exit(0);
        }
        if (!strcmp(a, "--vhost")) {
            s->vhost = true;
            continue;
        }
        if (a[0] != '-') {
            if (s->disk) {
                fprintf(stderr, "remoca serve: one DISK only (got %s and %s)\n", s->disk, a);
                return -1;
            }
            s->disk = a;
            continue;
        }
        size_t o = 0;
        while (o < sizeof opts / sizeof opts[0] && strcmp(a, opts[o].name)) o++;
        if (o == sizeof opts / sizeof opts[0]) {
            fprintf(stderr, "remoca serve: unknown option %s\n", a);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "remoca serve: %s needs a value\n", a);
            return -1;
        }
        *opts[o].value = argv[++i];
    }
    if (s->memory && check_memory(s->memory) < 0) return -1;
    if (s->seal && strcmp(s->seal, "auto") && strcmp(s->seal, "on") && strcmp(s->seal, "off")) {
        fprintf(stderr, "remoca serve: --seal '%s': expected auto, on or off\n", s->seal);
        return -1;
    }
    if (s->key_file && access(s->key_file, R_OK) < 0) {
        fprintf(stderr, "remoca serve: --key-file %s: %s\n", s->key_file, strerror(errno));
        return -1;
    }
    if (s->port_arg && parse_port(s->port_arg, &s->port) < 0) return -1;
    if (!s->disk) {
        fprintf(stderr, "remoca serve: DISK is required\n");
        return -1;
    }
    if (s->socket && s->port_arg) {
        fprintf(stderr, "remoca serve: --socket and --port are exclusive\n");
        return -1;
    }
    if (!s->vhost && (s->mode || s->queues)) {
        fprintf(stderr, "remoca serve: --mode and --queues are remoca-vhost's: give --vhost\n");
        return -1;
    }
    if (s->vhost && (s->port_arg || s->write)) {
        fprintf(stderr, "remoca serve: --vhost serves a unix socket (no --port) and always "
                        "invalidates on write (no --write)\n");
        return -1;
    }
    if (s->mode && strcmp(s->mode, "exclusive") && strcmp(s->mode, "inclusive") &&
        strcmp(s->mode, "off")) {
        fprintf(stderr, "remoca serve: --mode '%s': expected exclusive, inclusive or off\n",
                s->mode);
        return -1;
    }
    if (s->queues) {
        char *end;
        long q = strtol(s->queues, &end, 10);
        if (!isdigit((unsigned char)s->queues[0]) || *end || q < 1 || q > 64) {
            fprintf(stderr, "remoca serve: --queues '%s': expected a number from 1 to 64\n",
                    s->queues);
            return -1;
        }
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

/* Binds and listens on 127.0.0.1:s->port (0: any free port) and sets
 * s->port to the port bound. */
static int listen_tcp(struct serve *s)
{
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)s->port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        fprintf(stderr, "remoca serve: cannot listen on 127.0.0.1:%d: %s\n", s->port,
                strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    s->listen_fd = fd;
    s->port = ntohs(sin.sin_port);
    return 0;
}

/* nbdkit with the filter over the file plugin; prints the NBD URI and the
 * QEMU drive line once it listens.  0, or -1 (reported). */
static int start_nbdkit(struct serve *s, const sigset_t *old, const char *servers_arg,
                        const char *sock, const char *pidfile, const char *stats)
{
    char filter_arg[PATH_MAX + 48], pool_arg[PATH_MAX], write_arg[64], stats_arg[PATH_MAX + 32],
        sarg[PATH_MAX + 48], seal_arg[64], key_arg[PATH_MAX + 16];
    const char *nbdkit_bin = getenv("NBDKIT") ? getenv("NBDKIT") : "nbdkit";
    snprintf(filter_arg, sizeof filter_arg, "--filter=%s/nbdkit-remoca-filter.so", s->exedir);
    snprintf(sarg, sizeof sarg, "remoca-servers=%s", servers_arg);
    snprintf(stats_arg, sizeof stats_arg, "remoca-statsfile=%s", stats);
    snprintf(write_arg, sizeof write_arg, "remoca-write=%s", s->write ? s->write : "invalidate");
    snprintf(pool_arg, sizeof pool_arg, "remoca-pool=%s", s->pool ? s->pool : "");
    snprintf(seal_arg, sizeof seal_arg, "remoca-seal=%s", s->seal ? s->seal : "auto");
    snprintf(key_arg, sizeof key_arg, "remoca-key=+%s", s->key_file ? s->key_file : "");
    char *nargv[24];
    int k = 0;
    nargv[k++] = (char *)nbdkit_bin;
    nargv[k++] = "-f";
    nargv[k++] = "--exit-with-parent";
    nargv[k++] = "-P";
    nargv[k++] = (char *)pidfile;
    if (sock) { /* else the TCP socket is passed by socket activation */
        nargv[k++] = "-U";
        nargv[k++] = (char *)sock;
    }
    nargv[k++] = filter_arg;
    nargv[k++] = "file";
    nargv[k++] = (char *)s->disk;
    nargv[k++] = sarg;
    nargv[k++] = stats_arg;
    nargv[k++] = write_arg;
    nargv[k++] = seal_arg;
    if (s->key_file) nargv[k++] = key_arg;
    if (s->pool) nargv[k++] = pool_arg;
    nargv[k] = NULL;
    s->nbdkit = sv_spawn(nargv, old, s->listen_fd);
    if (s->listen_fd >= 0) { /* nbdkit's now */
        close(s->listen_fd);
        s->listen_fd = -1;
    }
    if (s->nbdkit <= 0) return -1;
    if (!sv_wait_for(pidfile_written, (void *)pidfile, &s->nbdkit, 15)) {
        fprintf(stderr, "remoca serve: nbdkit did not start (see its messages above)\n");
        return -1;
    }

    char abs_sock[PATH_MAX];
    if (sock && !realpath(sock, abs_sock)) snprintf(abs_sock, sizeof abs_sock, "%s", sock);
    printf("remoca serve: exporting %s through REMOCA (remote memory: %s)\n", s->disk,
           s->servers ? s->servers : "local remoca-memd");
    if (sock)
        printf("NBD URI: nbd+unix:///?socket=%s\n", abs_sock);
    else
        printf("NBD URI: nbd://127.0.0.1:%d\n", s->port);
    const char *kvm = kvm_option();
    if (sock)
        printf("qemu:    qemu-system-x86_64 -m 1G %s-drive file=nbd:unix:%s,format=raw,if=virtio\n",
               kvm, abs_sock);
    else
        printf("qemu:    qemu-system-x86_64 -m 1G %s-drive file=nbd:127.0.0.1:%d,format=raw,"
               "if=virtio\n",
               kvm, s->port);
    return 0;
}

static bool socket_exists(void *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* remoca-vhost on a unix socket; prints the QEMU line (guest RAM in a shared
 * memfd, the socket with reconnect=1) once the socket exists.  (Not probed
 * by connecting: a connection is a VMM to remoca-vhost.)  0, or -1. */
static int start_vhost(struct serve *s, const sigset_t *old, const char *servers, const char *sock,
                       const char *stats)
{
    char bin[PATH_MAX + 32];
    snprintf(bin, sizeof bin, "%s/remoca-vhost", s->exedir);
    const char *mode = s->mode ? s->mode : "exclusive", *queues = s->queues ? s->queues : "1";
    char *vargv[24];
    int k = 0;
    vargv[k++] = bin;
    vargv[k++] = "--socket";
    vargv[k++] = (char *)sock;
    vargv[k++] = "--disk";
    vargv[k++] = (char *)s->disk;
    vargv[k++] = "--mode";
    vargv[k++] = (char *)mode;
    vargv[k++] = "--queues";
    vargv[k++] = (char *)queues;
    vargv[k++] = "--stats";
    vargv[k++] = (char *)stats;
    if (strcmp(mode, "off")) {
        vargv[k++] = "--servers";
        vargv[k++] = (char *)servers;
    }
    if (s->pool) {
        vargv[k++] = "--pool";
        vargv[k++] = (char *)s->pool;
    }
    if (s->seal) {
        vargv[k++] = "--seal";
        vargv[k++] = (char *)s->seal;
    }
    if (s->key_file) {
        vargv[k++] = "--key-file";
        vargv[k++] = (char *)s->key_file;
    }
    vargv[k] = NULL;
    unlink(sock);
    if ((s->nbdkit = sv_spawn(vargv, old, -1)) <= 0) return -1;
    if (!sv_wait_for(socket_exists, (void *)sock, &s->nbdkit, 15)) {
        fprintf(stderr, "remoca serve: remoca-vhost did not start (see its messages above)\n");
        return -1;
    }
    char abs_sock[PATH_MAX];
    if (!realpath(sock, abs_sock)) snprintf(abs_sock, sizeof abs_sock, "%s", sock);
    printf("remoca serve: serving %s through REMOCA (vhost-user-blk, mode %s; remote memory: "
           "%s)\n",
           s->disk, mode, s->servers ? s->servers : "local remoca-memd");
    printf("vhost-user socket: %s\n", abs_sock);
    const char *kvm = kvm_option();
    printf("qemu:    qemu-system-x86_64 -m 1G %s"
           "-object memory-backend-memfd,id=mem,size=1G,share=on -machine memory-backend=mem "
           "-chardev socket,id=vub0,path=%s,reconnect=1 "
           "-device vhost-user-blk-pci,chardev=vub0,num-queues=%s\n",
           kvm, abs_sock, queues);
    return 0;
}

static const char *front_name(const struct serve *s)
{
    return s->vhost ? "remoca-vhost" : "nbdkit";
}

/* The next signal of mask, or 0 after timeout_ms (-1: no timeout). */
static int wait_signal(const sigset_t *mask, long timeout_ms)
{
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000L};
    int sig = timeout_ms < 0 ? sigwaitinfo(mask, NULL) : sigtimedwait(mask, NULL, &ts);
    return sig < 0 ? 0 : sig;
}

/* Serves until a signal asks to stop (0) or the export exits (1); keeps the
 * local memory server running meanwhile. */
static int run(struct serve *s, const sigset_t *mask)
{
    for (;;) {
        int sig = wait_signal(mask, s->servers ? -1 : sv_wait_ms(&s->memd));
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            fprintf(stderr, "remoca serve: %s; stopping\n", strsignal(sig));
            return 0;
        }
        int status;
        pid_t pid = s->nbdkit;
        if (!sv_alive(&s->nbdkit, &status)) {
            char how[96];
            fprintf(stderr, "remoca serve: %s (pid %d) %s; stopping\n", front_name(s), (int)pid,
                    sv_describe(status, how, sizeof how));
            return 1;
        }
        if (!s->servers) sv_poll(&s->memd);
    }
}

int cmd_serve(int argc, char **argv)
{
    struct serve s = {.listen_fd = -1};
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

    char memd_bin[PATH_MAX + 32], filter[PATH_MAX + 32], vhost_bin[PATH_MAX + 32], memd_sock[128],
        nbd_sock[128], vhost_sock[PATH_MAX], pidfile[128], stats[PATH_MAX],
        servers_arg[PATH_MAX + 32];
    snprintf(memd_bin, sizeof memd_bin, "%s/remoca-memd", s.exedir);
    snprintf(filter, sizeof filter, "%s/nbdkit-remoca-filter.so", s.exedir);
    snprintf(vhost_bin, sizeof vhost_bin, "%s/remoca-vhost", s.exedir);
    const char *front = s.vhost ? vhost_bin : filter;
    if (access(front, R_OK) != 0) {
        fprintf(stderr, "remoca serve: %s not found (build it first)\n", front);
        return 1;
    }
    if (!s.servers && access(memd_bin, X_OK) != 0) {
        fprintf(stderr, "remoca serve: %s not found (build it, or give --servers)\n", memd_bin);
        return 1;
    }
    if (s.port_arg && listen_tcp(&s) < 0) return 1;
    strcpy(s.rundir, "/tmp/remoca-serve.XXXXXX");
    if (!mkdtemp(s.rundir)) {
        fprintf(stderr, "remoca serve: mkdtemp: %s\n", strerror(errno));
        if (s.listen_fd >= 0) close(s.listen_fd);
        return 1;
    }
    snprintf(memd_sock, sizeof memd_sock, "%s/memd.sock", s.rundir);
    snprintf(nbd_sock, sizeof nbd_sock, "%s/nbd.sock", s.rundir);
    snprintf(pidfile, sizeof pidfile, "%s/nbdkit.pid", s.rundir);
    if (s.socket)
        snprintf(vhost_sock, sizeof vhost_sock, "%s", s.socket);
    else
        snprintf(vhost_sock, sizeof vhost_sock, "%s/vhost.sock", s.rundir);
    if (s.stats)
        snprintf(stats, sizeof stats, "%s", s.stats);
    else
        snprintf(stats, sizeof stats, "%s/stats.txt", s.rundir);
    const char *sock = s.socket ? s.socket : s.port_arg ? NULL : nbd_sock;

    /* Signals are taken synchronously: blocked here, waited for below. */
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, &old);
    int rc = 1;

    char *margv[] = {memd_bin, "--unix",   memd_sock,
                     "--shm",  "--memory", (char *)(s.memory ? s.memory : DEFAULT_MEMORY),
                     NULL};
    s.memd = (struct sv_child){
        .name = "remoca-memd", .argv = margv, .ready_sock = memd_sock, .oldmask = &old};
    if (!s.servers) {
        if (sv_start(&s.memd) < 0) goto out;
        snprintf(servers_arg, sizeof servers_arg, "unix:%s", memd_sock);
    } else {
        snprintf(servers_arg, sizeof servers_arg, "%s", s.servers);
    }

    if (s.vhost) {
        if (start_vhost(&s, &old, servers_arg, vhost_sock, stats) < 0) goto out;
    } else {
        if (start_nbdkit(&s, &old, servers_arg, sock, pidfile, stats) < 0) goto out;
    }
    printf("stats:   %s\n", stats);
    printf("remoca serve: ready (Ctrl-C to stop)\n");
    fflush(stdout);
    rc = run(&s, &mask);
out:
    if (s.listen_fd >= 0) close(s.listen_fd);
    sv_stop(&s.nbdkit, front_name(&s));
    sv_stop(&s.memd.pid, s.memd.name);
    remove_rundir(&s);
    sigprocmask(SIG_SETMASK, &old, NULL);
    return rc;
}
