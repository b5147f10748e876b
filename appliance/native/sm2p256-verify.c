/*
 * SM2 signature verification on the curve sm2p256v1 (GB/T 32918.2-2016 §7.1, steps B5–B7),
 * with arithmetic written for that one curve.
 *
 * Why: OpenSSL 3.0 has no special code for this curve. Its generic prime-curve code spends
 * most of a verification in BIGNUM bookkeeping: ≈ 250 µs here, against ≈ 45 µs for ECDSA
 * P-256 (ARCHITECTURE.md §4 puts an optimised SM2 at 14,000 verifies/s per core). Verification
 * handles only public data, so this code is variable-time on purpose. SIGNING, which handles d,
 * stays in OpenSSL (sm2.c).
 *
 * Field: 4 × 64-bit limbs, Montgomery form (R = 2^256), CIOS multiplication; p ≡ −1 mod 2^64,
 * so the Montgomery factor −p⁻¹ mod 2^64 is 1. Points: Jacobian coordinates, a = −3 doubling
 * (dbl-2001-b), general and mixed addition (add-2007-bl, madd-2007-bl) from the Explicit-
 * Formulas Database. s·G + t·P by interleaved wNAF: G's odd multiples in a fixed affine table
 * (window 7), P's in a per-call Jacobian table (window 5). The final check needs no inversion:
 * x1 ≡ r − e (mod n) is tested as X = c·Z² (mod p) for each c < p with c ≡ r − e (mod n).
 *
 * Keys that come back (a doctor's key signs hundreds of records a day) get a fixed-base table:
 * d·16^i·P for every 4-bit digit d and window i, affine (60 KB). With it and the same table of G,
 * s·G + t·P is about 120 mixed additions and no doubling, against 256 doublings and about 80
 * additions in the ladder. A key's table is built at its KEY_TABLE_AFTER-th verification (the
 * build costs about as much as five verifications) into a cache of TABLE_SLOTS tables (15 MB)
 * shared by the pool threads.
 */
#include "sm2p256-verify.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef unsigned __int128 u128;
typedef struct {
  uint64_t v[4];
} fe; /* a field element in Montgomery form, always fully reduced (< p) */
typedef struct {
  fe x, y, z;
} jpoint; /* Jacobian (X/Z², Y/Z³); Z = 0 is the point at infinity */
typedef struct {
  fe x, y;
} apoint;

/* Curve parameters, GB/T 32918.5-2017: p and n as little-endian limbs. */
static const uint64_t P[4] = {0xFFFFFFFFFFFFFFFFULL, 0xFFFFFFFF00000000ULL, 0xFFFFFFFFFFFFFFFFULL, 0xFFFFFFFEFFFFFFFFULL};
static const uint64_t N[4] = {0x53BBF40939D54123ULL, 0x7203DF6B21C6052BULL, 0xFFFFFFFFFFFFFFFFULL, 0xFFFFFFFEFFFFFFFFULL};
/* a ‖ b ‖ x_G ‖ y_G, big-endian: the curve's part of Z_A (GB/T 32918.2 §5.5), and G here. */
const unsigned char SM2P256_A_B_XG_YG[128] = {
    /* a */ 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFC,
    /* b */ 0x28, 0xE9, 0xFA, 0x9E, 0x9D, 0x9F, 0x5E, 0x34, 0x4D, 0x5A, 0x9E, 0x4B, 0xCF, 0x65, 0x09, 0xA7,
    0xF3, 0x97, 0x89, 0xF5, 0x15, 0xAB, 0x8F, 0x92, 0xDD, 0xBC, 0xBD, 0x41, 0x4D, 0x94, 0x0E, 0x93,
    /* x_G */ 0x32, 0xC4, 0xAE, 0x2C, 0x1F, 0x19, 0x81, 0x19, 0x5F, 0x99, 0x04, 0x46, 0x6A, 0x39, 0xC9, 0x94,
    0x8F, 0xE3, 0x0B, 0xBF, 0xF2, 0x66, 0x0B, 0xE1, 0x71, 0x5A, 0x45, 0x89, 0x33, 0x4C, 0x74, 0xC7,
    /* y_G */ 0xBC, 0x37, 0x36, 0xA2, 0xF4, 0xF6, 0x77, 0x9C, 0x59, 0xBD, 0xCE, 0xE3, 0x6B, 0x69, 0x21, 0x53,
    0xD0, 0xA9, 0x87, 0x7C, 0xC6, 0x2A, 0x47, 0x40, 0x02, 0xDF, 0x32, 0xE5, 0x21, 0x39, 0xF0, 0xA0};

