/* SPDX-License-Identifier: BSD-3-Clause */
/* SIZE arguments ("64M", "2G", "512MiB"), shared by remoca-memd's and
 * remoca serve's command lines so that both accept exactly the same forms. */
#ifndef REMOCA_LIB_SIZE_H
#define REMOCA_LIB_SIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "remoca/wire.h"

/* Parses SIZE: a number with an optional K, M, G or T suffix (powers of
 * 1024, optionally followed by "B" or "iB").  Returns 0, or -1 if malformed
 * or beyond 64 bits. */
int parse_size(const char *s, uint64_t *out);

/* remoca-memd --memory (which remoca serve checks before starting one): at
 * least 1 MiB, and fewer pages (4 KiB) than a 32-bit page index can name. */
#define MEMD_MEMORY_MIN (1ull << 20)
static inline bool memd_memory_too_big(uint64_t bytes)
{
    return (bytes >> REMOCA_PAGE_SHIFT) >= UINT32_MAX;
}

#endif
