/* SPDX-License-Identifier: BSD-3-Clause */
/* Wire formats remoca-vhost speaks, written from the specifications:
 * QEMU's docs/interop/vhost-user.rst (the front end's messages), and virtio 1.x
 * (2.7 split virtqueues, 5.2 block device).  Little-endian throughout; this
 * backend runs on little-endian hosts only (x86_64, aarch64), which the build
 * checks below.  Nothing here does I/O.
 *
 *   vhost-user message on the unix socket (fds ride on its first byte):
 *   ┌──────────┬──────────┬──────────┬──────────────────────────────────┐
 *   │ request  │ flags    │ size     │ payload (size bytes, <= union)   │
 *   │ u32      │ u32      │ u32      │ u64 | vring state | vring addr | │
 *   │          │ ver=1    │          │ mem table | one region | config  │
 *   │          │ 4:reply  │          │ | inflight                       │
 *   │          │ 8:need_r │          │                                  │
 *   └──────────┴──────────┴──────────┴──────────────────────────────────┘
 */
#ifndef REMOCA_VHOST_PROTO_H
#define REMOCA_VHOST_PROTO_H

#include <stdint.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "remoca-vhost reads virtio's little-endian rings natively: little-endian hosts only"
#endif

/* ---- vhost-user requests (front end -> back end) ---------------------- */
enum vu_request {
    VU_GET_FEATURES = 1,
    VU_SET_FEATURES = 2,
    VU_SET_OWNER = 3,
    VU_RESET_OWNER = 4,
    VU_SET_MEM_TABLE = 5,
    VU_SET_LOG_BASE = 6,
    VU_SET_LOG_FD = 7,
    VU_SET_VRING_NUM = 8,
    VU_SET_VRING_ADDR = 9,
    VU_SET_VRING_BASE = 10,
    VU_GET_VRING_BASE = 11,
    VU_SET_VRING_KICK = 12,
    VU_SET_VRING_CALL = 13,
    VU_SET_VRING_ERR = 14,
    VU_GET_PROTOCOL_FEATURES = 15,
    VU_SET_PROTOCOL_FEATURES = 16,
    VU_GET_QUEUE_NUM = 17,
    VU_SET_VRING_ENABLE = 18,
    VU_SET_SLAVE_REQ_FD = 21,
    VU_GET_CONFIG = 24,
    VU_SET_CONFIG = 25,
    VU_GET_INFLIGHT_FD = 31,
    VU_SET_INFLIGHT_FD = 32,
    VU_RESET_DEVICE = 34,
    VU_GET_MAX_MEM_SLOTS = 36,
    VU_ADD_MEM_REG = 37,
    VU_REM_MEM_REG = 38,
    VU_REQUEST_MAX = 41, /* requests are < this */
};

#define VU_FLAG_VERSION 0x1u
#define VU_FLAG_VERSION_MASK 0x3u
#define VU_FLAG_REPLY 0x4u
#define VU_FLAG_NEED_REPLY 0x8u

#define VU_MAX_FDS 8           /* fds one message may carry */
#define VU_MEM_TABLE_REGIONS 8 /* SET_MEM_TABLE's fixed array */
#define VU_MAX_MEM_SLOTS 32    /* what GET_MAX_MEM_SLOTS answers: the table's size */
#define VU_CONFIG_MAX 256      /* config payload bytes */

/* SET_VRING_KICK/CALL/ERR u64: queue index in bits 0-7, bit 8 = no fd. */
#define VU_VRING_IDX_MASK 0xffu
#define VU_VRING_NOFD (1u << 8)

/* ---- feature bits ----------------------------------------------------- */
/* virtio device features (GET/SET_FEATURES) */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VHOST_F_LOG_ALL 26 /* dirty logging for live migration: never offered */
#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VIRTIO_F_VERSION_1 32

