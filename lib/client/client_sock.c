/* SPDX-License-Identifier: BSD-3-Clause */
/* Socket plumbing for the client core: connect with a timeout, send with a
 * deadline, receive with an optional deadline.
 *
 * Sockets stay in blocking mode, because the connection thread's receive loop
 * simply blocks in recv() (callers enforce their own timeouts and shut the
 * socket down to wake it).  Senders use MSG_DONTWAIT and poll() for the time
 * left until their deadline, so a hung server (full socket buffer) never
 * holds a caller beyond its timeout; MSG_NOSIGNAL keeps a dead peer from
 * raising SIGPIPE in the host process (nbdkit, qemu).  Waits in the
 * connection thread also watch the client's stop eventfd, so freeing a
 * client never waits for a connect or handshake timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "client_internal.h"
#include "client_sock.h"

void rc_deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int rc_deadline_left_ms(const struct timespec *ts)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ns = (int64_t)(ts->tv_sec - now.tv_sec) * 1000000000LL + (ts->tv_nsec - now.tv_nsec);
    if (ns <= 0) return 0;
    int64_t ms = (ns + 999999) / 1000000;
    return ms > 1000000000 ? 1000000000 : (int)ms;
}

/* Waits for `events` on fd until the deadline (NULL: forever) or stop_fd.
 * Returns 0 when ready, -1 with errno ETIMEDOUT or ECANCELED. */
static int wait_fd(int fd, short events, const struct timespec *deadline, int stop_fd)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = stop_fd, .events = POLLIN}};
        int left = deadline ? rc_deadline_left_ms(deadline) : -1;
        if (left == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        int r = poll(p, stop_fd >= 0 ? 2 : 1, left);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) continue; /* re-check the deadline */
        if (stop_fd >= 0 && p[1].revents) {
            errno = ECANCELED;
            return -1;
        }
        return 0; /* ready, or error/hangup that the next syscall reports */
    }
}

static int set_nonblock(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -1;
    return fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* Connects one socket; 0 and *out on success, else -1 and errno. */
static int connect_one(int family, const struct sockaddr *sa, socklen_t salen,
                       const struct timespec *deadline, int stop_fd, int *out)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    if (connect(fd, sa, salen) < 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) goto fail;
        if (wait_fd(fd, POLLOUT, deadline, stop_fd) < 0) goto fail;
        int soerr = 0;
        socklen_t l = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &l) < 0) goto fail;
        if (soerr) {
            errno = soerr;
            goto fail;
        }
    }
    if (set_nonblock(fd, false) < 0) goto fail;
    *out = fd;
    return 0;
fail:;
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

int rc_sock_connect(const struct remoca_addr *a, unsigned timeout_ms, int stop_fd, char *why,
                    size_t whylen)
{
    struct timespec deadline;
    rc_deadline_in(&deadline, timeout_ms);
    int fd = -1;

    if (a->kind == REMOCA_ADDR_UNIX) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        memcpy(sun.sun_path, a->path, strlen(a->path) + 1);
        if (connect_one(AF_UNIX, (struct sockaddr *)&sun, sizeof sun, &deadline, stop_fd, &fd) <
            0) {
            snprintf(why, whylen, "connect: %s", strerror(errno));
            return -1;
        }
        return fd;
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(a->host, a->port, &hints, &res);
    if (gai != 0) {
        snprintf(why, whylen, "cannot resolve '%s': %s", a->host, gai_strerror(gai));
        return -1;
    }
    int err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen, &deadline, stop_fd, &fd) == 0)
            break;
        err = errno;
        fd = -1;
        if (err == ECANCELED || err == ETIMEDOUT) break;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(why, whylen, "connect: %s", strerror(err ? err : ECONNREFUSED));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* A dead host (not just a hung process, whose kernel still answers) is
     * noticed in ~11 s when idle, ~30 s with data in flight. */
    int idle = 5, intvl = 2, cnt = 3;
    unsigned user_timeout = 30000;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
    return fd;
}

int rc_sock_send(int fd, struct iovec *iov, int iovcnt, const struct timespec *deadline, int flags,
                 size_t *sent, char *why, size_t whylen)
{
    size_t total = 0;
    if (sent) *sent = 0;
    while (iovcnt > 0) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)(iovcnt > 1024 ? 1024 : iovcnt)};
        ssize_t r = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT | flags);
        if (r < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (wait_fd(fd, POLLOUT, deadline, -1) < 0) {
                    int e = errno;
                    snprintf(why, whylen, "send: %s",
                             e == ETIMEDOUT ? "timed out (server not reading)" : strerror(e));
                    errno = e;
                    return -1;
                }
                continue;
            }
            int e = errno;
            snprintf(why, whylen, "send: %s", strerror(e));
            errno = e;
            return -1;
        }
        size_t n = (size_t)r;
        total += n;
        if (sent) *sent = total;
        rc_iov_advance(&iov, &iovcnt, n);
    }
    return 0;
}

void rc_iov_advance(struct iovec **iov, int *iovcnt, size_t n)
{
    while (*iovcnt > 0 && n >= (*iov)->iov_len) {
        n -= (*iov)->iov_len;
        (*iov)++;
        (*iovcnt)--;
    }
    if (*iovcnt > 0) {
        (*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
        (*iov)->iov_len -= n;
    }
}

ssize_t rc_sock_recv(int fd, void *p, size_t n, const struct timespec *deadline, int stop_fd)
{
    for (;;) {
        if (deadline && wait_fd(fd, POLLIN, deadline, stop_fd) < 0) return -1;
        ssize_t r = recv(fd, p, n, deadline ? MSG_DONTWAIT : 0);
        if (r < 0 && deadline && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
        if (r < 0 && errno == EINTR) continue;
        return r;
    }
}

ssize_t rc_sock_recv_fds(int fd, void *p, size_t n, int *fds, unsigned *nfds, unsigned maxfds,
                         const struct timespec *deadline, int stop_fd)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * RC_SOCK_MAX_FDS)];
    } ctl;
    for (;;) {
        if (wait_fd(fd, POLLIN, deadline, stop_fd) < 0) return -1;
        struct iovec iov = {p, n};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctl.buf,
                            .msg_controllen = sizeof ctl.buf};
        ssize_t r = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
        if (r < 0) return r;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
            size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int d;
                memcpy(&d, CMSG_DATA(cm) + i * sizeof(int), sizeof d);
                if (*nfds < maxfds)
                    fds[(*nfds)++] = d;
                else
                    close(d);
            }
        }
        return r;
    }
}

ssize_t rc_sock_readv(int fd, struct iovec *iov, int iovcnt)
{
    for (;;) {
        ssize_t r = readv(fd, iov, iovcnt > 1024 ? 1024 : iovcnt);
        if (r < 0 && errno == EINTR) continue;
        return r;
    }
}
