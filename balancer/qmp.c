/* SPDX-License-Identifier: BSD-3-Clause */
/* QMP over a unix socket (balancer/qmp.h). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmp.h"

#define LINE_MAX_BYTES (256u << 10) /* a QMP answer of ours is far smaller */

struct qmp {
    int fd;
    const char *path;
    struct timespec deadline;
    char *buf;
    size_t len, cap;
};

static long ms_left(const struct timespec *d)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (long)(d->tv_sec - now.tv_sec) * 1000 + (d->tv_nsec - now.tv_nsec) / 1000000;
    return ms > 0 ? ms : 0;
}

/* Waits for fd to be ready for `events` before the deadline: 0, or -1 (ETIMEDOUT). */
static int wait_fd(struct qmp *q, short events)
{
    for (;;) {
        struct pollfd p = {q->fd, events, 0};
        int r = poll(&p, 1, (int)ms_left(&q->deadline));
        if (r > 0) return 0;
        if (r == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR) return -1;
    }
}

static int send_all(struct qmp *q, const char *s, size_t n, char *err, size_t errlen)
{
    while (n) {
        if (wait_fd(q, POLLOUT) < 0) goto fail;
        ssize_t w = send(q->fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (w < 0) goto fail;
        s += w;
        n -= (size_t)w;
    }
    return 0;
fail:
    snprintf(err, errlen, "QMP %s: send: %s", q->path, strerror(errno));
    return -1;
}

/* The next JSON line that is not an event, parsed; NULL with err. */
static json_object *read_msg(struct qmp *q, char *err, size_t errlen)
{
    for (;;) {
        char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
        if (nl) {
            *nl = 0;
            json_object *o = json_tokener_parse(q->buf);
            size_t used = (size_t)(nl + 1 - q->buf);
            memmove(q->buf, nl + 1, q->len - used);
            q->len -= used;
            if (!o || !json_object_is_type(o, json_type_object)) {
                json_object_put(o);
                snprintf(err, errlen, "QMP %s: a line that is not a JSON object", q->path);
                return NULL;
            }
            if (json_object_object_get_ex(o, "event", NULL)) {
                json_object_put(o); /* BALLOON_CHANGE and friends */
                continue;
            }
            return o;
        }
        if (q->len + 1 >= q->cap) {
            if (q->cap >= LINE_MAX_BYTES) {
                snprintf(err, errlen, "QMP %s: a line longer than %u bytes", q->path,
                         LINE_MAX_BYTES);
                return NULL;
            }
            size_t cap = q->cap ? q->cap * 2 : 4096;
            char *b = realloc(q->buf, cap);
            if (!b) {
                snprintf(err, errlen, "QMP %s: out of memory", q->path);
                return NULL;
            }
            q->buf = b;
            q->cap = cap;
        }
        if (wait_fd(q, POLLIN) < 0) {
            snprintf(err, errlen, "QMP %s: %s", q->path,
                     errno == ETIMEDOUT ? "no answer (timed out)" : strerror(errno));
            return NULL;
        }
        ssize_t r = recv(q->fd, q->buf + q->len, q->cap - q->len - 1, MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (r <= 0) {
            snprintf(err, errlen, "QMP %s: %s", q->path,
                     r == 0 ? "connection closed by QEMU" : strerror(errno));
            return NULL;
        }
        q->len += (size_t)r;
    }
}

/* Runs one command; its "return" value (owned by the caller) or NULL with err
 * (QEMU's error class and description when it refused). */
static json_object *call(struct qmp *q, const char *cmd, json_object *args, char *err,
                         size_t errlen)
{
    json_object *req = json_object_new_object();
    json_object_object_add(req, "execute", json_object_new_string(cmd));
    if (args) json_object_object_add(req, "arguments", args);
    const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    char *line = NULL;
    int rc = asprintf(&line, "%s\n", s);
    json_object_put(req);
    if (rc < 0) {
        snprintf(err, errlen, "QMP %s: out of memory", q->path);
        return NULL;
    }
    rc = send_all(q, line, strlen(line), err, errlen);
    free(line);
    if (rc < 0) return NULL;
    json_object *o = read_msg(q, err, errlen), *v;
    if (!o) return NULL;
    if (json_object_object_get_ex(o, "return", &v)) {
        json_object_get(v);
        json_object_put(o);
        return v;
    }
    json_object *e, *cls = NULL, *desc = NULL;
    if (json_object_object_get_ex(o, "error", &e)) {
        json_object_object_get_ex(e, "class", &cls);
        json_object_object_get_ex(e, "desc", &desc);
    }
    snprintf(err, errlen, "QMP %s: %s: %s%s%s", q->path, cmd,
             cls ? json_object_get_string(cls) : "no return value", desc ? ": " : "",
             desc ? json_object_get_string(desc) : "");
    json_object_put(o);
    return NULL;
}

struct qmp *qmp_open(const char *path, unsigned timeout_ms, char *err, size_t errlen)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path) {
        snprintf(err, errlen, "QMP %s: path longer than %zu bytes", path, sizeof a.sun_path - 1);
        return NULL;
    }
    strcpy(a.sun_path, path);
    struct qmp *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(err, errlen, "QMP %s: out of memory", path);
        return NULL;
    }
    q->path = path;
    clock_gettime(CLOCK_MONOTONIC, &q->deadline);
    q->deadline.tv_sec += timeout_ms / 1000;
    q->deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (q->deadline.tv_nsec >= 1000000000) {
        q->deadline.tv_sec++;
        q->deadline.tv_nsec -= 1000000000;
    }
    /* A unix connect does not block on a listening socket (a full backlog
     * fails at once with EAGAIN). */
    q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (q->fd < 0 || connect(q->fd, (struct sockaddr *)&a, sizeof a) < 0) {
        snprintf(err, errlen, "QMP %s: %s%s", path, strerror(errno),
                 errno == ECONNREFUSED ? " (QEMU not running?)" : "");
        qmp_close(q);
        return NULL;
    }
    /* QEMU serves one QMP client at a time: the others wait for the greeting. */
    json_object *o = read_msg(q, err, errlen), *v;
    bool got = o != NULL, greeted = o && json_object_object_get_ex(o, "QMP", NULL);
    json_object_put(o);
    if (!greeted) {
        if (got)
            snprintf(err, errlen, "QMP %s: no QMP greeting (not a QMP socket?)", path);
        else if (strstr(err, "timed out"))
            snprintf(err, errlen, "QMP %s: no greeting (timed out: another QMP client connected?)",
                     path);
        qmp_close(q);
        return NULL;
    }
    if (!(v = call(q, "qmp_capabilities", NULL, err, errlen))) {
        qmp_close(q);
        return NULL;
    }
    json_object_put(v);
    return q;
}

