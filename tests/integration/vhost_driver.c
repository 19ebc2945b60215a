/* SPDX-License-Identifier: BSD-3-Clause */
/* vhost_driver: drives remoca-vhost as QEMU and a guest would, from the host.
 *
 *   vhost_driver SOCKET DISK-FILE [--memtable] [--expect-readonly]
 *
 * Guest RAM is a 64 MiB memfd (gpa 0; its "QEMU virtual address" is where
 * this process maps it).  The handshake is QEMU 7.2's order (GET_FEATURES,
 * protocol features, GET_QUEUE_NUM, GET_MAX_MEM_SLOTS, SET_OWNER, CALL/ERR,
 * GET_CONFIG, SET_FEATURES, ADD_MEM_REG with REPLY_ACK, or SET_MEM_TABLE with
 * --memtable, SET_VRING_NUM/BASE/ADDR/KICK, SET_VRING_ENABLE), one queue of
 * 128 with EVENT_IDX and indirect descriptors.  Then virtio-blk requests, each
 * checked against DISK-FILE's bytes:
 *   write (indirect, 16 pages), read back, read again (the remote hit of
 *   inclusive mode: the script checks the stats), a bounced unaligned read,
 *   flush, discard, write-zeroes, get-id;
 *   hostile: buffer outside guest memory, straddling its end, zero length,
 *   wrong direction, beyond capacity, unknown type (each: IOERR/UNSUPP and
 *   nothing else written), a descriptor loop (the queue breaks and signals its
 *   err fd; GET_VRING_BASE and a new start recover it);
 *   disconnect and reconnect, resuming at the used index; a malformed message
 *   (the backend closes the connection), and connecting again.
 * Prints "PASS" and exits 0, or names the failed check and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../vhost/proto.h"

#define MEM_SIZE (64u << 20)
#define QSIZE 128u
#define DESC_GPA 0x10000u
#define AVAIL_GPA 0x20000u
#define USED_GPA 0x30000u
#define IND_GPA 0x40000u
#define HDR_GPA 0x50000u
#define STATUS_GPA 0x51000u
#define DATA_GPA 0x100000u
#define DATA2_GPA 0x800000u
#define BIT(n) (1ull << (n))

static int sock = -1, memfd, kickfd, callfd, errfd;
static uint8_t *mem;
static const char *sock_path, *disk_path;
static int failures;
static uint16_t avail_idx, used_seen;
static bool use_memtable;

#define CHECK(cond, ...)                                         \
    do {                                                         \
        if (!(cond)) {                                           \
            fprintf(stderr, "FAIL %s:%d: ", __func__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                        \
            fputc('\n', stderr);                                 \
            failures++;                                          \
        }                                                        \
    } while (0)

static void die(const char *what)
{
    fprintf(stderr, "FAIL: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void connect_backend(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock_path);
    for (int i = 0; i < 100; i++) {
        sock = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(sock, (struct sockaddr *)&a, sizeof a) == 0) return;
        close(sock);
        usleep(50000);
    }
    die("connect");
}

static void send_msg(uint32_t req, uint32_t flags, const void *p, uint32_t size, const int *fds,
                     unsigned nfds)
{
    struct __attribute__((packed)) {
        struct vu_hdr h;
        union vu_payload p;
    } m;
    m.h = (struct vu_hdr){req, VU_FLAG_VERSION | flags, size};
    if (size) memcpy(&m.p, p, size);
    struct iovec iov = {&m, sizeof m.h + size};
    char ctl[CMSG_SPACE(8 * sizeof(int))];
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds) {
        mh.msg_control = ctl;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    if (sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)iov.iov_len) die("sendmsg");
}

/* Reads a reply; returns its payload size, or -1 if the connection closed. */
static int recv_reply(uint32_t req, void *p, uint32_t max)
{
    struct vu_hdr h;
    ssize_t r = recv(sock, &h, sizeof h, MSG_WAITALL);
    if (r != sizeof h) return -1;
    if (h.request != req || !(h.flags & VU_FLAG_REPLY) || h.size > max) {
        fprintf(stderr, "FAIL: bad reply to %u: req %u flags %x size %u\n", req, h.request, h.flags,
                h.size);
        exit(1);
    }
    if (h.size && recv(sock, p, h.size, MSG_WAITALL) != h.size) return -1;
    return (int)h.size;
}

