/* SPDX-License-Identifier: BSD-3-Clause */
/* Shared-secret authentication of clients (--secret / --secret-file):
 * HMAC-SHA256 challenge-response carried by HELLO, with no change to the frame
 * layout.
 *
 *   client                                   server (--secret S)
 *   HELLO name, cred = ""           ----->
 *                                   <-----   E_AUTH, payload "challenge <32 hex>"
 *   HELLO name, cred = HMAC-SHA256(S, nonce || name)  (32 raw bytes)
 *                                   ----->   verified: OK (else E_AUTH + new
 *                                            challenge; the 3rd failure closes)
 *
 * The nonce is 16 random bytes, new for every challenge, so a recorded
 * response cannot be replayed.  Without --secret, credentials are ignored. */
#ifndef MEMD_AUTH_H
#define MEMD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_NONCE 16u
#define AUTH_MAC 32u

struct auth {
    uint8_t secret[256];
    size_t len; /* 0 = authentication off */
};

/* Fills nonce with random bytes. */
void auth_new_nonce(uint8_t nonce[AUTH_NONCE]);
/* HMAC-SHA256(secret, nonce || name) into mac. */
void auth_mac(const uint8_t *secret, size_t secret_len, const uint8_t nonce[AUTH_NONCE],
              const char *name, size_t name_len, uint8_t mac[AUTH_MAC]);
/* Constant-time check of a client's credential. */
bool auth_verify(const struct auth *a, const uint8_t nonce[AUTH_NONCE], const char *name,
                 size_t name_len, const uint8_t *cred, size_t cred_len);

#endif