#define G_WINDOW 7
#define P_WINDOW 5
#define G_TABLE (1 << (G_WINDOW - 2)) /* G, 3G, …, 63G */
#define P_TABLE (1 << (P_WINDOW - 2)) /* P, 3P, …, 15P */

/* Fixed-base tables: t[i][d − 1] = d·16^i·Q for d = 1…15, i = 0…63 (k·Q = Σ t[i][digit i of k]). */
#define FB_WINDOWS 64
#define FB_DIGITS 15
typedef struct {
  apoint t[FB_WINDOWS][FB_DIGITS];
} fb_table;

static fe R2;  /* R² mod p: to_mont(a) = a·R²·R⁻¹ */
static fe ONE; /* R mod p */
static apoint g_table[G_TABLE];
static fb_table g_fixed; /* G's fixed-base table, for keys that have one */
static int ready;

/* ---------- 256-bit integers ---------- */

static void from_be(uint64_t out[4], const unsigned char b[32]) {
  for (int i = 0; i < 4; i++) {
    uint64_t w = 0;
    for (int j = 0; j < 8; j++) w = (w << 8) | b[(3 - i) * 8 + j];
    out[i] = w;
  }
}

/* a >= b */
static int geq(const uint64_t a[4], const uint64_t b[4]) {
  for (int i = 3; i >= 0; i--) {
    if (a[i] != b[i]) return a[i] > b[i];
  }
  return 1;
}

static int is_zero(const uint64_t a[4]) { return (a[0] | a[1] | a[2] | a[3]) == 0; }

/* r = a − b mod 2^256; returns the borrow. */
static uint64_t sub4(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
  uint64_t borrow = 0;
  for (int i = 0; i < 4; i++) {
    u128 d = (u128)a[i] - b[i] - borrow;
    r[i] = (uint64_t)d;
    borrow = (uint64_t)(d >> 64) & 1;
  }
  return borrow;
}

/* r = a + b mod 2^256; returns the carry. */
static uint64_t add4(uint64_t r[4], const uint64_t a[4], const uint64_t b[4]) {
  u128 c = 0;
  for (int i = 0; i < 4; i++) {
    c += (u128)a[i] + b[i];
    r[i] = (uint64_t)c;
    c >>= 64;
  }
  return (uint64_t)c;
}

/* ---------- the field, mod p ---------- */

static void fe_add(fe *r, const fe *a, const fe *b) {
  uint64_t t[4], s[4];
  uint64_t carry = add4(t, a->v, b->v);
  uint64_t borrow = sub4(s, t, P);
  /* a + b < 2p: subtract p when the sum overflowed 2^256 or is still >= p. */
  memcpy(r->v, (carry || !borrow) ? s : t, sizeof s);
}

static void fe_sub(fe *r, const fe *a, const fe *b) {
  uint64_t t[4];
  if (sub4(t, a->v, b->v)) add4(t, t, P);
  memcpy(r->v, t, sizeof t);
}