static uint64_t get_u64(uint32_t req)
{
    uint64_t v = 0;
    send_msg(req, 0, NULL, 0, NULL, 0);
    if (recv_reply(req, &v, 8) != 8) die("reply");
    return v;
}

static void set_u64(uint32_t req, uint64_t v, int fd)
{
    send_msg(req, 0, &v, 8, &fd, fd >= 0 ? 1 : 0);
}

/* A message with need_reply: returns the ack (0 = success). */
static uint64_t acked(uint32_t req, const void *p, uint32_t size, const int *fds, unsigned n)
{
    uint64_t v = ~0ull;
    send_msg(req, VU_FLAG_NEED_REPLY, p, size, fds, n);
    if (recv_reply(req, &v, 8) != 8) die("ack");
    return v;
}

static void set_state(uint32_t req, uint32_t idx, uint32_t num)
{
    struct vu_vring_state s = {idx, num};
    send_msg(req, 0, &s, sizeof s, NULL, 0);
}

static struct vring_desc *desc(unsigned i) { return (struct vring_desc *)(mem + DESC_GPA) + i; }
static uint16_t *avail(void) { return (uint16_t *)(mem + AVAIL_GPA); }
static uint16_t *used(void) { return (uint16_t *)(mem + USED_GPA); }

static void setup_queue(uint16_t base)
{
    set_state(VU_SET_VRING_NUM, 0, QSIZE);
    set_state(VU_SET_VRING_BASE, 0, base);
    struct vu_vring_addr a = {0,
                              0,
                              (uint64_t)(uintptr_t)(mem + DESC_GPA),
                              (uint64_t)(uintptr_t)(mem + USED_GPA),
                              (uint64_t)(uintptr_t)(mem + AVAIL_GPA),
                              0};
    send_msg(VU_SET_VRING_ADDR, 0, &a, sizeof a, NULL, 0);
    set_u64(VU_SET_VRING_KICK, 0, kickfd);
    set_u64(VU_SET_VRING_CALL, 0, callfd);
    set_u64(VU_SET_VRING_ERR, 0, errfd);
    set_state(VU_SET_VRING_ENABLE, 0, 1);
    set_state(VU_SET_VRING_ENABLE, 0, 1); /* enabling twice is harmless */
}

static uint64_t disk_sectors;

