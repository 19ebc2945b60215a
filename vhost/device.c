/* SPDX-License-Identifier: BSD-3-Clause */
/* vhost-user message handlers and device state (device.h).
 *
 * What is checked where:
 *  - msg.c: sizes, fd counts, known requests (before this file sees a message);
 *  - here: queue indices (< the queues offered), feature sets (a subset of what
 *    was offered; VHOST_F_LOG_ALL is never offered, so live migration's dirty
 *    logging is refused), queue sizes (a power of 2), ring flags (no logging),
 *    config offsets; memory regions through mem.c;
 *  - vring.c: the rings themselves, when a queue starts and for every chain.
 * A handler failure closes the connection, unless the front end asked for a
 * REPLY_ACK: then it gets a failure ack and the connection stays.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "device.h"
#include "vlog.h"

#define BIT(n) (1ull << (n))

uint64_t vu_dev_protocol_features(void)
{
    return BIT(VU_PF_MQ) | BIT(VU_PF_REPLY_ACK) | BIT(VU_PF_CONFIG) | BIT(VU_PF_RESET_DEVICE) |
           BIT(VU_PF_CONFIGURE_MEM_SLOTS);
}

uint64_t vu_dev_features(const struct vu_dev *d)
{
    return d->ops->device_features | BIT(VIRTIO_F_VERSION_1) | BIT(VHOST_USER_F_PROTOCOL_FEATURES) |
           BIT(VIRTIO_RING_F_INDIRECT_DESC) | BIT(VIRTIO_RING_F_EVENT_IDX);
}

static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static void queue_init(struct vu_queue *q)
{
    memset(q, 0, sizeof *q);
    q->kick_fd = q->call_fd = q->err_fd = -1;
}

void vu_dev_init(struct vu_dev *d, const struct vu_dev_ops *ops, void *ctx)
{
    memset(d, 0, sizeof *d);
    d->ops = ops;
    d->ctx = ctx;
    vmem_init(&d->mem);
    for (unsigned i = 0; i < VU_MAX_QUEUES; i++) queue_init(&d->q[i]);
}

static unsigned nqueues(const struct vu_dev *d)
{
    return d->ops->nqueues < VU_MAX_QUEUES ? d->ops->nqueues : VU_MAX_QUEUES;
}

static void stop_queue(struct vu_dev *d, unsigned i)
{
    struct vu_queue *q = &d->q[i];
    if (!q->running) return;
    d->ops->queue_stop(d->ctx, d, i);
    q->running = false;
    q->base = q->vr.last_avail;
    if (q->vr.broken) q->broken = true;
}

static void stop_all(struct vu_dev *d)
{
    for (unsigned i = 0; i < nqueues(d); i++) stop_queue(d, i);
}

static bool can_run(const struct vu_dev *d, const struct vu_queue *q)
{
    return q->started && q->kick_fd >= 0 && q->addr_set && q->num && q->enabled && !q->broken &&
           d->mem.n > 0;
}

/* Starts every queue that has all it needs.  A ring that does not map is
 * logged and left stopped (marked broken until the front end sets it again). */
static void start_ready(struct vu_dev *d)
{
    char err[256];
    for (unsigned i = 0; i < nqueues(d); i++) {
        struct vu_queue *q = &d->q[i];
        if (q->running || !can_run(d, q)) continue;
        bool event_idx = d->features & BIT(VIRTIO_RING_F_EVENT_IDX);
        if (vring_map(&q->vr, &d->mem, q->num, q->addr.desc, q->addr.avail, q->addr.used, event_idx,
                      err, sizeof err) < 0) {
            vu_warn("queue %u: %s", i, err);
            q->broken = true;
            continue;
        }
        q->vr.last_avail = q->base;
        q->vr.used_idx = vring_used_idx_in_ring(&q->vr);
        if (q->vr.used_idx != q->base) {
            /* Requests complete in order here, so every chain before the used
             * index is done and every one after it is not: resume there (a
             * front end that lost our state, e.g. after a backend restart). */
            vu_info("queue %u: resuming at the ring's used index %u (base was %u)", i,
                    q->vr.used_idx, q->base);
            q->vr.last_avail = q->vr.used_idx;
        }
        if (d->ops->queue_start(d->ctx, d, i) < 0) {
            vu_warn("queue %u: could not start", i);
            continue;
        }
        q->running = true;
        vu_debug("queue %u: started, size %u, at %u", i, q->num, q->vr.last_avail);
    }
}

static void reset_queues(struct vu_dev *d)
{
    stop_all(d);
    for (unsigned i = 0; i < VU_MAX_QUEUES; i++) {
        struct vu_queue *q = &d->q[i];
        close_fd(&q->kick_fd);
        close_fd(&q->call_fd);
        close_fd(&q->err_fd);
        queue_init(q);
    }
}

