/* SPDX-License-Identifier: BSD-3-Clause */
/* vhost-user message I/O and validation (msg.h).
 *
 * What is checked here, before any handler runs:
 *  - the header's version bits are 1 and no reply bit is set;
 *  - size <= sizeof(union vu_payload) (the largest payload: a memory table),
 *    and exactly what the request's payload needs (a memory table's size
 *    follows from its region count, a config's from its size field);
 *  - the number of fds is exactly what the request carries (a SET_MEM_TABLE:
 *    one per region; KICK/CALL/ERR: one unless the no-fd bit is set);
 *  - the request is one this backend knows.
 * A truncated control message (MSG_CTRUNC: more fds than fit) is an error
 * too, and every fd received with a bad message is closed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "msg.h"

static const char *const names[VU_REQUEST_MAX] = {
    [VU_GET_FEATURES] = "GET_FEATURES",
    [VU_SET_FEATURES] = "SET_FEATURES",
    [VU_SET_OWNER] = "SET_OWNER",
    [VU_RESET_OWNER] = "RESET_OWNER",
    [VU_SET_MEM_TABLE] = "SET_MEM_TABLE",
    [VU_SET_LOG_BASE] = "SET_LOG_BASE",
    [VU_SET_LOG_FD] = "SET_LOG_FD",
    [VU_SET_VRING_NUM] = "SET_VRING_NUM",
    [VU_SET_VRING_ADDR] = "SET_VRING_ADDR",
    [VU_SET_VRING_BASE] = "SET_VRING_BASE",
    [VU_GET_VRING_BASE] = "GET_VRING_BASE",
    [VU_SET_VRING_KICK] = "SET_VRING_KICK",
    [VU_SET_VRING_CALL] = "SET_VRING_CALL",
    [VU_SET_VRING_ERR] = "SET_VRING_ERR",
    [VU_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
    [VU_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
    [VU_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
    [VU_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
    [VU_SET_SLAVE_REQ_FD] = "SET_SLAVE_REQ_FD",
    [VU_GET_CONFIG] = "GET_CONFIG",
    [VU_SET_CONFIG] = "SET_CONFIG",
    [VU_GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
    [VU_SET_INFLIGHT_FD] = "SET_INFLIGHT_FD",
    [VU_RESET_DEVICE] = "RESET_DEVICE",
    [VU_GET_MAX_MEM_SLOTS] = "GET_MAX_MEM_SLOTS",
    [VU_ADD_MEM_REG] = "ADD_MEM_REG",
    [VU_REM_MEM_REG] = "REM_MEM_REG",
};

const char *vu_request_name(uint32_t request)
{
    if (request < VU_REQUEST_MAX && names[request]) return names[request];
    return "unknown";
}

void vu_msg_close_fds(struct vu_msg *m)
{
    for (unsigned i = 0; i < m->nfds && i < VU_MAX_FDS; i++) {
        if (m->fds[i] >= 0) close(m->fds[i]);
        m->fds[i] = -1;
    }
    m->nfds = 0;
}

static int fail(char *err, size_t errlen, const char *what, const struct vu_msg *m)
{
    snprintf(err, errlen, "%s %u: %s (size %u, %u fds)", vu_request_name(m->hdr.request),
             m->hdr.request, what, m->hdr.size, m->nfds);
    return -1;
}

/* Requests without a payload: QEMU sends size 0; a u64 of padding is tolerated. */
static bool no_payload(uint32_t size) { return size == 0 || size == 8; }

int vu_msg_check(const struct vu_msg *m, char *err, size_t errlen)
{
    uint32_t size = m->hdr.size;
    unsigned want_fds = 0;
    bool size_ok;
    if ((m->hdr.flags & VU_FLAG_VERSION_MASK) != VU_FLAG_VERSION)
        return fail(err, errlen, "bad version in flags", m);
    if (m->hdr.flags & VU_FLAG_REPLY) return fail(err, errlen, "reply flag on a request", m);
    if (size > sizeof(union vu_payload)) return fail(err, errlen, "size above the maximum", m);
    switch (m->hdr.request) {
    case VU_GET_FEATURES:
    case VU_GET_PROTOCOL_FEATURES:
    case VU_SET_OWNER:
    case VU_RESET_OWNER:
    case VU_GET_QUEUE_NUM:
    case VU_GET_MAX_MEM_SLOTS:
    case VU_RESET_DEVICE: size_ok = no_payload(size); break;
    case VU_SET_SLAVE_REQ_FD:
        size_ok = no_payload(size);
        want_fds = 1;
        break;
    case VU_SET_FEATURES:
    case VU_SET_PROTOCOL_FEATURES:
    case VU_SET_VRING_NUM:
    case VU_SET_VRING_BASE:
    case VU_GET_VRING_BASE:
    case VU_SET_VRING_ENABLE: size_ok = size == 8; break;
    case VU_SET_VRING_KICK:
    case VU_SET_VRING_CALL:
    case VU_SET_VRING_ERR:
        size_ok = size == 8;
        want_fds = size == 8 && !(m->p.u64 & VU_VRING_NOFD);
        break;
    case VU_SET_VRING_ADDR: size_ok = size == sizeof(struct vu_vring_addr); break;
    case VU_SET_MEM_TABLE:
        if (size < 8 || m->p.mem.nregions > VU_MEM_TABLE_REGIONS)
            return fail(err, errlen, "bad region count", m);
        size_ok = size == 8 + m->p.mem.nregions * sizeof(struct vu_region);
        want_fds = m->p.mem.nregions;
        break;
    case VU_ADD_MEM_REG:
        size_ok = size == sizeof(struct vu_mem_single);
        want_fds = 1;
        break;
    case VU_REM_MEM_REG: /* QEMU may pass the region's fd along; it is not needed */
        size_ok = size == sizeof(struct vu_mem_single);
        want_fds = m->nfds <= 1 ? m->nfds : 0;
        break;
    case VU_GET_CONFIG:
    case VU_SET_CONFIG:
        size_ok = size >= 12 && m->p.config.size <= VU_CONFIG_MAX && size == 12 + m->p.config.size;
        break;
    case VU_GET_INFLIGHT_FD: size_ok = size >= 20 && size <= 24; break;
    case VU_SET_INFLIGHT_FD:
        size_ok = size >= 20 && size <= 24;
        want_fds = 1;
        break;
    default: return fail(err, errlen, "unknown or unsupported request", m);
    }
    if (!size_ok) return fail(err, errlen, "wrong payload size for the request", m);
    if (m->nfds != want_fds) return fail(err, errlen, "wrong number of fds for the request", m);
    return 0;
}