/* Montgomery product a·b·R⁻¹ mod p (CIOS; the reduction factor is t[0] since −p⁻¹ ≡ 1 mod 2^64). */
static void fe_mul(fe *r, const fe *a, const fe *b) {
  uint64_t t[6] = {0, 0, 0, 0, 0, 0};
  for (int i = 0; i < 4; i++) {
    u128 c = 0;
    for (int j = 0; j < 4; j++) {
      c += (u128)a->v[j] * b->v[i] + t[j];
      t[j] = (uint64_t)c;
      c >>= 64;
    }
    c += t[4];
    t[4] = (uint64_t)c;
    t[5] = (uint64_t)(c >> 64);
    uint64_t m = t[0];
    c = ((u128)m * P[0] + t[0]) >> 64;
    for (int j = 1; j < 4; j++) {
      c += (u128)m * P[j] + t[j];
      t[j - 1] = (uint64_t)c;
      c >>= 64;
    }
    c += t[4];
    t[3] = (uint64_t)c;
    t[4] = t[5] + (uint64_t)(c >> 64);
  }
  /* t < 2p: one conditional subtraction. */
  uint64_t s[4];
  uint64_t borrow = sub4(s, t, P);
  memcpy(r->v, (t[4] || !borrow) ? s : t, sizeof s);
}

static void fe_sqr(fe *r, const fe *a) { fe_mul(r, a, a); }

static int fe_is_zero(const fe *a) { return is_zero(a->v); }

static int fe_eq(const fe *a, const fe *b) { return memcmp(a->v, b->v, sizeof a->v) == 0; }

static void fe_from_int(fe *r, const uint64_t a[4]) {
  fe t;
  memcpy(t.v, a, sizeof t.v);
  fe_mul(r, &t, &R2);
}

/* a^(p−2) = a⁻¹ (Fermat); only used to build the fixed table. */
static void fe_inv(fe *r, const fe *a) {
  uint64_t e[4];
  const uint64_t two[4] = {2, 0, 0, 0};
  sub4(e, P, two);
  fe acc = ONE;
  for (int i = 255; i >= 0; i--) {
    fe_sqr(&acc, &acc);
    if ((e[i / 64] >> (i % 64)) & 1) fe_mul(&acc, &acc, a);
  }
  *r = acc;
}

/* ---------- points ---------- */

static void pt_dbl(jpoint *r, const jpoint *p) {
  if (fe_is_zero(&p->z) || fe_is_zero(&p->y)) {
    memset(r, 0, sizeof *r);
    return;
  }
  fe delta, gamma, beta, alpha, t1, t2, x3, y3, z3;
  fe_sqr(&delta, &p->z);
  fe_sqr(&gamma, &p->y);
  fe_mul(&beta, &p->x, &gamma);
  fe_sub(&t1, &p->x, &delta);
  fe_add(&t2, &p->x, &delta);
  fe_mul(&alpha, &t1, &t2);
  fe_add(&t1, &alpha, &alpha);
  fe_add(&alpha, &t1, &alpha); /* alpha = 3(X − δ)(X + δ), a = −3 */
  fe_sqr(&x3, &alpha);
  fe_add(&t1, &beta, &beta);   /* 2β */
  fe_add(&t1, &t1, &t1);       /* 4β */
  fe_add(&t2, &t1, &t1);       /* 8β */
  fe_sub(&x3, &x3, &t2);
  fe_add(&z3, &p->y, &p->z);
  fe_sqr(&z3, &z3);
  fe_sub(&z3, &z3, &gamma);
  fe_sub(&z3, &z3, &delta);
  fe_sub(&t1, &t1, &x3);       /* 4β − X3 */
  fe_mul(&y3, &alpha, &t1);
  fe_sqr(&t2, &gamma);
  fe_add(&t2, &t2, &t2);
  fe_add(&t2, &t2, &t2);
  fe_add(&t2, &t2, &t2);       /* 8γ² */
  fe_sub(&y3, &y3, &t2);
  r->x = x3;
  r->y = y3;
  r->z = z3;
}

/* The common tail of both additions: X3, Y3 from H, rr = S2 − S1, U1, S1. */
static void add_tail(jpoint *r, const fe *h, const fe *rr, const fe *u1, const fe *s1, const fe *z3) {
  fe i, j, rr2, v, t, x3, y3;
  fe_add(&t, h, h);
  fe_sqr(&i, &t);          /* I = (2H)² */
  fe_mul(&j, h, &i);       /* J = H·I */
  fe_add(&rr2, rr, rr);    /* r = 2(S2 − S1) */
  fe_mul(&v, u1, &i);      /* V = U1·I */
  fe_sqr(&x3, &rr2);
  fe_sub(&x3, &x3, &j);
  fe_sub(&x3, &x3, &v);
  fe_sub(&x3, &x3, &v);    /* X3 = r² − J − 2V */
  fe_sub(&t, &v, &x3);
  fe_mul(&y3, &rr2, &t);
  fe_mul(&t, s1, &j);
  fe_add(&t, &t, &t);
  fe_sub(&y3, &y3, &t);    /* Y3 = r(V − X3) − 2·S1·J */
  r->x = x3;
  r->y = y3;
  r->z = *z3;
}