void qmp_close(struct qmp *q)
{
    if (!q) return;
    if (q->fd >= 0) close(q->fd);
    free(q->buf);
    free(q);
}

/* A positive integer member of the object returned by cmd. */
static int query_u64(struct qmp *q, const char *cmd, const char *member, uint64_t *out, char *err,
                     size_t errlen)
{
    json_object *r = call(q, cmd, NULL, err, errlen), *v;
    if (!r) return -1;
    int rc = -1;
    if (json_object_object_get_ex(r, member, &v) && json_object_is_type(v, json_type_int) &&
        json_object_get_int64(v) > 0) {
        *out = (uint64_t)json_object_get_int64(v);
        rc = 0;
    } else {
        snprintf(err, errlen, "QMP %s: %s: no positive \"%s\" in the answer", q->path, cmd, member);
    }
    json_object_put(r);
    return rc;
}

int qmp_balloon_actual(struct qmp *q, uint64_t *bytes, char *err, size_t errlen)
{
    return query_u64(q, "query-balloon", "actual", bytes, err, errlen);
}

int qmp_base_memory(struct qmp *q, uint64_t *bytes, char *err, size_t errlen)
{
    return query_u64(q, "query-memory-size-summary", "base-memory", bytes, err, errlen);
}

int qmp_balloon_set(struct qmp *q, uint64_t bytes, char *err, size_t errlen)
{
    json_object *args = json_object_new_object();
    json_object_object_add(args, "value", json_object_new_int64((int64_t)bytes));
    json_object *r = call(q, "balloon", args, err, errlen);
    if (!r) return -1;
    json_object_put(r);
    return 0;
}
