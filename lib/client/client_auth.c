/* SPDX-License-Identifier: BSD-3-Clause */
/* The client's half of memory-server authentication (docs/protocol.md,
 * Authentication): the server answers HELLO with "challenge <32 hex digits>";
 * the client proves it knows the secret with
 *   credential = HMAC-SHA256(key = secret, message = nonce || client name).
 * Used by the client core's handshake and by `remoca stats`. */
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "client_internal.h"

bool rc_auth_parse_challenge(const char *msg, size_t len, uint8_t nonce[RC_AUTH_NONCE_BYTES])
{
    static const char prefix[] = "challenge ";
    const size_t plen = sizeof prefix - 1;
    if (len != plen + 2 * RC_AUTH_NONCE_BYTES || strncmp(msg, prefix, plen) != 0) return false;
    const char *hex = msg + plen;
    for (unsigned i = 0; i < RC_AUTH_NONCE_BYTES; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)hex[2 * i]) || !isxdigit((unsigned char)hex[2 * i + 1]) ||
            sscanf(hex + 2 * i, "%2x", &v) != 1)
            return false;
        nonce[i] = (uint8_t)v;
    }
    return true;
}

bool rc_auth_credential(const void *secret, size_t secret_len,
                        const uint8_t nonce[RC_AUTH_NONCE_BYTES], const char *name, size_t name_len,
                        uint8_t mac[RC_AUTH_MAC_BYTES], unsigned *mac_len)
{
    uint8_t m[RC_AUTH_NONCE_BYTES + REMOCA_MAX_NAME];
    if (name_len > REMOCA_MAX_NAME) return false;
    memcpy(m, nonce, RC_AUTH_NONCE_BYTES);
    memcpy(m + RC_AUTH_NONCE_BYTES, name, name_len);
    *mac_len = RC_AUTH_MAC_BYTES;
    return HMAC(EVP_sha256(), secret, (int)secret_len, m, RC_AUTH_NONCE_BYTES + name_len, mac,
                mac_len) != NULL;
}