static void pt_add(jpoint *r, const jpoint *a, const jpoint *b) {
  if (fe_is_zero(&a->z)) {
    *r = *b;
    return;
  }
  if (fe_is_zero(&b->z)) {
    *r = *a;
    return;
  }
  fe z1z1, z2z2, u1, u2, s1, s2, h, rr, z3;
  fe_sqr(&z1z1, &a->z);
  fe_sqr(&z2z2, &b->z);
  fe_mul(&u1, &a->x, &z2z2);
  fe_mul(&u2, &b->x, &z1z1);
  fe_mul(&s1, &a->y, &b->z);
  fe_mul(&s1, &s1, &z2z2);
  fe_mul(&s2, &b->y, &a->z);
  fe_mul(&s2, &s2, &z1z1);
  fe_sub(&h, &u2, &u1);
  fe_sub(&rr, &s2, &s1);
  if (fe_is_zero(&h)) {
    if (fe_is_zero(&rr)) pt_dbl(r, a);
    else memset(r, 0, sizeof *r);
    return;
  }
  fe_add(&z3, &a->z, &b->z);
  fe_sqr(&z3, &z3);
  fe_sub(&z3, &z3, &z1z1);
  fe_sub(&z3, &z3, &z2z2);
  fe_mul(&z3, &z3, &h); /* Z3 = ((Z1 + Z2)² − Z1Z1 − Z2Z2)·H */
  add_tail(r, &h, &rr, &u1, &s1, &z3);
}

/* a + b with b affine (Z2 = 1). */
static void pt_add_affine(jpoint *r, const jpoint *a, const apoint *b) {
  if (fe_is_zero(&a->z)) {
    r->x = b->x;
    r->y = b->y;
    r->z = ONE;
    return;
  }
  fe z1z1, u2, s2, h, rr, z3, t;
  fe_sqr(&z1z1, &a->z);
  fe_mul(&u2, &b->x, &z1z1);
  fe_mul(&s2, &b->y, &a->z);
  fe_mul(&s2, &s2, &z1z1);
  fe_sub(&h, &u2, &a->x);
  fe_sub(&rr, &s2, &a->y);
  if (fe_is_zero(&h)) {
    if (fe_is_zero(&rr)) pt_dbl(r, a);
    else memset(r, 0, sizeof *r);
    return;
  }
  /* Z3 = 2·Z1·H: add-2007-bl's Z3 with Z2 = 1 (madd-2007-bl writes it (Z1 + H)² − Z1Z1 − HH). */
  fe_mul(&z3, &a->z, &h);
  fe_add(&z3, &z3, &z3);
  t = a->x;
  add_tail(r, &h, &rr, &t, &a->y, &z3);
}

static void pt_neg_y(fe *out, const fe *y) {
  fe zero;
  memset(&zero, 0, sizeof zero);
  fe_sub(out, &zero, y);
}

/* ---------- scalars ---------- */

/* Width-w NAF of k (k < 2^256): digits odd, |d| < 2^(w−1), least significant first. */
static int wnaf(signed char out[258], const uint64_t k_in[4], int w) {
  uint64_t k[5] = {k_in[0], k_in[1], k_in[2], k_in[3], 0};
  const int64_t full = (int64_t)1 << w, half = full >> 1;
  int len = 0;
  while (k[0] | k[1] | k[2] | k[3] | k[4]) {
    int64_t d = 0;
    if (k[0] & 1) {
      d = (int64_t)(k[0] & (uint64_t)(full - 1));
      if (d >= half) d -= full;
      /* k −= d. For d > 0 that clears the low w bits (no borrow); for d < 0 it adds |d|. */
      if (d > 0) {
        k[0] -= (uint64_t)d;
      } else {
        uint64_t add = (uint64_t)(-d);
        for (int i = 0; i < 5 && add; i++) {
          uint64_t before = k[i];
          k[i] += add;
          add = k[i] < before;
        }
      }
    }
    out[len++] = (signed char)d;
    for (int i = 0; i < 4; i++) k[i] = (k[i] >> 1) | (k[i + 1] << 63);
    k[4] >>= 1;
  }
  return len;
}