void vu_dev_reset(struct vu_dev *d)
{
    reset_queues(d);
    vmem_clear(&d->mem);
    if (d->ops->mem_changed) d->ops->mem_changed(d->ctx, &d->mem);
    vu_dev_init(d, d->ops, d->ctx);
}

static int fail(char *err, size_t errlen, const struct vu_msg *m, const char *what)
{
    snprintf(err, errlen, "%s: %s", vu_request_name(m->hdr.request), what);
    return -1;
}

static struct vu_queue *queue_of(struct vu_dev *d, uint32_t index)
{
    return index < nqueues(d) ? &d->q[index] : NULL;
}

static void reply_u64(struct vu_reply *r, uint64_t v)
{
    r->send = true;
    r->size = sizeof(uint64_t);
    r->p.u64 = v;
}

static int set_mem_table(struct vu_dev *d, struct vu_msg *m, char *err, size_t errlen)
{
    vmem_clear(&d->mem);
    int rc = 0;
    for (unsigned i = 0; i < m->p.mem.nregions; i++) {
        int fd = m->fds[i];
        m->fds[i] = -1; /* vmem_add_fd closes it */
        if (rc == 0 && vmem_add_fd(&d->mem, &m->p.mem.regions[i], fd, err, errlen) < 0) {
            rc = -1;
            continue;
        }
        if (rc < 0) close(fd);
    }
    if (rc < 0) vmem_clear(&d->mem);
    return rc;
}

static int set_fd(struct vu_dev *d, struct vu_msg *m, int which, char *err, size_t errlen)
{
    struct vu_queue *q = queue_of(d, m->p.u64 & VU_VRING_IDX_MASK);
    if (!q) return fail(err, errlen, m, "queue index out of range");
    if (m->p.u64 & ~(uint64_t)(VU_VRING_IDX_MASK | VU_VRING_NOFD))
        return fail(err, errlen, m, "unknown bits");
    int fd = m->nfds ? m->fds[0] : -1;
    if (m->nfds) m->fds[0] = -1;
    int *slot = which == 0 ? &q->kick_fd : which == 1 ? &q->call_fd : &q->err_fd;
    close_fd(slot);
    *slot = fd;
    if (which == 0) {
        if (fd < 0) return fail(err, errlen, m, "polling without a kick fd is not supported");
        q->started = true;
    }
    return 0;
}

