/* SPDX-License-Identifier: BSD-3-Clause */
/* The primitives of lib/seal/seal.c, for its unit tests (known answers,
 * benchmark).  Private to lib/seal. */
#ifndef REMOCA_SEAL_INTERNAL_H
#define REMOCA_SEAL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define SEAL_NONCE 12u
#define SEAL_TAG 16u

/* HKDF-SHA256 (RFC 5869), extract and expand.  0 or -1. */
int seal_hkdf(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt, size_t saltlen,
              const uint8_t *info, size_t infolen, uint8_t *out, size_t outlen);
/* AES-256-GCM of len bytes with a 96-bit nonce, exactly as a page is sealed
 * (out may equal in).  0 or -1. */
int seal_gcm_seal(const uint8_t key[32], const uint8_t nonce[SEAL_NONCE], const uint8_t *aad,
                  size_t aadlen, const uint8_t *in, uint8_t *out, size_t len,
                  uint8_t tag[SEAL_TAG]);
/* The inverse: 0 if the tag verifies (out holds the plaintext), else -1. */
int seal_gcm_open(const uint8_t key[32], const uint8_t nonce[SEAL_NONCE], const uint8_t *aad,
                  size_t aadlen, const uint8_t *in, uint8_t *out, size_t len,
                  const uint8_t tag[SEAL_TAG]);
/* The AAD of a page: "RMC1" || u32 LE pool length || pool || u64 LE block ||
 * u32 LE version.  Returns its length (<= 16 + REMOCA_SEAL_POOL_MAX). */
size_t seal_aad(uint8_t *out, const char *pool, uint64_t block, uint32_t version);

struct remoca_seal;
/* Tests: set unit's version (to test a wrap); the unit's version. */
void seal_test_set_version(struct remoca_seal *s, uint64_t unit, uint32_t v);
uint32_t seal_test_version(struct remoca_seal *s, uint64_t unit);
/* Tests: set the session key's next nonce counter. */
void seal_test_set_counter(struct remoca_seal *s, uint64_t next);

#endif