static void handshake(uint16_t base)
{
    uint64_t f = get_u64(VU_GET_FEATURES);
    CHECK(f & BIT(VHOST_USER_F_PROTOCOL_FEATURES), "no protocol features");
    CHECK(!(f & BIT(VHOST_F_LOG_ALL)), "LOG_ALL offered");
    uint64_t pf = get_u64(VU_GET_PROTOCOL_FEATURES);
    uint64_t want =
        BIT(VU_PF_MQ) | BIT(VU_PF_REPLY_ACK) | BIT(VU_PF_CONFIG) | BIT(VU_PF_CONFIGURE_MEM_SLOTS);
    CHECK((pf & want) == want, "protocol features 0x%llx", (unsigned long long)pf);
    set_u64(VU_SET_PROTOCOL_FEATURES, pf & want, -1);
    CHECK(get_u64(VU_GET_QUEUE_NUM) >= 1, "queue num");
    CHECK(get_u64(VU_GET_MAX_MEM_SLOTS) >= 8, "max mem slots");
    send_msg(VU_SET_OWNER, 0, NULL, 0, NULL, 0);
    set_u64(VU_SET_VRING_CALL, 0, callfd);
    set_u64(VU_SET_VRING_ERR, 0, errfd);
    struct vu_config cfg = {0, sizeof(struct virtio_blk_config), 0, {0}};
    send_msg(VU_GET_CONFIG, 0, &cfg, 12 + cfg.size, NULL, 0);
    CHECK(recv_reply(VU_GET_CONFIG, &cfg, sizeof cfg) == 12 + (int)sizeof(struct virtio_blk_config),
          "config size");
    struct virtio_blk_config bc;
    memcpy(&bc, cfg.payload, sizeof bc);
    disk_sectors = bc.capacity;
    CHECK(bc.seg_max > 0 && bc.blk_size == 512, "config seg_max %u blk_size %u", bc.seg_max,
          bc.blk_size);
    uint64_t feat =
        f & (BIT(VIRTIO_F_VERSION_1) | BIT(VHOST_USER_F_PROTOCOL_FEATURES) |
             BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(VIRTIO_RING_F_INDIRECT_DESC) |
             BIT(VIRTIO_BLK_F_FLUSH) | BIT(VIRTIO_BLK_F_DISCARD) | BIT(VIRTIO_BLK_F_WRITE_ZEROES) |
             BIT(VIRTIO_BLK_F_SEG_MAX) | BIT(VIRTIO_BLK_F_BLK_SIZE) | BIT(VIRTIO_BLK_F_MQ));
    /* SET_FEATURES with LOG_ALL (live migration) must be refused. */
    CHECK(acked(VU_SET_FEATURES, &(uint64_t){feat | BIT(VHOST_F_LOG_ALL)}, 8, NULL, 0) != 0,
          "LOG_ALL accepted");
    set_u64(VU_SET_FEATURES, feat, -1);
    struct vu_region r = {0, MEM_SIZE, (uint64_t)(uintptr_t)mem, 0};
    int fd = dup(memfd);
    if (use_memtable) {
        struct vu_mem_table t = {1, 0, {r}};
        CHECK(acked(VU_SET_MEM_TABLE, &t, 8 + sizeof r, &fd, 1) == 0, "SET_MEM_TABLE");
    } else {
        struct vu_mem_single s = {0, r};
        CHECK(acked(VU_ADD_MEM_REG, &s, sizeof s, &fd, 1) == 0, "ADD_MEM_REG");
        /* An overlapping region is refused (acked with failure). */
        int fd2 = dup(memfd);
        CHECK(acked(VU_ADD_MEM_REG, &s, sizeof s, &fd2, 1) != 0, "overlapping region accepted");
        /* One beyond the fd's size too. */
        struct vu_mem_single big = {0, {MEM_SIZE, MEM_SIZE, 1ull << 46, MEM_SIZE / 2}};
        fd2 = dup(memfd);
        CHECK(acked(VU_ADD_MEM_REG, &big, sizeof big, &fd2, 1) != 0, "region beyond fd accepted");
        close(fd);
    }
    if (use_memtable) close(fd);
    setup_queue(base);
}

/* Waits until the backend has used `n` more chains; returns the last elem. */
static bool wait_used(struct vring_used_elem *last)
{
    for (int i = 0; i < 5000; i++) {
        uint16_t u = __atomic_load_n(&used()[1], __ATOMIC_ACQUIRE);
        if (u != used_seen) {
            memcpy(last, (uint8_t *)(used() + 2) + 8 * (used_seen % QSIZE), sizeof *last);
            used_seen++;
            return true;
        }
        usleep(1000);
    }
    return false;
}

static void publish(uint16_t head)
{
    avail()[2 + avail_idx % QSIZE] = head;
    avail()[2 + QSIZE] = avail_idx; /* used_event: interrupt on this one */
    __atomic_store_n(&avail()[1], ++avail_idx, __ATOMIC_RELEASE);
    uint64_t one = 1;
    if (write(kickfd, &one, 8) != 8) die("kick");
}

struct seg {
    uint64_t gpa;
    uint32_t len;
    bool write;
};

/* Submits header + segs + status as a direct (or indirect) chain; returns the
 * status byte, or -1 if nothing came back in 5 s; *used_len the used length. */
static int request(uint32_t type, uint64_t sector, const struct seg *segs, unsigned n,
                   bool indirect, uint32_t *used_len)
{
    struct virtio_blk_outhdr h = {type, 0, sector};
    memcpy(mem + HDR_GPA, &h, sizeof h);
    mem[STATUS_GPA] = 0xee;
    struct vring_desc d[140];
    unsigned k = 0;
    d[k++] = (struct vring_desc){HDR_GPA, 16, VRING_DESC_F_NEXT, 1};
    for (unsigned i = 0; i < n; i++, k++)
        d[k] = (struct vring_desc){
            segs[i].gpa, segs[i].len,
            (uint16_t)(VRING_DESC_F_NEXT | (segs[i].write ? VRING_DESC_F_WRITE : 0)),
            (uint16_t)(k + 1)};
    d[k++] = (struct vring_desc){STATUS_GPA, 1, VRING_DESC_F_WRITE, 0};
    if (indirect) {
        memcpy(mem + IND_GPA, d, k * sizeof d[0]);
        *desc(0) =
            (struct vring_desc){IND_GPA, (uint32_t)(k * sizeof d[0]), VRING_DESC_F_INDIRECT, 0};
    } else {
        memcpy(desc(0), d, k * sizeof d[0]);
    }
    publish(0);
    struct vring_used_elem e;
    if (!wait_used(&e)) return -1;
    CHECK(e.id == 0, "used id %u", e.id);
    if (used_len) *used_len = e.len;
    return mem[STATUS_GPA];
}

