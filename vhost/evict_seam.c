/* SPDX-License-Identifier: BSD-3-Clause */
/* Exclusive mode's seam (evict_seam.h): no-ops until the engine's eviction
 * inference exists (lib/cache). */
#include "evict_seam.h"

void before_read_overwrites(const struct vh_page *pages, size_t n)
{
    (void)pages;
    (void)n;
}

void after_request_completed(const struct vh_page *pages, size_t n)
{
    (void)pages;
    (void)n;
}