/* q = s·G + t·pa by interleaved wNAF: G's odd multiples from the fixed table, pa's made here. */
static void ladder(jpoint *q, const jpoint *pa, const uint64_t s[4], const uint64_t t[4]) {
  /* P's odd multiples P, 3P, …, 15P. */
  jpoint p_table[P_TABLE], p2;
  p_table[0] = *pa;
  pt_dbl(&p2, pa);
  for (int i = 1; i < P_TABLE; i++) pt_add(&p_table[i], &p_table[i - 1], &p2);

  signed char ns[258], nt[258];
  int ls = wnaf(ns, s, G_WINDOW), lt = wnaf(nt, t, P_WINDOW);
  int len = ls > lt ? ls : lt;
  memset(q, 0, sizeof *q);
  for (int i = len - 1; i >= 0; i--) {
    pt_dbl(q, q);
    if (i < ls && ns[i] != 0) {
      int d = ns[i];
      apoint a = g_table[(d < 0 ? -d : d) >> 1];
      if (d < 0) pt_neg_y(&a.y, &a.y);
      pt_add_affine(q, q, &a);
    }
    if (i < lt && nt[i] != 0) {
      int d = nt[i];
      jpoint b = p_table[(d < 0 ? -d : d) >> 1];
      if (d < 0) pt_neg_y(&b.y, &b.y);
      pt_add(q, q, &b);
    }
  }
}

/* ---------- fixed-base tables ---------- */

/* The table of q (not the point at infinity, order n): 960 additions, then one inversion for all
 * (Montgomery's trick). Every entry is a multiple k·q with 0 < k < 16^64 ≤ n, so none is infinity. */
static int fb_build(fb_table *out, const jpoint *q) {
  enum { COUNT = FB_WINDOWS * FB_DIGITS };
  jpoint *pts = malloc(COUNT * sizeof *pts);
  fe *prefix = malloc(COUNT * sizeof *prefix);
  if (!pts || !prefix) {
    free(pts);
    free(prefix);
    return 0;
  }
  jpoint base = *q;
  for (int i = 0; i < FB_WINDOWS; i++) {
    jpoint *w = pts + i * FB_DIGITS;
    w[0] = base;
    for (int d = 1; d < FB_DIGITS; d++) pt_add(&w[d], &w[d - 1], &base);
    pt_add(&base, &w[FB_DIGITS - 1], &base); /* 16·base */
  }
  prefix[0] = pts[0].z;
  for (int k = 1; k < COUNT; k++) fe_mul(&prefix[k], &prefix[k - 1], &pts[k].z);
  fe inv;
  fe_inv(&inv, &prefix[COUNT - 1]);
  for (int k = COUNT - 1; k >= 0; k--) {
    fe zi, zi2, zi3;
    if (k > 0) {
      fe_mul(&zi, &inv, &prefix[k - 1]); /* 1/z_k */
      fe_mul(&inv, &inv, &pts[k].z);     /* now 1/(z_0 … z_{k−1}) */
    } else {
      zi = inv;
    }
    fe_sqr(&zi2, &zi);
    fe_mul(&zi3, &zi2, &zi);
    apoint *a = &out->t[k / FB_DIGITS][k % FB_DIGITS];
    fe_mul(&a->x, &pts[k].x, &zi2);
    fe_mul(&a->y, &pts[k].y, &zi3);
  }
  free(pts);
  free(prefix);
  return 1;
}