static void pread_disk(void *buf, size_t len, uint64_t off)
{
    int fd = open(disk_path, O_RDONLY);
    if (fd < 0 || pread(fd, buf, len, (off_t)off) != (ssize_t)len) die("disk pread");
    close(fd);
}

static void test_io(void)
{
    uint32_t ul;
    /* write 64 KiB at sector 8: 16 page descriptors through an indirect table */
    struct seg pages[16];
    for (unsigned i = 0; i < 16; i++) {
        for (unsigned j = 0; j < 4096; j++) mem[DATA_GPA + i * 8192 + j] = (uint8_t)(rand());
        pages[i] = (struct seg){DATA_GPA + i * 8192, 4096, false}; /* scattered pages */
    }
    CHECK(request(VIRTIO_BLK_T_OUT, 8, pages, 16, true, &ul) == VIRTIO_BLK_S_OK, "write");
    CHECK(ul == 1, "write used len %u", ul);
    uint8_t disk[65536];
    pread_disk(disk, sizeof disk, 8 * 512);
    for (unsigned i = 0; i < 16; i++)
        CHECK(!memcmp(disk + i * 4096, mem + DATA_GPA + i * 8192, 4096), "disk page %u differs", i);
    /* read it back twice: contiguous, then scattered pages */
    for (int round = 0; round < 2; round++) {
        memset(mem + DATA2_GPA, 0, 65536);
        struct seg one = {DATA2_GPA, 65536, true};
        CHECK(request(VIRTIO_BLK_T_IN, 8, &one, 1, round, &ul) == VIRTIO_BLK_S_OK, "read");
        CHECK(ul == 65537, "read used len %u", ul);
        CHECK(!memcmp(mem + DATA2_GPA, disk, 65536), "read back differs (round %d)", round);
    }
    struct seg sc[16];
    for (unsigned i = 0; i < 16; i++) sc[i] = (struct seg){DATA2_GPA + i * 8192, 4096, true};
    memset(mem + DATA2_GPA, 0, 16 * 8192);
    CHECK(request(VIRTIO_BLK_T_IN, 8, sc, 16, false, NULL) == VIRTIO_BLK_S_OK, "scattered read");
    for (unsigned i = 0; i < 16; i++)
        CHECK(!memcmp(mem + DATA2_GPA + i * 8192, disk + i * 4096, 4096), "scattered page %u", i);
    /* unaligned segments (1536 + 2560 bytes): the bounce path */
    struct seg un[2] = {{DATA2_GPA + 100, 1536, true}, {DATA2_GPA + 8192 + 7, 2560, true}};
    CHECK(request(VIRTIO_BLK_T_IN, 9, un, 2, false, NULL) == VIRTIO_BLK_S_OK, "bounced read");
    CHECK(!memcmp(mem + DATA2_GPA + 100, disk + 512, 1536) &&
              !memcmp(mem + DATA2_GPA + 8192 + 7, disk + 512 + 1536, 2560),
          "bounced read differs");
    CHECK(request(VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false, NULL) == VIRTIO_BLK_S_OK, "flush");
    /* get-id */
    struct seg id = {DATA2_GPA, 20, true};
    CHECK(request(VIRTIO_BLK_T_GET_ID, 0, &id, 1, false, &ul) == VIRTIO_BLK_S_OK, "get-id");
    CHECK(ul == 21 && !memcmp(mem + DATA2_GPA, "remoca-vhost", 12), "get-id data");
    /* discard the first 4 KiB written, write-zeroes the next 4 KiB */
    struct virtio_blk_discard_wz dz = {8, 8, 0};
    memcpy(mem + DATA_GPA, &dz, sizeof dz);
    struct seg dseg = {DATA_GPA, 16, false};
    CHECK(request(VIRTIO_BLK_T_DISCARD, 0, &dseg, 1, false, NULL) == VIRTIO_BLK_S_OK, "discard");
    dz = (struct virtio_blk_discard_wz){16, 8, 0};
    memcpy(mem + DATA_GPA, &dz, sizeof dz);
    CHECK(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, &dseg, 1, false, NULL) == VIRTIO_BLK_S_OK, "wz");
    static const uint8_t zero[8192];
    pread_disk(disk, 8192, 8 * 512);
    CHECK(!memcmp(disk, zero, 8192), "discard/write-zeroes did not leave zeroes on disk");
    struct seg rz = {DATA2_GPA, 8192, true};
    memset(mem + DATA2_GPA, 0x55, 8192);
    CHECK(request(VIRTIO_BLK_T_IN, 8, &rz, 1, false, NULL) == VIRTIO_BLK_S_OK, "read zeroes");
    CHECK(!memcmp(mem + DATA2_GPA, zero, 8192), "zeroes not read back");
}