/* protocol features (GET/SET_PROTOCOL_FEATURES) */
#define VU_PF_MQ 0
#define VU_PF_LOG_SHMFD 1
#define VU_PF_REPLY_ACK 3
#define VU_PF_SLAVE_REQ 5
#define VU_PF_CONFIG 9
#define VU_PF_INFLIGHT_SHMFD 12
#define VU_PF_RESET_DEVICE 13
#define VU_PF_CONFIGURE_MEM_SLOTS 15

/* ---- payloads --------------------------------------------------------- */
struct vu_vring_state {
    uint32_t index;
    uint32_t num;
};

struct vu_vring_addr {
    uint32_t index;
    uint32_t flags; /* bit 0: log the used ring (not supported) */
    uint64_t desc;  /* QEMU virtual addresses */
    uint64_t used;
    uint64_t avail;
    uint64_t log;
};

struct vu_region {
    uint64_t gpa;         /* guest physical address */
    uint64_t size;        /* bytes */
    uint64_t uva;         /* QEMU's virtual address of the region */
    uint64_t mmap_offset; /* where the region starts in its fd */
};

struct vu_mem_table {
    uint32_t nregions;
    uint32_t padding;
    struct vu_region regions[VU_MEM_TABLE_REGIONS];
};

struct vu_mem_single {
    uint64_t padding;
    struct vu_region region;
};

struct vu_config {
    uint32_t offset;
    uint32_t size;
    uint32_t flags;
    uint8_t payload[VU_CONFIG_MAX];
};

struct vu_inflight {
    uint64_t mmap_size;
    uint64_t mmap_offset;
    uint16_t num_queues;
    uint16_t queue_size;
};

union vu_payload {
    uint64_t u64;
    struct vu_vring_state state;
    struct vu_vring_addr addr;
    struct vu_mem_table mem;
    struct vu_mem_single reg;
    struct vu_config config;
    struct vu_inflight inflight;
};

struct vu_hdr {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
};

/* ---- split virtqueue (virtio 1.x 2.7) --------------------------------- */
#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1
#define VRING_MAX_SIZE 32768u /* split rings: a power of 2 up to this */

struct vring_desc {
    uint64_t addr; /* guest physical */
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct vring_used_elem {
    uint32_t id;
    uint32_t len;
};

/* ---- virtio-blk (5.2) ------------------------------------------------- */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_WZ_F_UNMAP 1u

struct virtio_blk_outhdr {
    uint32_t type;
    uint32_t ioprio;
    uint64_t sector;
};

struct virtio_blk_discard_wz {
    uint64_t sector;
    uint32_t num_sectors;
    uint32_t flags;
};

/* Config space, the fields this backend fills (offsets fixed by the spec). */
struct __attribute__((packed)) virtio_blk_config {
    uint64_t capacity; /* 512-byte sectors */
    uint32_t size_max;
    uint32_t seg_max;
    uint16_t cylinders;
    uint8_t heads;
    uint8_t sectors;
    uint32_t blk_size;
    uint8_t physical_block_exp;
    uint8_t alignment_offset;
    uint16_t min_io_size;
    uint32_t opt_io_size;
    uint8_t writeback;
    uint8_t unused0;
    uint16_t num_queues;
    uint32_t max_discard_sectors;
    uint32_t max_discard_seg;
    uint32_t discard_sector_alignment;
    uint32_t max_write_zeroes_sectors;
    uint32_t max_write_zeroes_seg;
    uint8_t write_zeroes_may_unmap;
    uint8_t unused1[3];
};

_Static_assert(sizeof(struct vu_hdr) == 12, "vhost-user header");
_Static_assert(sizeof(struct vu_vring_addr) == 40, "vring addr");
_Static_assert(sizeof(struct vu_mem_table) == 8 + 8 * 32, "memory table");
_Static_assert(sizeof(struct vu_mem_single) == 40, "single region");
_Static_assert(sizeof(struct vring_desc) == 16, "descriptor");
_Static_assert(sizeof(struct virtio_blk_outhdr) == 16, "blk header");
_Static_assert(sizeof(struct virtio_blk_discard_wz) == 16, "discard segment");
_Static_assert(sizeof(struct virtio_blk_config) == 60, "blk config");

#endif