/* acc += k·Q from Q's table: one mixed addition per non-zero 4-bit digit of k. */
static void fb_add_multiple(jpoint *acc, const fb_table *t, const uint64_t k[4]) {
  for (int i = 0; i < FB_WINDOWS; i++) {
    unsigned d = (unsigned)(k[i / 16] >> ((i % 16) * 4)) & 15;
    if (d) pt_add_affine(acc, acc, &t->t[i][d - 1]);
  }
}

/* The key cache: direct-mapped by bits of X. Keys that collide take turns; someone who makes keys
 * to collide on purpose can at most keep slots from other keys, which then verify at the
 * ladder's speed, with the same answers. `seen` counts verifications
 * per key, `slots` hold the tables. A table being read is never replaced (readers), one being
 * built is not used yet (building). A slot's table gives way to another key only once it has
 * not been used for TABLE_IDLE_NS: with more busy keys than slots, the keys that hold a slot keep
 * it, and the slot is never rebuilt over and over (a build costs five verifications). */
#define KEY_TABLE_AFTER 4
#define SEEN_SLOTS 4096
#define TABLE_SLOTS 256
#define TABLE_IDLE_NS 2000000000ULL
typedef struct {
  unsigned char pub[64];
  uint32_t count;
} seen_slot;
typedef struct {
  unsigned char pub[64];
  fb_table *table;
  int readers, building;
  uint64_t last_used_ns;
} table_slot;
static seen_slot seen[SEEN_SLOTS];
static table_slot slots[TABLE_SLOTS];
static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t table_uses, tables_built;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static unsigned slot_of(const unsigned char pub[64], unsigned size) {
  uint64_t x;
  memcpy(&x, pub + 24, sizeof x); /* low bytes of X */
  return (unsigned)(x % size);
}

/* The table of pub with a reader counted (give it back with key_table_release), or NULL. Builds
 * it, outside the lock, once the key was seen KEY_TABLE_AFTER times and its slot is free to take. */
static table_slot *key_table_acquire(const unsigned char pub[64], const jpoint *q) {
  table_slot *slot = &slots[slot_of(pub, TABLE_SLOTS)];
  seen_slot *sn = &seen[slot_of(pub, SEEN_SLOTS)];
  uint64_t now = now_ns();
  pthread_mutex_lock(&cache_mu);
  if (slot->table && !slot->building && memcmp(slot->pub, pub, 64) == 0) {
    slot->readers++;
    slot->last_used_ns = now;
    table_uses++;
    pthread_mutex_unlock(&cache_mu);
    return slot;
  }
  if (memcmp(sn->pub, pub, 64) != 0) {
    memcpy(sn->pub, pub, 64);
    sn->count = 0;
  }
  int free_to_take = !slot->table || now - slot->last_used_ns >= TABLE_IDLE_NS;
  int build = ++sn->count >= KEY_TABLE_AFTER && slot->readers == 0 && !slot->building && free_to_take;
  fb_table *old = NULL;
  if (build) {
    old = slot->table;
    slot->table = NULL;
    slot->building = 1;
    memcpy(slot->pub, pub, 64);
  }
  pthread_mutex_unlock(&cache_mu);
  free(old);
  if (!build) return NULL;

  fb_table *t = malloc(sizeof *t);
  if (t && !fb_build(t, q)) {
    free(t);
    t = NULL;
  }
  pthread_mutex_lock(&cache_mu);
  slot->table = t;
  slot->building = 0;
  slot->last_used_ns = now_ns();
  if (t) {
    slot->readers++;
    tables_built++;
    table_uses++;
  }
  pthread_mutex_unlock(&cache_mu);
  return t ? slot : NULL;
}

static void key_table_release(table_slot *slot) {
  pthread_mutex_lock(&cache_mu);
  slot->readers--;
  pthread_mutex_unlock(&cache_mu);
}

void sm2p256_table_reset(void) {
  pthread_mutex_lock(&cache_mu);
  for (unsigned i = 0; i < TABLE_SLOTS; i++) {
    if (slots[i].readers || slots[i].building) continue;
    free(slots[i].table);
    memset(&slots[i], 0, sizeof slots[i]);
  }
  memset(seen, 0, sizeof seen);
  pthread_mutex_unlock(&cache_mu);
}

