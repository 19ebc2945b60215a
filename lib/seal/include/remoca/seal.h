/* SPDX-License-Identifier: BSD-3-Clause */
/* libremoca seal: per-page authenticated encryption of the remote tier, on the
 * client (issue 14).  The key never leaves the VM host; a memory server (or
 * anyone on the path to it) sees only AES-256-GCM ciphertext, and whatever it
 * returns is either a page this client sealed for that block, that pool and
 * the block's current version, or a miss: never data.
 *
 *   engine (lib/cache) ──struct remoca_remote_ops──▶ remoca_seal ──struct
 *        write_begin/write_end: unit versions         remoca_sealed_ops──▶ sealed
 *                                                     (page + 32-byte       remote
 *                                                      sidecar per block)   (client)
 *
 * Pass &remoca_seal_remote_ops and the struct remoca_seal as the engine's
 * remote and remote_ctx.  The layout of a sidecar, the AAD, the nonces and
 * the replay argument are in lib/seal/seal.c.
 */
#ifndef REMOCA_SEAL_H
#define REMOCA_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "remoca/cache.h"

#define REMOCA_SEAL_SIDE 32u       /* sidecar bytes per 4 KiB page */
#define REMOCA_SEAL_KEY_MIN 32u    /* a master key has at least this many bytes */
#define REMOCA_SEAL_KEY_MAX 4096u  /* and at most this many */
#define REMOCA_SEAL_POOL_MAX 1000u /* pool name bytes (HKDF info <= 1024) */

/* The sealed remote: pages and their sidecars (page i at pages + i*4096,
 * sidecar i at sides + i*32).  The same verbs and ordering guarantees as
 * struct remoca_remote_ops; a miss's page and sidecar are garbage.  Bound to
 * the client's remoca_get_sealed / remoca_put_sealed (opts.sealed). */
struct remoca_sealed_ops {
    unsigned (*get_sealed)(void *ctx, uint64_t key, uint32_t count, void *pages, void *sides,
                           uint64_t *hits);
    /* NULL in an inclusive-only remote. */
    unsigned (*take_sealed)(void *ctx, uint64_t key, uint32_t count, void *pages, void *sides,
                            uint64_t *hits);
    int (*put_sealed)(void *ctx, uint64_t key, uint32_t count, const void *pages,
                      const void *sides);
    int (*del)(void *ctx, uint64_t key, uint64_t count);
    int (*reset)(void *ctx);
};

struct remoca_seal_opts {
    const struct remoca_sealed_ops *remote;
    void *remote_ctx;
    /* The master secret (REMOCA_SEAL_KEY_MIN..MAX bytes), e.g. from
     * remoca_seal_load_key; copied.  NULL: a random 32-byte master for this
     * instance (sealing works the same; nothing sealed survives the process,
     * which a pool reset at connect discards anyway). */
    const void *key;
    size_t key_len;
    const char *pool; /* the pool name, bound into every page's AAD */
    uint64_t nblocks; /* the disk's whole 4 KiB blocks: keys >= nblocks never hit */
    /* Called once per instance, at the first page that fails verification
     * (and at a rekey); NULL: stderr. */
    void (*log)(void *arg, const char *msg);
    void *log_arg;
    /* Tests only: a fixed 16-byte HKDF salt for the first session key (a
     * rekey's is always random) instead of a fresh random one.
     * Never in production: two instances with the same master, pool and salt
     * would reuse nonces. */
    const uint8_t *test_salt;
};

struct remoca_seal_stats {
    uint64_t seals;              /* pages sealed and put */
    uint64_t opens;              /* hits that verified: served */
    uint64_t integrity_failures; /* hits that failed the tag (bit flip, another block, pool or
                                    key), or a genuine page older than its unit's version
                                    where no write could explain it (a replay): misses */
    uint64_t stale;              /* genuine pages of an older version while a write to the unit
                                    was in flight (an honest race): misses */
    uint64_t seal_errors;        /* puts dropped: a cipher failure, a key out of nonces */
    uint64_t rekeys;             /* a unit's version wrapped: new session key, pool reset */
    uint64_t version_bytes;      /* client memory of the unit versions (a gauge) */
};

struct remoca_seal;

/* NULL with a message in err on bad options, a cipher failure or no memory. */
struct remoca_seal *remoca_seal_new(const struct remoca_seal_opts *o, char *err, size_t errlen);
void remoca_seal_free(struct remoca_seal *s);

/* The engine's remote ops over a struct remoca_seal (ctx). */
extern const struct remoca_remote_ops remoca_seal_remote_ops;

void remoca_seal_get_stats(const struct remoca_seal *s, struct remoca_seal_stats *st);
/* "name=value\n" lines (prefix + counter name) into buf; returns the length
 * it needed (like snprintf). */
size_t remoca_seal_format_stats(const struct remoca_seal_stats *st, const char *prefix, char *buf,
                                size_t len);

/* Reads a key file: its whole content, byte for byte (a trailing newline
 * included), is the master secret, REMOCA_SEAL_KEY_MIN to _MAX bytes; make
 * one with `head -c 32 /dev/urandom > FILE; chmod 600 FILE`.  Refuses a file
 * that is not regular or that others may read (mode & 004).  Returns the
 * length (into key, cap >= REMOCA_SEAL_KEY_MAX), or -1 with a message. */
int remoca_seal_load_key(const char *path, uint8_t *key, size_t cap, char *err, size_t errlen);

/* ---- with a libremoca client (lib/seal/seal_client.c) ------------------ */

/* The sealed remote over a struct remoca_client (ctx) opened with
 * opts.sealed: remoca_get_sealed / remoca_put_sealed. */
extern const struct remoca_sealed_ops remoca_client_sealed_ops;

/* The front ends' remoca-seal= / --seal=: on, off, or auto (the default):
 * sealed when any server of the list is reached over the network (host:port
 * or memcached:host:port), plain when all are unix sockets on this host. */
enum remoca_seal_mode { REMOCA_SEAL_AUTO = 0, REMOCA_SEAL_ON, REMOCA_SEAL_OFF };
/* 0, or -1 if s is not on, off or auto. */
int remoca_seal_mode_parse(const char *s, enum remoca_seal_mode *m);
/* Whether mode m seals for this server list (the syntax of opts.servers). */
bool remoca_seal_wanted(enum remoca_seal_mode m, const char *servers);

#endif
