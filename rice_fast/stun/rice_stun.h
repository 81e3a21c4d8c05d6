/* C helpers shared by the STUN Cython modules: pre-keyed HMAC contexts,
 * CRC-32 for FINGERPRINT and a constant-time comparison.
 *
 * The HMAC contexts keep the SHA state after hashing (key ^ ipad) and
 * (key ^ opad), so a message costs two hash finalisations and no re-keying.
 * OpenSSL's low-level SHA interfaces are deprecated in 3.0 but remain the
 * only way to copy a mid-stream state without an allocation.
 */
#ifndef RICE_STUN_H
#define RICE_STUN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

typedef struct {
    SHA_CTX sha1_inner;
    SHA_CTX sha1_outer;
    SHA256_CTX sha256_inner;
    SHA256_CTX sha256_outer;
} rice_hmac_key;

static void rice_hmac_key_init(rice_hmac_key *k, const uint8_t *key, size_t len)
{
    uint8_t block[64];
    uint8_t pad[64];
    size_t i;

    /* SHA-1 and SHA-256 both use 64-byte blocks; a longer key is hashed
     * first with the function the context is for (RFC 2104 section 2). */
    memset(block, 0, sizeof block);
    if (len > 64) {
        SHA1(key, len, block);
    } else {
        memcpy(block, key, len);
    }
    for (i = 0; i < 64; i++) pad[i] = block[i] ^ 0x36;
    SHA1_Init(&k->sha1_inner);
    SHA1_Update(&k->sha1_inner, pad, 64);
    for (i = 0; i < 64; i++) pad[i] = block[i] ^ 0x5c;
    SHA1_Init(&k->sha1_outer);
    SHA1_Update(&k->sha1_outer, pad, 64);

    memset(block, 0, sizeof block);
    if (len > 64) {
        SHA256(key, len, block);
    } else {
        memcpy(block, key, len);
    }
    for (i = 0; i < 64; i++) pad[i] = block[i] ^ 0x36;
    SHA256_Init(&k->sha256_inner);
    SHA256_Update(&k->sha256_inner, pad, 64);
    for (i = 0; i < 64; i++) pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&k->sha256_outer);
    SHA256_Update(&k->sha256_outer, pad, 64);

    OPENSSL_cleanse(block, sizeof block);
    OPENSSL_cleanse(pad, sizeof pad);
}

static void rice_hmac_key_clear(rice_hmac_key *k)
{
    OPENSSL_cleanse(k, sizeof *k);
}

/* HMAC-SHA1 over a STUN message prefix whose header length field is
 * replaced by `length`: `head` is the 20-byte header, `body` the bytes after
 * it. Writes 20 bytes to `out`. */
static void rice_hmac_sha1_stun(const rice_hmac_key *k, const uint8_t *head,
                                uint16_t length, const uint8_t *body,
                                size_t body_len, uint8_t *out)
{
    SHA_CTX ctx;
    uint8_t header[20];
    uint8_t inner[SHA_DIGEST_LENGTH];

    memcpy(header, head, 20);
    header[2] = (uint8_t)(length >> 8);
    header[3] = (uint8_t)length;
    ctx = k->sha1_inner;
    SHA1_Update(&ctx, header, 20);
    SHA1_Update(&ctx, body, body_len);
    SHA1_Final(inner, &ctx);
    ctx = k->sha1_outer;
    SHA1_Update(&ctx, inner, sizeof inner);
    SHA1_Final(out, &ctx);
}

static void rice_hmac_sha256_stun(const rice_hmac_key *k, const uint8_t *head,
                                  uint16_t length, const uint8_t *body,
                                  size_t body_len, uint8_t *out)
{
    SHA256_CTX ctx;
    uint8_t header[20];
    uint8_t inner[SHA256_DIGEST_LENGTH];

    memcpy(header, head, 20);
    header[2] = (uint8_t)(length >> 8);
    header[3] = (uint8_t)length;
    ctx = k->sha256_inner;
    SHA256_Update(&ctx, header, 20);
    SHA256_Update(&ctx, body, body_len);
    SHA256_Final(inner, &ctx);
    ctx = k->sha256_outer;
    SHA256_Update(&ctx, inner, sizeof inner);
    SHA256_Final(out, &ctx);
}

/* Plain HMACs over one buffer, for callers outside the STUN framing. */
static void rice_hmac_sha1(const rice_hmac_key *k, const uint8_t *data,
                           size_t len, uint8_t *out)
{
    SHA_CTX ctx;
    uint8_t inner[SHA_DIGEST_LENGTH];

    ctx = k->sha1_inner;
    SHA1_Update(&ctx, data, len);
    SHA1_Final(inner, &ctx);
    ctx = k->sha1_outer;
    SHA1_Update(&ctx, inner, sizeof inner);
    SHA1_Final(out, &ctx);
}

static void rice_hmac_sha256(const rice_hmac_key *k, const uint8_t *data,
                             size_t len, uint8_t *out)
{
    SHA256_CTX ctx;
    uint8_t inner[SHA256_DIGEST_LENGTH];

    ctx = k->sha256_inner;
    SHA256_Update(&ctx, data, len);
    SHA256_Final(inner, &ctx);
    ctx = k->sha256_outer;
    SHA256_Update(&ctx, inner, sizeof inner);
    SHA256_Final(out, &ctx);
}

static int rice_ct_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

/* CRC-32 (ISO-HDLC, the zlib polynomial), slicing by eight bytes. */
static uint32_t rice_crc_table[8][256];
static int rice_crc_ready = 0;

static void rice_crc32_init(void)
{
    uint32_t i, j, c;

    if (rice_crc_ready) return;
    for (i = 0; i < 256; i++) {
        c = i;
        for (j = 0; j < 8; j++) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
        rice_crc_table[0][i] = c;
    }
    for (i = 0; i < 256; i++) {
        c = rice_crc_table[0][i];
        for (j = 1; j < 8; j++) {
            c = rice_crc_table[0][c & 0xFF] ^ (c >> 8);
            rice_crc_table[j][i] = c;
        }
    }
    rice_crc_ready = 1;
}

static uint32_t rice_crc32(const uint8_t *p, size_t len)
{
    uint32_t c = 0xFFFFFFFFu;
    uint32_t lo, hi;

    while (len >= 8) {
        lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                  (uint32_t)p[3] << 24);
        hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
             (uint32_t)p[7] << 24;
        c = rice_crc_table[7][lo & 0xFF] ^ rice_crc_table[6][(lo >> 8) & 0xFF] ^
            rice_crc_table[5][(lo >> 16) & 0xFF] ^ rice_crc_table[4][lo >> 24] ^
            rice_crc_table[3][hi & 0xFF] ^ rice_crc_table[2][(hi >> 8) & 0xFF] ^
            rice_crc_table[1][(hi >> 16) & 0xFF] ^ rice_crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) c = rice_crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static inline uint16_t rice_load16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t rice_load32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static inline void rice_store16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void rice_store32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