void sm2p256_table_stats(uint64_t *uses, uint64_t *built) {
  pthread_mutex_lock(&cache_mu);
  *uses = table_uses;
  *built = tables_built;
  pthread_mutex_unlock(&cache_mu);
}

/* ---------- setup and verification ---------- */

void sm2p256_init(void) {
  if (ready) return;
  /* R mod p = 2^256 − p; R² mod p by doubling it 256 times. */
  const uint64_t zero[4] = {0, 0, 0, 0};
  sub4(ONE.v, zero, P);
  R2 = ONE;
  for (int i = 0; i < 256; i++) fe_add(&R2, &R2, &R2);

  uint64_t gx[4], gy[4];
  from_be(gx, SM2P256_A_B_XG_YG + 64);
  from_be(gy, SM2P256_A_B_XG_YG + 96);
  jpoint g, g2, acc;
  fe_from_int(&g.x, gx);
  fe_from_int(&g.y, gy);
  g.z = ONE;
  pt_dbl(&g2, &g);
  acc = g;
  for (int i = 0; i < G_TABLE; i++) {
    fe zi, zi2, zi3;
    fe_inv(&zi, &acc.z);
    fe_sqr(&zi2, &zi);
    fe_mul(&zi3, &zi2, &zi);
    fe_mul(&g_table[i].x, &acc.x, &zi2);
    fe_mul(&g_table[i].y, &acc.y, &zi3);
    pt_add(&acc, &acc, &g2);
  }
  if (!fb_build(&g_fixed, &g)) return;
  ready = 1;
}

int sm2p256_verify(const unsigned char pub[65], const unsigned char e_be[32], const unsigned char r_be[32],
                   const unsigned char s_be[32]) {
  uint64_t r[4], s[4], e[4], t[4], c[4], tmp[4];
  if (!ready || pub[0] != 0x04) return 0;
  from_be(r, r_be);
  from_be(s, s_be);
  from_be(e, e_be);
  /* B1, B2: r, s ∈ [1, n − 1]. */
  if (is_zero(r) || geq(r, N) || is_zero(s) || geq(s, N)) return 0;
  /* B5: t = (r + s) mod n ≠ 0 (r + s < 2n: at most one subtraction, counting the carry). */
  uint64_t carry = add4(t, r, s);
  if (carry || geq(t, N)) sub4(t, t, N);
  if (is_zero(t)) return 0;

  /* P_A (on the curve: the handle was made with EC_POINT_oct2point). */
  uint64_t px[4], py[4];
  from_be(px, pub + 1);
  from_be(py, pub + 33);
  if (geq(px, P) || geq(py, P)) return 0;
  jpoint pa;
  fe_from_int(&pa.x, px);
  fe_from_int(&pa.y, py);
  pa.z = ONE;

  /* B6: (x1, y1) = s·G + t·P_A. */
  jpoint q;
  memset(&q, 0, sizeof q);
  table_slot *fixed = key_table_acquire(pub + 1, &pa);
  if (fixed) {
    fb_add_multiple(&q, &g_fixed, s);
    fb_add_multiple(&q, fixed->table, t);
    key_table_release(fixed);
  } else {
    ladder(&q, &pa, s, t);
  }
  if (fe_is_zero(&q.z)) return 0;

  /* B7: R = (e + x1) mod n = r  ⇔  x1 ≡ c = r − e (mod n), x1 = X/Z², x1 < p. */
  if (geq(e, N)) sub4(e, e, N);
  if (sub4(c, r, e)) add4(c, c, N);
  fe z2, cm, lhs;
  fe_sqr(&z2, &q.z);
  for (int k = 0; k < 2; k++) {
    if (geq(c, P)) break;
    fe_from_int(&cm, c);
    fe_mul(&lhs, &cm, &z2);
    if (fe_eq(&lhs, &q.x)) return 1;
    /* the other representative, c + n, when it is still below p */
    if (add4(tmp, c, N)) break;
    memcpy(c, tmp, sizeof c);
  }
  return 0;
}
