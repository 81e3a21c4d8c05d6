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

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RICE_CRC_PCLMUL 1
#include <immintrin.h>

static int rice_crc_pclmul = -1;

/* CRC-32 of buf[0:len] by carry-less multiplication, folding 16 bytes at a
 * time, for len >= 64 and a multiple of 16. `crc` is the running register
 * value (already inverted at the start), and so is the result. The folding
 * constants are x^(128*k +- 32) mod P for the bit-reflected polynomial,
 * and the last two are P itself and floor(x^64 / P), for the Barrett
 * reduction (Intel, "Fast CRC Computation for Generic Polynomials Using
 * PCLMULQDQ Instruction", 2009). */
__attribute__((target("pclmul,sse4.1")))
static uint32_t rice_crc32_fold(const uint8_t *buf, size_t len, uint32_t crc)
{
    const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596LL, 0x0154442bd4LL);
    const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009eLL, 0x01751997d0LL);
    const __m128i k5k0 = _mm_set_epi64x(0, 0x0163cd6124LL);
    const __m128i poly = _mm_set_epi64x(0x01f7011641LL, 0x01db710641LL);
    const __m128i mask32 = _mm_setr_epi32(~0, 0, ~0, 0);
    __m128i x0, x1, x2, x3, x4, x5, x6, x7, x8;

    x1 = _mm_loadu_si128((const __m128i *)(buf + 0x00));
    x2 = _mm_loadu_si128((const __m128i *)(buf + 0x10));
    x3 = _mm_loadu_si128((const __m128i *)(buf + 0x20));
    x4 = _mm_loadu_si128((const __m128i *)(buf + 0x30));
    x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
    buf += 64;
    len -= 64;
    while (len >= 64) {
        x5 = _mm_clmulepi64_si128(x1, k1k2, 0x00);
        x6 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
        x7 = _mm_clmulepi64_si128(x3, k1k2, 0x00);
        x8 = _mm_clmulepi64_si128(x4, k1k2, 0x00);
        x1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
        x2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
        x3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
        x4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(x1, x5),
                           _mm_loadu_si128((const __m128i *)(buf + 0x00)));
        x2 = _mm_xor_si128(_mm_xor_si128(x2, x6),
                           _mm_loadu_si128((const __m128i *)(buf + 0x10)));
        x3 = _mm_xor_si128(_mm_xor_si128(x3, x7),
                           _mm_loadu_si128((const __m128i *)(buf + 0x20)));
        x4 = _mm_xor_si128(_mm_xor_si128(x4, x8),
                           _mm_loadu_si128((const __m128i *)(buf + 0x30)));
        buf += 64;
        len -= 64;
    }
    /* Fold the four lanes into one. */
    x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
    x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x3), x5);
    x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
    x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
    x1 = _mm_xor_si128(_mm_xor_si128(x1, x4), x5);
    while (len >= 16) {
        x2 = _mm_loadu_si128((const __m128i *)buf);
        x5 = _mm_clmulepi64_si128(x1, k3k4, 0x00);
        x1 = _mm_clmulepi64_si128(x1, k3k4, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(x1, x2), x5);
        buf += 16;
        len -= 16;
    }
    /* 128 bits down to 64, then Barrett reduction to 32. */
    x2 = _mm_clmulepi64_si128(x1, k3k4, 0x10);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
    x2 = _mm_srli_si128(x1, 4);
    x1 = _mm_and_si128(x1, mask32);
    x1 = _mm_clmulepi64_si128(x1, k5k0, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    x2 = _mm_and_si128(x1, mask32);
    x2 = _mm_clmulepi64_si128(x2, poly, 0x10);
    x2 = _mm_and_si128(x2, mask32);
    x2 = _mm_clmulepi64_si128(x2, poly, 0x00);
    x1 = _mm_xor_si128(x1, x2);
    (void)x0;
    return (uint32_t)_mm_extract_epi32(x1, 1);
}
#endif

static uint32_t rice_crc32_update(uint32_t crc, const uint8_t *p, size_t len);

/* CRC-32 by table only; the reference the folding version is tested
 * against. */
static uint32_t rice_crc32_table(const uint8_t *p, size_t len);

static uint32_t rice_crc32(const uint8_t *p, size_t len)
{
#ifdef RICE_CRC_PCLMUL
    uint32_t c;
    size_t head;

    if (rice_crc_pclmul < 0) {
        __builtin_cpu_init();
        rice_crc_pclmul = __builtin_cpu_supports("pclmul") &&
                          __builtin_cpu_supports("sse4.1");
    }
    if (rice_crc_pclmul && len >= 64) {
        head = len & ~(size_t)15;
        c = ~rice_crc32_fold(p, head, 0xFFFFFFFFu);
        if (head == len) return c;
        return rice_crc32_update(c, p + head, len - head);
    }
#endif
    return rice_crc32_table(p, len);
}

static uint32_t rice_crc32_table(const uint8_t *p, size_t len)
{
    return rice_crc32_update(0, p, len);
}

/* Continue a CRC-32: `crc` is the value of the bytes before p. */
static uint32_t rice_crc32_update(uint32_t crc, const uint8_t *p, size_t len)
{
    uint32_t c = crc ^ 0xFFFFFFFFu;
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
