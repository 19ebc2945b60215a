/* SPDX-License-Identifier: BSD-3-Clause */
/* Directory: which blocks may be held by the remote tier (lib/cache/dir.c). */
#ifndef REMOCA_LIB_DIR_H
#define REMOCA_LIB_DIR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct remoca_dir {
    uint64_t nblocks;
    _Atomic uint64_t *words; /* bit b of words[b/64]: block b may be remote */
};

int dir_init(struct remoca_dir *d, uint64_t nblocks);
void dir_destroy(struct remoca_dir *d);
bool dir_test(const struct remoca_dir *d, uint64_t b);
/* Clears bit b; returns whether it was set. */
bool dir_test_clear(struct remoca_dir *d, uint64_t b);
/* Ranges [b, b+n) with b+n <= nblocks; n == 0 does nothing. */
void dir_set_range(struct remoca_dir *d, uint64_t b, uint64_t n);
/* Clears the range; returns how many of its bits were set. */
uint64_t dir_clear_range(struct remoca_dir *d, uint64_t b, uint64_t n);
void dir_clear_all(struct remoca_dir *d);
uint64_t dir_count(const struct remoca_dir *d);

#endif
