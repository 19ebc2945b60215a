/* SPDX-License-Identifier: BSD-3-Clause */
/* remoca-memd: the REMOCA memory server.
 *
 * main parses the command line (config.c), raises the open-file limit,
 * blocks SIGTERM/SIGINT (they are read from a signalfd by the acceptor),
 * creates the page store (store.c) and runs the network loop (net.c) until a
 * signal asks it to stop.  With --user, root is dropped after the sockets
 * are bound and the store allocated (privdrop.h).  Exit status: 0 after a clean shutdown, 1 on a
 * start-up failure, 2 on a command-line error. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "net.h"
#include "privdrop.h"
#include "store.h"

static void raise_nofile(unsigned max_conns)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            log_warn("cannot raise the open-file limit: %s", strerror(errno));
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)max_conns + 32)
        log_warn("open-file limit %llu is below --max-conns %u: some connections will fail",
                 (unsigned long long)rl.rlim_cur, max_conns);
}

int main(int argc, char **argv)
{
    struct memd_config cfg;
    int rc = config_parse(&cfg, argc, argv);
    if (rc != 0) return rc > 0 ? 0 : 2;
    memd_log_level = (enum log_level)cfg.log_level;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by the workers */
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(cfg.max_conns);
    struct privdrop user;
    if (cfg.user && privdrop_lookup(cfg.user, &user) < 0) return 1;
    if (!cfg.user && geteuid() == 0) { /* a warning where the network reaches it */
        if (cfg.listen)
            log_warn("running as root with a TCP listener: consider --user NAME");
        else
            log_info("running as root: consider --user NAME");
    }

    struct store store;
    if ((cfg.shm ? store_init_shm : store_init)(&store, cfg.memory, cfg.policy, cfg.max_pools) <
        0) {
        log_error("cannot allocate a %llu-byte page store%s: %s", (unsigned long long)cfg.memory,
                  cfg.shm ? " in shared memory" : "", strerror(errno));
        return 1;
    }
    if (cfg.pid_file) {
        FILE *f = fopen(cfg.pid_file, "w");
        if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
            log_error("--pid-file %s: %s", cfg.pid_file, strerror(errno));
            store_destroy(&store);
            return 1;
        }
    }
    struct net_config nc = {.listen = cfg.listen,
                            .unix_path = cfg.unix_path,
                            .port_file = cfg.port_file,
                            .threads = cfg.threads,
                            .max_conns = cfg.max_conns,
                            .max_buffers = cfg.max_buffers,
                            .auth = &cfg.auth,
                            .tenants = cfg.tenants.n ? &cfg.tenants : NULL,
                            .handshake_timeout_ms = cfg.handshake_timeout * 1000u,
                            .frame_timeout_ms = cfg.frame_timeout * 1000u,
                            .max_conns_per_addr = cfg.max_conns_per_addr};
    store.tenants = cfg.tenants.accts;
    store.ntenants = cfg.tenants.n;
    struct server *srv = server_start(&nc, &store);
    if (!srv) {
        store_destroy(&store);
        return 1;
    }
    if (cfg.user) {
        /* The unix socket stays usable (and removable at exit) by the user. */
        if (cfg.unix_path && geteuid() == 0 && chown(cfg.unix_path, user.uid, user.gid) < 0)
            log_warn("--user: chown %s: %s", cfg.unix_path, strerror(errno));
        if (privdrop_apply(&user) < 0) {
            server_free(srv);
            store_destroy(&store);
            return 1;
        }
    }
    log_info("remoca-memd ready: %llu MiB in %u pages, policy %s, %u threads, max %u "
             "connections, max %u pools, authentication %s, %u tenants, shm %s",
             (unsigned long long)(cfg.memory >> 20), store.npages, policy_name(cfg.policy),
             cfg.threads, cfg.max_conns, cfg.max_pools,
             cfg.auth.len || cfg.tenants.n ? "on" : "off", cfg.tenants.n, cfg.shm ? "on" : "off");
    server_run(srv);
    server_free(srv);
    store_destroy(&store);
    tenants_free(&cfg.tenants);
    if (cfg.pid_file) unlink(cfg.pid_file);
    log_info("remoca-memd stopped");
    return 0;
}
