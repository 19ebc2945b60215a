/* SPDX-License-Identifier: BSD-3-Clause */
/* The servers file of the filter (remoca-servers-file=FILE) and of
 * remoca-vhost (--servers-file FILE): membership changes without a restart.
 *
 *   FILE                        watcher thread (1 s)            libremoca
 *   # rack A                    stat: inode, size, mtime ──┐
 *   unix:/run/memd0.sock        changed? read, join lines  │
 *   10.0.0.7:7400*2             ──▶ "unix:/run/memd0.sock,10.0.0.7:7400*2"
 *   10.0.0.8:7400, 10.0.0.9:7400    remoca_client_set_servers ──▶ POOL_KEEP,
 *                               bad: logged, old list kept        connects
 *
 * Replace the file atomically (write FILE.tmp, rename) so that a poll never
 * reads half of it; a half-written file that happens to parse would be
 * applied, and corrected at the next poll.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <nbdkit-filter.h>

#include "remoca/client.h"
#include "serversfile.h"

#define LIST_MAX (64u * 1024u) /* bytes of the joined list: 64 servers fit easily */

struct serversfile {
    char *path;
    struct remoca_client *client;
    struct stat seen; /* the file as last applied (or tried) */
    bool have_seen;
    bool logged_missing;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
};

char *serversfile_read(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *list = malloc(LIST_MAX);
    size_t len = 0;
    char line[4096];
    unsigned lineno = 0;
    bool ok = list != NULL;
    if (!ok) snprintf(err, errlen, "%s: out of memory", path);
    while (ok && fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s:%u: line too long", path, lineno);
            ok = false;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        /* entries of the line: split at commas, trim blanks */
        for (char *p = line; ok && *p;) {
            size_t n = strcspn(p, ",");
            char *e = p, *end = p + n;
            while (e < end && strchr(" \t\r\n", *e)) e++;
            while (end > e && strchr(" \t\r\n", end[-1])) end--;
            if (end > e) {
                if (len + (size_t)(end - e) + 2 > LIST_MAX) {
                    snprintf(err, errlen, "%s: list too long", path);
                    ok = false;
                    break;
                }
                if (len) list[len++] = ',';
                memcpy(list + len, e, (size_t)(end - e));
                len += (size_t)(end - e);
            }
            p += n;
            if (*p == ',') p++;
        }
    }
    if (ok && ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        ok = false;
    }
    fclose(f);
    if (ok && len == 0) {
        snprintf(err, errlen, "%s: no memory server in the file", path);
        ok = false;
    }
    if (!ok) {
        free(list);
        return NULL;
    }
    list[len] = '\0';
    return list;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static void poll_once(struct serversfile *w)
{
    struct stat st;
    if (stat(w->path, &st) < 0) {
        if (!w->logged_missing)
            nbdkit_error("remoca: servers file %s: %s; keeping the current servers", w->path,
                         strerror(errno));
        w->logged_missing = true;
        return;
    }
    w->logged_missing = false;
    if (w->have_seen && same_file(&st, &w->seen)) return;
    w->seen = st;
    w->have_seen = true;
    char err[512];
    char *list = serversfile_read(w->path, err, sizeof err);
    if (!list) {
        nbdkit_error("remoca: servers file: %s; keeping the current servers", err);
        return;
    }
    if (remoca_client_set_servers(w->client, list, err, sizeof err) < 0)
        nbdkit_error("remoca: servers file %s: %s; keeping the current servers", w->path, err);
    else
        nbdkit_debug("remoca: servers file %s applied: %s", w->path, list);
    free(list);
}

static void *watch_main(void *arg)
{
    struct serversfile *w = arg;
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        pthread_mutex_unlock(&w->lock);
        poll_once(w);
        pthread_mutex_lock(&w->lock);
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_sec += 1;
        while (!w->stop && pthread_cond_timedwait(&w->cond, &w->lock, &t) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

struct serversfile *serversfile_start(const char *path, struct remoca_client *client)
{
    struct serversfile *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        nbdkit_error("remoca: servers file: out of memory");
        free(w);
        return NULL;
    }
    w->client = client;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    int e = pthread_create(&w->thread, NULL, watch_main, w);
    if (e) {
        nbdkit_error("remoca: servers file: pthread_create: %s", strerror(e));
        free(w->path);
        free(w);
        return NULL;
    }
    return w;
}

void serversfile_stop(struct serversfile *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w->path);
    free(w);
}