static void test_hostile(void)
{
    uint8_t before[4096], after[4096];
    pread_disk(before, sizeof before, 0);
    struct seg s;
    s = (struct seg){MEM_SIZE + 4096, 4096, true}; /* outside guest memory */
    CHECK(request(VIRTIO_BLK_T_IN, 0, &s, 1, false, NULL) == VIRTIO_BLK_S_IOERR, "outside");
    s = (struct seg){MEM_SIZE - 2048, 4096, true}; /* straddles the end */
    CHECK(request(VIRTIO_BLK_T_IN, 0, &s, 1, false, NULL) == VIRTIO_BLK_S_IOERR, "straddle");
    s = (struct seg){MEM_SIZE - 2048, 4096, false};
    CHECK(request(VIRTIO_BLK_T_OUT, 0, &s, 1, false, NULL) == VIRTIO_BLK_S_IOERR, "straddle w");
    s = (struct seg){DATA_GPA, 0, true}; /* zero length */
    CHECK(request(VIRTIO_BLK_T_IN, 0, &s, 1, false, NULL) == VIRTIO_BLK_S_IOERR, "zero len");
    s = (struct seg){DATA_GPA, 4096, true}; /* a write whose data is device-writable */
    CHECK(request(VIRTIO_BLK_T_OUT, 0, &s, 1, false, NULL) == VIRTIO_BLK_S_IOERR, "direction");
    s = (struct seg){DATA_GPA, 4096, true};
    CHECK(request(VIRTIO_BLK_T_IN, disk_sectors - 4, &s, 1, false, NULL) == VIRTIO_BLK_S_IOERR,
          "beyond capacity");
    CHECK(request(VIRTIO_BLK_T_IN, UINT64_MAX / 256, &s, 1, false, NULL) == VIRTIO_BLK_S_IOERR,
          "sector overflow");
    s = (struct seg){DATA_GPA, 1000, true};
    CHECK(request(VIRTIO_BLK_T_IN, 0, &s, 1, false, NULL) == VIRTIO_BLK_S_IOERR, "not 512");
    CHECK(request(77, 0, NULL, 0, false, NULL) == VIRTIO_BLK_S_UNSUPP, "unknown type");
    pread_disk(after, sizeof after, 0);
    CHECK(!memcmp(before, after, sizeof before), "a refused request changed the disk");

    /* a loop: desc 0 -> 1 -> 0: the queue breaks, err fd signalled, nothing used */
    *desc(0) = (struct vring_desc){HDR_GPA, 16, VRING_DESC_F_NEXT, 1};
    *desc(1) = (struct vring_desc){DATA_GPA, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 0};
    publish(0);
    struct pollfd p = {errfd, POLLIN, 0};
    CHECK(poll(&p, 1, 5000) == 1, "err fd not signalled for a loop");
    uint64_t v;
    if (read(errfd, &v, 8) != 8) die("err fd");
    CHECK(__atomic_load_n(&used()[1], __ATOMIC_ACQUIRE) == used_seen, "loop was completed");
    /* the driver resets the queue: GET_VRING_BASE, then a fresh start (the
     * broken chain is dropped: resume after it) */
    struct vu_vring_state st = {0, 0};
    send_msg(VU_GET_VRING_BASE, 0, &st, sizeof st, NULL, 0);
    CHECK(recv_reply(VU_GET_VRING_BASE, &st, sizeof st) == sizeof st, "GET_VRING_BASE");
    CHECK(st.num == avail_idx, "base %u after the loop, avail %u", st.num, avail_idx);
    /* a driver reset rewrites the used ring: used idx = what was taken */
    __atomic_store_n(&used()[1], avail_idx, __ATOMIC_RELEASE);
    used_seen = avail_idx;
    setup_queue(avail_idx);
    s = (struct seg){DATA2_GPA, 4096, true};
    CHECK(request(VIRTIO_BLK_T_IN, 0, &s, 1, false, NULL) == VIRTIO_BLK_S_OK, "after reset");
}