static void take_fds(struct msghdr *mh, struct vu_msg *m, bool *extra)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const unsigned char *data = CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof fd, sizeof fd);
            if (m->nfds < VU_MAX_FDS)
                m->fds[m->nfds++] = fd;
            else {
                close(fd);
                *extra = true;
            }
        }
    }
}

static int read_full(int sock, void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(sock, (char *)buf + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r == 0 ? 0 : -1;
        got += (size_t)r;
    }
    return 1;
}

int vu_msg_recv(int sock, struct vu_msg *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    for (unsigned i = 0; i < VU_MAX_FDS; i++) m->fds[i] = -1;
    union {
        char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {&m->hdr, sizeof m->hdr};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
    ssize_t r;
    do r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r == 0) return 0;
    if (r < 0) {
        snprintf(err, errlen, "recvmsg: %s", strerror(errno));
        return -1;
    }
    bool extra = false;
    take_fds(&mh, m, &extra);
    if (extra || (mh.msg_flags & MSG_CTRUNC)) {
        snprintf(err, errlen, "more than %d fds with one message", VU_MAX_FDS);
        goto bad;
    }
    if ((size_t)r < sizeof m->hdr && read_full(sock, (char *)&m->hdr + r, sizeof m->hdr - r) != 1) {
        snprintf(err, errlen, "connection closed inside a message header");
        goto bad;
    }
    if (m->hdr.size > sizeof m->p) {
        snprintf(err, errlen, "%s: size %u above the largest payload (%zu)",
                 vu_request_name(m->hdr.request), m->hdr.size, sizeof m->p);
        goto bad;
    }
    if (m->hdr.size && read_full(sock, &m->p, m->hdr.size) != 1) {
        snprintf(err, errlen, "connection closed inside a message payload");
        goto bad;
    }
    return 1;
bad:
    vu_msg_close_fds(m);
    return -1;
}

long vu_msg_parse(const void *buf, size_t len, const int *fds, unsigned nfds, struct vu_msg *m,
                  char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    for (unsigned i = 0; i < VU_MAX_FDS; i++) m->fds[i] = -1;
    if (len < sizeof m->hdr) return 0;
    memcpy(&m->hdr, buf, sizeof m->hdr);
    if (m->hdr.size > sizeof m->p) {
        snprintf(err, errlen, "size %u above the largest payload (%zu)", m->hdr.size, sizeof m->p);
        return -1;
    }
    if (len - sizeof m->hdr < m->hdr.size) return 0;
    memcpy(&m->p, (const char *)buf + sizeof m->hdr, m->hdr.size);
    if (nfds > VU_MAX_FDS) {
        snprintf(err, errlen, "more than %d fds with one message", VU_MAX_FDS);
        return -1;
    }
    for (unsigned i = 0; i < nfds; i++) m->fds[i] = fds[i];
    m->nfds = nfds;
    return (long)(sizeof m->hdr + m->hdr.size);
}

int vu_msg_reply(int sock, uint32_t request, const void *p, uint32_t size)
{
    struct __attribute__((packed)) {
        struct vu_hdr hdr;
        union vu_payload p;
    } out; /* packed: the payload follows the 12-byte header directly */
    if (size > sizeof out.p) return -1;
    out.hdr.request = request;
    out.hdr.flags = VU_FLAG_VERSION | VU_FLAG_REPLY;
    out.hdr.size = size;
    if (size) memcpy(&out.p, p, size);
    size_t len = sizeof out.hdr + size, done = 0;
    while (done < len) {
        ssize_t r = send(sock, (char *)&out + done, len - done, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        done += (size_t)r;
    }
    return 0;
}
