/* SIZE arguments ("64M", "2G", "512MiB"), shared by remoca-memd's and
 * remoca serve's command lines so that both accept exactly the same forms. */
#ifndef REMOCA_LIB_SIZE_H
#define REMOCA_LIB_SIZE_H

#include <stdint.h>

/* Parses SIZE: a number with an optional K, M, G or T suffix (powers of
 * 1024, optionally followed by "B" or "iB").  Returns 0, or -1 if malformed
 * or beyond 64 bits. */
int parse_size(const char *s, uint64_t *out);

#endif