static int handle(struct vu_dev *d, struct vu_msg *m, struct vu_reply *r, char *err, size_t errlen)
{
    struct vu_queue *q;
    switch (m->hdr.request) {
    case VU_GET_FEATURES: reply_u64(r, vu_dev_features(d)); return 0;
    case VU_SET_FEATURES:
        if (m->p.u64 & ~vu_dev_features(d)) {
            snprintf(err, errlen, "SET_FEATURES: 0x%llx has bits not offered (0x%llx)%s",
                     (unsigned long long)m->p.u64, (unsigned long long)vu_dev_features(d),
                     m->p.u64 & BIT(VHOST_F_LOG_ALL)
                         ? ": dirty logging (live migration) is not supported"
                         : "");
            return -1;
        }
        d->features = m->p.u64;
        if (!(d->features & BIT(VHOST_USER_F_PROTOCOL_FEATURES)))
            for (unsigned i = 0; i < nqueues(d); i++) d->q[i].enabled = true;
        return 0;
    case VU_GET_PROTOCOL_FEATURES: reply_u64(r, vu_dev_protocol_features()); return 0;
    case VU_SET_PROTOCOL_FEATURES:
        if (m->p.u64 & ~vu_dev_protocol_features()) return fail(err, errlen, m, "bits not offered");
        d->protocol_features = m->p.u64;
        return 0;
    case VU_GET_QUEUE_NUM: reply_u64(r, nqueues(d)); return 0;
    case VU_GET_MAX_MEM_SLOTS: reply_u64(r, VU_MAX_MEM_SLOTS); return 0;
    case VU_SET_OWNER: d->owner = true; return 0;
    case VU_RESET_OWNER:
    case VU_RESET_DEVICE:
        reset_queues(d);
        d->features = 0;
        return 0;
    case VU_SET_SLAVE_REQ_FD: /* not offered: nothing is ever sent on it */
        vu_msg_close_fds(m);
        return 0;
    case VU_SET_MEM_TABLE: {
        int rc = set_mem_table(d, m, err, errlen);
        if (d->ops->mem_changed) d->ops->mem_changed(d->ctx, &d->mem);
        return rc;
    }
    case VU_ADD_MEM_REG: {
        int fd = m->fds[0];
        m->fds[0] = -1;
        int rc = vmem_add_fd(&d->mem, &m->p.reg.region, fd, err, errlen);
        if (rc == 0 && d->ops->mem_changed) d->ops->mem_changed(d->ctx, &d->mem);
        return rc;
    }
    case VU_REM_MEM_REG: {
        int rc = vmem_remove(&d->mem, &m->p.reg.region, err, errlen);
        if (rc == 0 && d->ops->mem_changed) d->ops->mem_changed(d->ctx, &d->mem);
        return rc;
    }
    case VU_SET_VRING_NUM:
        if (!(q = queue_of(d, m->p.state.index)))
            return fail(err, errlen, m, "queue index out of range");
        if (m->p.state.num == 0 || m->p.state.num > VRING_MAX_SIZE ||
            (m->p.state.num & (m->p.state.num - 1)))
            return fail(err, errlen, m, "queue size not a power of 2 up to 32768");
        q->num = m->p.state.num;
        q->broken = false;
        return 0;
    case VU_SET_VRING_ADDR:
        if (!(q = queue_of(d, m->p.addr.index)))
            return fail(err, errlen, m, "queue index out of range");
        if (m->p.addr.flags) return fail(err, errlen, m, "used ring logging is not supported");
        q->addr = m->p.addr;
        q->addr_set = true;
        q->broken = false;
        return 0;
    case VU_SET_VRING_BASE:
        if (!(q = queue_of(d, m->p.state.index)))
            return fail(err, errlen, m, "queue index out of range");
        if (m->p.state.num > 0xffff) return fail(err, errlen, m, "base above 65535");
        q->base = (uint16_t)m->p.state.num;
        q->broken = false;
        return 0;
    case VU_GET_VRING_BASE:
        if (!(q = queue_of(d, m->p.state.index)))
            return fail(err, errlen, m, "queue index out of range");
        /* The queue was stopped before this handler ran: it stays stopped
         * until the next SET_VRING_KICK. */
        q->started = false;
        q->broken = false;
        r->send = true;
        r->size = sizeof(struct vu_vring_state);
        r->p.state.index = m->p.state.index;
        r->p.state.num = q->base;
        return 0;
    case VU_SET_VRING_KICK: return set_fd(d, m, 0, err, errlen);
    case VU_SET_VRING_CALL: return set_fd(d, m, 1, err, errlen);
    case VU_SET_VRING_ERR: return set_fd(d, m, 2, err, errlen);
    case VU_SET_VRING_ENABLE:
        if (!(q = queue_of(d, m->p.state.index)))
            return fail(err, errlen, m, "queue index out of range");
        if (m->p.state.num > 1) return fail(err, errlen, m, "enable is not 0 or 1");
        q->enabled = m->p.state.num;
        return 0;
    case VU_GET_CONFIG: {
        uint8_t cfg[VU_CONFIG_MAX] = {0};
        uint64_t end = (uint64_t)m->p.config.offset + m->p.config.size;
        r->send = true;
        r->p.config = m->p.config;
        if (end > VU_CONFIG_MAX) { /* an empty config tells QEMU it failed */
            r->p.config.size = 0;
            r->size = 12;
            return 0;
        }
        d->ops->get_config(d->ctx, cfg);
        memcpy(r->p.config.payload, cfg + m->p.config.offset, m->p.config.size);
        r->size = 12 + m->p.config.size;
        return 0;
    }
    case VU_SET_CONFIG: return 0; /* nothing writable is offered (no CONFIG_WCE) */
    default: return fail(err, errlen, m, "not supported (its feature is not offered)");
    }
}

static bool read_only(uint32_t request)
{
    switch (request) {
    case VU_GET_FEATURES:
    case VU_GET_PROTOCOL_FEATURES:
    case VU_GET_QUEUE_NUM:
    case VU_GET_MAX_MEM_SLOTS:
    case VU_GET_CONFIG:
    case VU_SET_OWNER:
    case VU_SET_CONFIG:
    case VU_SET_PROTOCOL_FEATURES: return true;
    default: return false;
    }
}

int vu_dev_handle(struct vu_dev *d, struct vu_msg *m, struct vu_reply *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    bool mutates = !read_only(m->hdr.request);
    if (mutates) stop_all(d);
    int rc = handle(d, m, r, err, errlen);
    vu_msg_close_fds(m); /* whatever the handler did not take */
    if (mutates) start_ready(d);
    bool ack = (m->hdr.flags & VU_FLAG_NEED_REPLY) &&
               (d->protocol_features & BIT(VU_PF_REPLY_ACK)) && !r->send;
    if (ack) {
        reply_u64(r, rc < 0 ? 1 : 0);
        if (rc < 0) vu_warn("%s (failure acknowledged)", err);
        return 0;
    }
    return rc;
}
