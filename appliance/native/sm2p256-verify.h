/* SM2 verification with arithmetic for the curve sm2p256v1 only (sm2p256-verify.c). */
#ifndef YQ_SM2P256_VERIFY_H
#define YQ_SM2P256_VERIFY_H

#include <stdint.h>

/* a ‖ b ‖ x_G ‖ y_G of sm2p256v1, 32 bytes each, big-endian (the curve's part of Z_A). */
extern const unsigned char SM2P256_A_B_XG_YG[128];

/* Builds the fixed table of G's multiples; call once before any verification (not thread-safe). */
void sm2p256_init(void);

/*
 * GB/T 32918.2 §7.1 B1, B2, B5–B7 for e (B3–B4 done by the caller) and (r, s), all 32-byte
 * big-endian; pub is 04‖X‖Y and must already be known to be on the curve. 1 = valid, 0 = not.
 */
int sm2p256_verify(const unsigned char pub[65], const unsigned char e[32], const unsigned char r[32],
                   const unsigned char s[32]);

/* How many verifications used a key's fixed-base table, and how many tables were built (tests). */
void sm2p256_table_stats(uint64_t *uses, uint64_t *built);

/* Forgets every key's table and count (tests: a known, empty cache). */
void sm2p256_table_reset(void);

#endif