static void test_reconnect(void)
{
    /* a write, then a disconnect without GET_VRING_BASE (QEMU that lost the
     * backend); a new connection resumes from the used index */
    for (unsigned j = 0; j < 4096; j++) mem[DATA_GPA + j] = (uint8_t)(j * 7 + 3);
    struct seg s = {DATA_GPA, 4096, false};
    CHECK(request(VIRTIO_BLK_T_OUT, 64, &s, 1, false, NULL) == VIRTIO_BLK_S_OK, "write");
    close(sock);
    connect_backend();
    handshake(used_seen);
    s = (struct seg){DATA2_GPA, 4096, true};
    memset(mem + DATA2_GPA, 0, 4096);
    CHECK(request(VIRTIO_BLK_T_IN, 64, &s, 1, false, NULL) == VIRTIO_BLK_S_OK,
          "read after reconnect");
    CHECK(!memcmp(mem + DATA2_GPA, mem + DATA_GPA, 4096), "data lost across reconnect");

    /* a malformed message: size above any payload -> the backend closes */
    struct vu_hdr h = {VU_GET_FEATURES, VU_FLAG_VERSION, 4096};
    if (send(sock, &h, sizeof h, MSG_NOSIGNAL) != sizeof h) die("send");
    char c;
    struct pollfd p = {sock, POLLIN, 0};
    CHECK(poll(&p, 1, 5000) == 1 && recv(sock, &c, 1, 0) == 0, "bad message did not close");
    close(sock);
    /* an unknown request closes too */
    connect_backend();
    send_msg(200, 0, NULL, 0, NULL, 0);
    p = (struct pollfd){sock, POLLIN, 0};
    CHECK(poll(&p, 1, 5000) == 1 && recv(sock, &c, 1, 0) == 0, "unknown request did not close");
    close(sock);
    /* and the backend still serves the next front end */
    connect_backend();
    handshake(used_seen);
    CHECK(request(VIRTIO_BLK_T_IN, 64, &s, 1, false, NULL) == VIRTIO_BLK_S_OK, "read after all");
    /* an orderly stop, as QEMU at shutdown */
    set_state(VU_SET_VRING_ENABLE, 0, 0);
    struct vu_vring_state st = {0, 0};
    send_msg(VU_GET_VRING_BASE, 0, &st, sizeof st, NULL, 0);
    CHECK(recv_reply(VU_GET_VRING_BASE, &st, sizeof st) == sizeof st && st.num == avail_idx,
          "final base %u, avail %u", st.num, avail_idx);
    close(sock);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: vhost_driver SOCKET DISK-FILE [--memtable]\n");
        return 2;
    }
    sock_path = argv[1];
    disk_path = argv[2];
    use_memtable = argc > 3 && !strcmp(argv[3], "--memtable");
    srand((unsigned)time(NULL));
    memfd = memfd_create("guest-ram", MFD_CLOEXEC);
    if (memfd < 0 || ftruncate(memfd, MEM_SIZE) < 0) die("memfd");
    mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (mem == MAP_FAILED) die("mmap");
    kickfd = eventfd(0, EFD_CLOEXEC);
    callfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    errfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    connect_backend();
    handshake(0);
    test_io();
    test_hostile();
    test_reconnect();
    uint64_t calls = 0;
    if (read(callfd, &calls, 8) != 8) calls = 0;
    CHECK(calls > 0, "the call fd was never signalled");
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("PASS\n");
    return 0;
}
