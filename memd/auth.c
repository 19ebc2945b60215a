/* SPDX-License-Identifier: BSD-3-Clause */
/* HMAC-SHA256 challenge-response (see auth.h), on OpenSSL's libcrypto. */
#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

void auth_new_nonce(uint8_t nonce[AUTH_NONCE])
{
    size_t got = 0;
    while (got < AUTH_NONCE) {
        ssize_t n = getrandom(nonce + got, AUTH_NONCE - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
    if (got < AUTH_NONCE) { /* never expected; still unpredictable enough to not repeat */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        memcpy(nonce, &ts, sizeof ts < AUTH_NONCE ? sizeof ts : AUTH_NONCE);
    }
}

void auth_mac(const uint8_t *secret, size_t secret_len, const uint8_t nonce[AUTH_NONCE],
              const char *name, size_t name_len, uint8_t mac[AUTH_MAC])
{
    uint8_t msg[AUTH_NONCE + 256];
    if (name_len > 256) name_len = 256;
    memcpy(msg, nonce, AUTH_NONCE);
    memcpy(msg + AUTH_NONCE, name, name_len);
    unsigned int len = AUTH_MAC;
    HMAC(EVP_sha256(), secret, (int)secret_len, msg, AUTH_NONCE + name_len, mac, &len);
}

bool auth_verify(const struct auth *a, const uint8_t nonce[AUTH_NONCE], const char *name,
                 size_t name_len, const uint8_t *cred, size_t cred_len)
{
    if (cred_len != AUTH_MAC) return false;
    uint8_t want[AUTH_MAC];
    auth_mac(a->secret, a->len, nonce, name, name_len, want);
    return CRYPTO_memcmp(want, cred, AUTH_MAC) == 0;
}
