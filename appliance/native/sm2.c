/*
 * yiqian_sm2: SM2 over the OpenSSL that Node embeds (ARCHITECTURE.md §4).
 *
 * Node's crypto.sign() cannot set the SM2 distinguishing ID; this addon can
 * (EVP_PKEY_CTX_set1_id, GB/T 32918.2-2016 §5.5 Z_A). It includes <openssl/...> from Node's
 * own headers and links to nothing: Node exports its OpenSSL symbols.
 *
 * JS API (all private-key and public-key operations run on the libuv thread pool):
 *   keyFromPrivate(d: 32 bytes) -> handle      (derives P = dG; 1 <= d <= n-2, GB/T 32918.1 §6.1)
 *   keyFromPublic(P: 65 bytes 04|X|Y) -> handle (point must be on the curve)
 *   publicKey(handle) -> Buffer(65)
 *   sign(handle, msg, id) -> Promise<Buffer DER>          e = SM3(Z_A || M), GB/T 32918.2 §6.1
 *   signDigest(handle, e) -> Promise<Buffer DER>          e given (32 bytes)
 *   verify(handle, msg, sig, id) -> Promise<boolean>      GB/T 32918.2 §7.1
 *   verifyDigest(handle, e, sig) -> Promise<boolean>
 *   encrypt(handle, pt) -> Promise<Buffer DER>            GB/T 32918.4 §6.1, GM/T 0009 §7.2 C1C3C2
 *   decrypt(handle, der) -> Promise<Buffer>
 *   openssl: version string
 * An id of length 0 means the empty ID (what OpenSSL and Node use when none is set).
 * Handles hold a parsed EVP_PKEY (parsing per call cut throughput to ~940/s); a finalizer frees
 * it, and every queued job holds its own reference so a collected handle cannot free a key in use.
 */
#define NAPI_VERSION 8
/* OpenSSL 3.0 has no EVP call that derives an EC public key from a private scalar: the EC_POINT
 * API (deprecated, still exported by Node) does it. */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <node_api.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>

#include "pool-thread.h"
#include "sm2p256-verify.h"

#define POINT_LEN 65
#define SCALAR_LEN 32
#define DIGEST_LEN 32
/* ENTL is 16 bits holding the ID length in bits (GB/T 32918.2 §5.5): 8191 bytes would fit, but
 * OpenSSL signs only with IDs shorter than UINT16_MAX / 8; one limit for sign and verify. */
#define MAX_ID_LEN 8190

/* Process-wide, set by the first init and never freed (the addon is never unloaded). */
static EVP_MD *sm3_md;

static const napi_type_tag KEY_TAG = {0x9f3c2b7e5a1d4c08ULL, 0xb6e2a4d1c3f50791ULL};

typedef struct {
  EC_GROUP *group;
  BIGNUM *n_minus_1; /* d must be < n - 1 */
} instance_t;

typedef struct {
  EVP_PKEY *pkey;
  int has_private;
  unsigned char pub[POINT_LEN];
} sm2_key;

typedef enum {
  OP_SIGN,
  OP_SIGN_DIGEST,
  OP_VERIFY,
  OP_VERIFY_DIGEST,
  OP_VERIFY_OPENSSL,
  OP_VERIFY_DIGEST_OPENSSL,
  OP_ENCRYPT,
  OP_DECRYPT
} op_t;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  op_t op;
  EVP_PKEY *pkey;
  unsigned char pub[POINT_LEN];
  unsigned char *in;
  size_t in_len;
  unsigned char *sig;
  size_t sig_len;
  unsigned char *id;
  size_t id_len;
  unsigned char *out;
  size_t out_len;
  int ok;       /* operation ran without an OpenSSL error */
  int verified; /* verify result */
  char err[240];
} job_t;

/* ---------- small N-API helpers ---------- */

#define CHECK(env, call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      throw_last(env, #call);                                              \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

static void throw_last(napi_env env, const char *what) {
  const napi_extended_error_info *info = NULL;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  napi_get_last_error_info(env, &info);
  napi_throw_error(env, "ERR_YIQIAN_SM2", info && info->error_message ? info->error_message : what);
}

static int get_bytes(napi_env env, napi_value v, unsigned char **data, size_t *len, const char *name) {
  bool is_ta = false;
  napi_typedarray_type type;
  size_t length = 0, offset = 0;
  void *ptr = NULL;
  napi_value ab;
  char msg[96];
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, v, &type, &length, &ptr, &ab, &offset) != napi_ok || type != napi_uint8_array) {
    snprintf(msg, sizeof msg, "%s must be a Buffer or Uint8Array", name);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
    return 0;
  }
  *data = (unsigned char *)ptr;
  *len = length;
  return 1;
}

static unsigned char *dup_bytes(const unsigned char *p, size_t n) {
  unsigned char *c = malloc(n ? n : 1);
  if (c && n) memcpy(c, p, n);
  return c;
}

static void openssl_error(char *buf, size_t len, const char *what) {
  unsigned long e = ERR_peek_last_error();
  if (e) {
    char ossl[200];
    ERR_error_string_n(e, ossl, sizeof ossl);
    snprintf(buf, len, "%.60s: %.170s", what, ossl);
  } else {
    snprintf(buf, len, "%s", what);
  }
  ERR_clear_error();
}

/* ---------- keys ---------- */

static void key_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  sm2_key *k = data;
  EVP_PKEY_free(k->pkey);
  OPENSSL_cleanse(k, sizeof *k);
  free(k);
}

/* EVP_PKEY of type SM2 from the point and, when d is given, the scalar (native-endian BN param). */
static EVP_PKEY *pkey_from(const unsigned char pub[POINT_LEN], const BIGNUM *d, char *err, size_t errlen) {
  EVP_PKEY *pkey = NULL;
  unsigned char dnative[SCALAR_LEN];
  OSSL_PARAM params[4];
  int i = 0;
  char group[] = "SM2";
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "SM2", NULL);

  params[i++] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
  params[i++] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub, POINT_LEN);
  if (d) {
    if (BN_bn2nativepad(d, dnative, SCALAR_LEN) != SCALAR_LEN) goto done;
    params[i++] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, dnative, SCALAR_LEN);
  }
  params[i] = OSSL_PARAM_construct_end();
  if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
      EVP_PKEY_fromdata(ctx, &pkey, d ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY, params) <= 0) {
    pkey = NULL;
  }
done:
  OPENSSL_cleanse(dnative, sizeof dnative);
  EVP_PKEY_CTX_free(ctx);
  if (pkey == NULL) openssl_error(err, errlen, "cannot build SM2 key");
  return pkey;
}

static napi_value wrap_key(napi_env env, sm2_key *k) {
  napi_value ext;
  if (napi_create_external(env, k, key_finalize, NULL, &ext) != napi_ok) {
    key_finalize(env, k, NULL);
    throw_last(env, "napi_create_external");
    return NULL;
  }
  CHECK(env, napi_type_tag_object(env, ext, &KEY_TAG));
  return ext;
}

static sm2_key *unwrap_key(napi_env env, napi_value v) {
  bool ok = false;
  void *data = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_check_object_type_tag(env, v, &KEY_TAG, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, v, &data) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "not an SM2 key handle");
    return NULL;
  }
  return data;
}

static napi_value key_from_private(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  unsigned char *d;
  size_t dlen;
  instance_t *inst;
  char err[240] = "invalid SM2 private key";
  BIGNUM *bn = NULL;
  EC_POINT *pt = NULL;
  sm2_key *k = NULL;
  napi_value result = NULL;

  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(env, napi_get_instance_data(env, (void **)&inst));
  if (argc < 1 || !get_bytes(env, argv[0], &d, &dlen, "d")) return NULL;
  if (dlen != SCALAR_LEN) {
    napi_throw_range_error(env, "ERR_YIQIAN_SM2_KEY", "SM2 private key must be 32 bytes");
    return NULL;
  }
  bn = BN_secure_new();
  if (bn == NULL || BN_bin2bn(d, SCALAR_LEN, bn) == NULL) goto fail;
  /* GB/T 32918.1-2016 §6.1: d in [1, n-2]. */
  if (BN_is_zero(bn) || BN_cmp(bn, inst->n_minus_1) >= 0) {
    BN_clear_free(bn);
    napi_throw_range_error(env, "ERR_YIQIAN_SM2_KEY", "SM2 private key out of range [1, n-2]");
    return NULL;
  }
  k = calloc(1, sizeof *k);
  pt = EC_POINT_new(inst->group);
  if (k == NULL || pt == NULL || !EC_POINT_mul(inst->group, pt, bn, NULL, NULL, NULL) ||
      EC_POINT_point2oct(inst->group, pt, POINT_CONVERSION_UNCOMPRESSED, k->pub, POINT_LEN, NULL) != POINT_LEN) {
    openssl_error(err, sizeof err, "cannot derive SM2 public key");
    goto fail;
  }
  k->pkey = pkey_from(k->pub, bn, err, sizeof err);
  if (k->pkey == NULL) goto fail;
  k->has_private = 1;
  EC_POINT_free(pt);
  BN_clear_free(bn);
  return wrap_key(env, k);
fail:
  EC_POINT_free(pt);
  BN_clear_free(bn);
  free(k);
  napi_throw_error(env, "ERR_YIQIAN_SM2_KEY", err);
  return result;
}

static napi_value key_from_public(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  unsigned char *p;
  size_t plen;
  instance_t *inst;
  char err[240] = "invalid SM2 public key";
  EC_POINT *pt = NULL;
  sm2_key *k = NULL;

  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(env, napi_get_instance_data(env, (void **)&inst));
  if (argc < 1 || !get_bytes(env, argv[0], &p, &plen, "publicKey")) return NULL;
  if (plen != POINT_LEN || p[0] != 0x04) {
    napi_throw_range_error(env, "ERR_YIQIAN_SM2_KEY", "SM2 public key must be 65 bytes 04||X||Y");
    return NULL;
  }
  /* EC_POINT_oct2point rejects points that are not on the curve (GB/T 32918.1 §6.2). */
  pt = EC_POINT_new(inst->group);
  if (pt == NULL || !EC_POINT_oct2point(inst->group, pt, p, plen, NULL) || EC_POINT_is_at_infinity(inst->group, pt)) {
    openssl_error(err, sizeof err, "SM2 public key is not a point on the curve");
    EC_POINT_free(pt);
    napi_throw_error(env, "ERR_YIQIAN_SM2_KEY", err);
    return NULL;
  }
  EC_POINT_free(pt);
  k = calloc(1, sizeof *k);
  if (k == NULL) {
    napi_throw_error(env, "ERR_YIQIAN_SM2_KEY", "out of memory");
    return NULL;
  }
  memcpy(k->pub, p, POINT_LEN);
  k->pkey = pkey_from(k->pub, NULL, err, sizeof err);
  if (k->pkey == NULL) {
    free(k);
    napi_throw_error(env, "ERR_YIQIAN_SM2_KEY", err);
    return NULL;
  }
  return wrap_key(env, k);
}

static napi_value public_key(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  void *data;
  sm2_key *k;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || (k = unwrap_key(env, argv[0])) == NULL) return NULL;
  CHECK(env, napi_create_buffer_copy(env, POINT_LEN, k->pub, &data, &out));
  return out;
}

/* ---------- async jobs ---------- */

static void job_free(job_t *j) {
  EVP_PKEY_free(j->pkey);
  if (j->in) OPENSSL_cleanse(j->in, j->in_len);
  free(j->in);
  free(j->sig);
  free(j->id);
  if (j->out) OPENSSL_cleanse(j->out, j->out_len);
  free(j->out);
  free(j);
}

/* EVP_PKEY_CTX with the distinguishing ID set (SM2 man page, OpenSSL 3.0: set the ID on a
 * context, attach it to the digest context, then DigestSign/VerifyInit). */
static int digest_ctx(job_t *j, EVP_MD_CTX **mctx, EVP_PKEY_CTX **pctx) {
  *mctx = EVP_MD_CTX_new();
  *pctx = EVP_PKEY_CTX_new(j->pkey, NULL);
  if (*mctx == NULL || *pctx == NULL) return 0;
  /* An empty ID needs no call: it is OpenSSL's default (ENTL = 0). */
  if (j->id_len > 0 && EVP_PKEY_CTX_set1_id(*pctx, j->id, (int)j->id_len) <= 0) return 0;
  EVP_MD_CTX_set_pkey_ctx(*mctx, *pctx);
  return 1;
}

static void run_sign(job_t *j) {
  EVP_MD_CTX *mctx = NULL;
  EVP_PKEY_CTX *pctx = NULL;
  size_t len = 0;
  if (!digest_ctx(j, &mctx, &pctx) || EVP_DigestSignInit(mctx, NULL, EVP_sm3(), NULL, j->pkey) != 1 ||
      EVP_DigestSign(mctx, NULL, &len, j->in, j->in_len) != 1 || (j->out = malloc(len)) == NULL ||
      EVP_DigestSign(mctx, j->out, &len, j->in, j->in_len) != 1) {
    openssl_error(j->err, sizeof j->err, "SM2 sign failed");
  } else {
    j->out_len = len;
    j->ok = 1;
  }
  EVP_MD_CTX_free(mctx);
  EVP_PKEY_CTX_free(pctx);
}

static void run_verify_openssl(job_t *j) {
  EVP_MD_CTX *mctx = NULL;
  EVP_PKEY_CTX *pctx = NULL;
  if (!digest_ctx(j, &mctx, &pctx) || EVP_DigestVerifyInit(mctx, NULL, EVP_sm3(), NULL, j->pkey) != 1) {
    openssl_error(j->err, sizeof j->err, "SM2 verify setup failed");
  } else {
    /* 1 = valid; 0 = invalid; < 0 = malformed signature: all "not valid". */
    j->verified = EVP_DigestVerify(mctx, j->sig, j->sig_len, j->in, j->in_len) == 1;
    ERR_clear_error();
    j->ok = 1;
  }
  EVP_MD_CTX_free(mctx);
  EVP_PKEY_CTX_free(pctx);
}

/* Sign / verify a given e (GB/T 32918.2 §6.1 A3 onwards): the SM2 signature provider treats the
 * input of EVP_PKEY_sign as e. */
static void run_sign_digest(job_t *j) {
  EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(j->pkey, NULL);
  size_t len = 0;
  if (pctx == NULL || EVP_PKEY_sign_init(pctx) != 1 || EVP_PKEY_sign(pctx, NULL, &len, j->in, j->in_len) != 1 ||
      (j->out = malloc(len)) == NULL || EVP_PKEY_sign(pctx, j->out, &len, j->in, j->in_len) != 1) {
    openssl_error(j->err, sizeof j->err, "SM2 sign (digest) failed");
  } else {
    j->out_len = len;
    j->ok = 1;
  }
  EVP_PKEY_CTX_free(pctx);
}

static void run_verify_digest_openssl(job_t *j) {
  EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(j->pkey, NULL);
  if (pctx == NULL || EVP_PKEY_verify_init(pctx) != 1) {
    openssl_error(j->err, sizeof j->err, "SM2 verify (digest) setup failed");
  } else {
    j->verified = EVP_PKEY_verify(pctx, j->sig, j->sig_len, j->in, j->in_len) == 1;
    ERR_clear_error();
    j->ok = 1;
  }
  EVP_PKEY_CTX_free(pctx);
}

/* (r, s) of a DER SM2 signature as 32-byte big-endian values. Like OpenSSL's SM2 provider,
 * only the DER encoding of the values is accepted: re-encoded, it must give the same bytes. */
static int signature_values(const unsigned char *der, size_t len, unsigned char r[32], unsigned char s[32]) {
  const unsigned char *p = der;
  unsigned char *again = NULL;
  const BIGNUM *br, *bs;
  int ok = 0, again_len;
  ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
  if (sig == NULL) return 0;
  again_len = i2d_ECDSA_SIG(sig, &again);
  ECDSA_SIG_get0(sig, &br, &bs);
  if (again_len == (int)len && memcmp(again, der, len) == 0 && !BN_is_negative(br) && !BN_is_negative(bs) &&
      BN_bn2binpad(br, r, 32) == 32 && BN_bn2binpad(bs, s, 32) == 32) {
    ok = 1;
  }
  OPENSSL_free(again);
  ECDSA_SIG_free(sig);
  return ok;
}

/* e = SM3(Z_A ‖ M), Z_A = SM3(ENTL_A ‖ ID_A ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A) (GB/T 32918.2 §5.5, §7.1 B3–B4). */
static int message_digest(const job_t *j, unsigned char e[32]) {
  unsigned char entl[2] = {(unsigned char)((j->id_len * 8) >> 8), (unsigned char)(j->id_len * 8)};
  unsigned char z[32];
  unsigned int len = 0;
  int ok;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  ok = ctx != NULL && EVP_DigestInit_ex(ctx, sm3_md, NULL) == 1 && EVP_DigestUpdate(ctx, entl, 2) == 1 &&
       EVP_DigestUpdate(ctx, j->id, j->id_len) == 1 && EVP_DigestUpdate(ctx, SM2P256_A_B_XG_YG, sizeof SM2P256_A_B_XG_YG) == 1 &&
       EVP_DigestUpdate(ctx, j->pub + 1, 64) == 1 && EVP_DigestFinal_ex(ctx, z, &len) == 1 && len == 32 &&
       EVP_DigestInit_ex(ctx, sm3_md, NULL) == 1 && EVP_DigestUpdate(ctx, z, 32) == 1 &&
       EVP_DigestUpdate(ctx, j->in, j->in_len) == 1 && EVP_DigestFinal_ex(ctx, e, &len) == 1 && len == 32;
  EVP_MD_CTX_free(ctx);
  return ok;
}

/* Verification with the curve-specific arithmetic (sm2p256-verify.c); the digest from OpenSSL's SM3. */
static void run_verify(job_t *j, int digest_given) {
  unsigned char e[32], r[32], s[32];
  if (digest_given) {
    memcpy(e, j->in, 32);
  } else if (!message_digest(j, e)) {
    openssl_error(j->err, sizeof j->err, "SM3 failed");
    return;
  }
  /* A signature that does not decode is "not valid", as with OpenSSL's verify. */
  j->verified = signature_values(j->sig, j->sig_len, r, s) && sm2p256_verify(j->pub, e, r, s);
  ERR_clear_error();
  j->ok = 1;
}

/* GB/T 32918.4 §6.1 / §7.1 with SM3; OpenSSL emits and reads the GM/T 0009 §7.2 DER form. */
static void run_crypt(job_t *j, int encrypt) {
  EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(j->pkey, NULL);
  size_t len = 0;
  int ok;
  if (pctx == NULL) {
    openssl_error(j->err, sizeof j->err, "SM2 context");
    return;
  }
  if (encrypt) {
    ok = EVP_PKEY_encrypt_init(pctx) == 1 && EVP_PKEY_encrypt(pctx, NULL, &len, j->in, j->in_len) == 1 &&
         (j->out = malloc(len ? len : 1)) != NULL && EVP_PKEY_encrypt(pctx, j->out, &len, j->in, j->in_len) == 1;
  } else {
    ok = EVP_PKEY_decrypt_init(pctx) == 1 && EVP_PKEY_decrypt(pctx, NULL, &len, j->in, j->in_len) == 1 &&
         (j->out = malloc(len ? len : 1)) != NULL && EVP_PKEY_decrypt(pctx, j->out, &len, j->in, j->in_len) == 1;
  }
  if (ok) {
    j->out_len = len;
    j->ok = 1;
  } else {
    openssl_error(j->err, sizeof j->err, encrypt ? "SM2 encrypt failed" : "SM2 decrypt failed");
  }
  EVP_PKEY_CTX_free(pctx);
}

static void job_execute(napi_env env, void *data) {
  (void)env;
  job_t *j = data;
  yq_pool_thread_batch();
  ERR_clear_error();
  switch (j->op) {
    case OP_SIGN: run_sign(j); break;
    case OP_SIGN_DIGEST: run_sign_digest(j); break;
    case OP_VERIFY: run_verify(j, 0); break;
    case OP_VERIFY_DIGEST: run_verify(j, 1); break;
    case OP_VERIFY_OPENSSL: run_verify_openssl(j); break;
    case OP_VERIFY_DIGEST_OPENSSL: run_verify_digest_openssl(j); break;
    case OP_ENCRYPT: run_crypt(j, 1); break;
    case OP_DECRYPT: run_crypt(j, 0); break;
  }
  ERR_clear_error();
}

static void job_complete(napi_env env, napi_status status, void *data) {
  job_t *j = data;
  napi_value value = NULL, msg, code;
  if (status == napi_ok && j->ok) {
    if (j->op == OP_VERIFY || j->op == OP_VERIFY_DIGEST || j->op == OP_VERIFY_OPENSSL || j->op == OP_VERIFY_DIGEST_OPENSSL) {
      napi_get_boolean(env, j->verified, &value);
    } else {
      void *p;
      napi_create_buffer_copy(env, j->out_len, j->out, &p, &value);
    }
  }
  if (value != NULL) {
    napi_resolve_deferred(env, j->deferred, value);
  } else {
    napi_create_string_utf8(env, status == napi_ok ? j->err : "SM2 job cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, "ERR_YIQIAN_SM2", NAPI_AUTO_LENGTH, &code);
    napi_create_error(env, code, msg, &value);
    napi_reject_deferred(env, j->deferred, value);
  }
  napi_delete_async_work(env, j->work);
  job_free(j);
}

/* Common entry: (handle, input[, sig][, id]); want_sig / want_id say which optional arguments
 * follow, need_private that the handle must hold d, digest that the input is a 32-byte e. */
static napi_value queue(napi_env env, napi_callback_info info, op_t op, int want_sig, int want_id, int need_private,
                        int digest) {
  size_t argc = 4;
  napi_value argv[4], promise, name;
  sm2_key *k;
  unsigned char *in, *sig = NULL, *id = NULL;
  size_t in_len, sig_len = 0, id_len = 0;
  size_t need = 2 + (size_t)want_sig + (size_t)want_id;
  job_t *j;

  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < need) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "missing arguments");
    return NULL;
  }
  if ((k = unwrap_key(env, argv[0])) == NULL) return NULL;
  if (need_private && !k->has_private) {
    napi_throw_type_error(env, "ERR_YIQIAN_SM2_KEY", "operation needs a private key");
    return NULL;
  }
  if (!get_bytes(env, argv[1], &in, &in_len, "data")) return NULL;
  if (digest && in_len != DIGEST_LEN) {
    napi_throw_range_error(env, "ERR_YIQIAN_SM2_DIGEST", "e must be 32 bytes");
    return NULL;
  }
  if (want_sig && !get_bytes(env, argv[2], &sig, &sig_len, "signature")) return NULL;
  if (want_id) {
    if (!get_bytes(env, argv[2 + want_sig], &id, &id_len, "id")) return NULL;
    if (id_len > MAX_ID_LEN) {
      napi_throw_range_error(env, "ERR_YIQIAN_SM2_ID", "SM2 ID longer than 8190 bytes");
      return NULL;
    }
  }
  j = calloc(1, sizeof *j);
  if (j == NULL) {
    napi_throw_error(env, "ERR_YIQIAN_SM2", "out of memory");
    return NULL;
  }
  j->op = op;
  j->pkey = k->pkey;
  EVP_PKEY_up_ref(j->pkey);
  memcpy(j->pub, k->pub, POINT_LEN);
  /* Inputs are copied: the caller may reuse its buffers while the job runs. */
  j->in = dup_bytes(in, in_len);
  j->in_len = in_len;
  j->sig = want_sig ? dup_bytes(sig, sig_len) : NULL;
  j->sig_len = sig_len;
  j->id = want_id ? dup_bytes(id, id_len) : NULL;
  j->id_len = id_len;
  if (j->in == NULL || (want_sig && j->sig == NULL) || (want_id && j->id == NULL)) {
    job_free(j);
    napi_throw_error(env, "ERR_YIQIAN_SM2", "out of memory");
    return NULL;
  }
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "yiqian_sm2", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, job_execute, job_complete, j, &j->work) != napi_ok) {
    job_free(j);
    throw_last(env, "cannot create async work");
    return NULL;
  }
  if (napi_queue_async_work(env, j->work) != napi_ok) {
    napi_delete_async_work(env, j->work);
    job_free(j);
    throw_last(env, "cannot queue async work");
    return NULL;
  }
  return promise;
}

static napi_value js_sign(napi_env env, napi_callback_info info) { return queue(env, info, OP_SIGN, 0, 1, 1, 0); }
static napi_value js_sign_digest(napi_env env, napi_callback_info info) { return queue(env, info, OP_SIGN_DIGEST, 0, 0, 1, 1); }
static napi_value js_verify(napi_env env, napi_callback_info info) { return queue(env, info, OP_VERIFY, 1, 1, 0, 0); }
static napi_value js_verify_digest(napi_env env, napi_callback_info info) { return queue(env, info, OP_VERIFY_DIGEST, 1, 0, 0, 1); }
static napi_value js_verify_openssl(napi_env env, napi_callback_info info) { return queue(env, info, OP_VERIFY_OPENSSL, 1, 1, 0, 0); }
static napi_value js_verify_digest_openssl(napi_env env, napi_callback_info info) {
  return queue(env, info, OP_VERIFY_DIGEST_OPENSSL, 1, 0, 0, 1);
}
static napi_value js_encrypt(napi_env env, napi_callback_info info) { return queue(env, info, OP_ENCRYPT, 0, 0, 0, 0); }
static napi_value js_decrypt(napi_env env, napi_callback_info info) { return queue(env, info, OP_DECRYPT, 0, 0, 1, 0); }

/* {uses, built}: verifications that used a key's fixed-base table, tables built (sm2p256-verify.c; tests). */
static napi_value js_verify_table_stats(napi_env env, napi_callback_info info) {
  (void)info;
  uint64_t uses, built;
  sm2p256_table_stats(&uses, &built);
  napi_value out, u, b;
  CHECK(env, napi_create_object(env, &out));
  CHECK(env, napi_create_double(env, (double)uses, &u));
  CHECK(env, napi_create_double(env, (double)built, &b));
  CHECK(env, napi_set_named_property(env, out, "uses", u));
  CHECK(env, napi_set_named_property(env, out, "built", b));
  return out;
}

/* Empties the key table cache (sm2p256-verify.c; tests). */
static napi_value js_verify_table_reset(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  sm2p256_table_reset();
  return NULL;
}

/* ---------- module ---------- */

static void instance_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  instance_t *inst = data;
  EC_GROUP_free(inst->group);
  BN_free(inst->n_minus_1);
  free(inst);
}

static napi_value init(napi_env env, napi_value exports) {
  instance_t *inst = calloc(1, sizeof *inst);
  napi_value version;
  napi_property_descriptor props[] = {
      {"keyFromPrivate", NULL, key_from_private, NULL, NULL, NULL, napi_enumerable, NULL},
      {"keyFromPublic", NULL, key_from_public, NULL, NULL, NULL, napi_enumerable, NULL},
      {"publicKey", NULL, public_key, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sign", NULL, js_sign, NULL, NULL, NULL, napi_enumerable, NULL},
      {"signDigest", NULL, js_sign_digest, NULL, NULL, NULL, napi_enumerable, NULL},
      {"verify", NULL, js_verify, NULL, NULL, NULL, napi_enumerable, NULL},
      {"verifyDigest", NULL, js_verify_digest, NULL, NULL, NULL, napi_enumerable, NULL},
      {"verifyOpenssl", NULL, js_verify_openssl, NULL, NULL, NULL, napi_enumerable, NULL},
      {"verifyDigestOpenssl", NULL, js_verify_digest_openssl, NULL, NULL, NULL, napi_enumerable, NULL},
      {"encrypt", NULL, js_encrypt, NULL, NULL, NULL, napi_enumerable, NULL},
      {"decrypt", NULL, js_decrypt, NULL, NULL, NULL, napi_enumerable, NULL},
      {"verifyTableStats", NULL, js_verify_table_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"verifyTableReset", NULL, js_verify_table_reset, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (inst == NULL) {
    napi_throw_error(env, "ERR_YIQIAN_SM2", "out of memory");
    return NULL;
  }
  inst->group = EC_GROUP_new_by_curve_name(NID_sm2);
  inst->n_minus_1 = inst->group ? BN_dup(EC_GROUP_get0_order(inst->group)) : NULL;
  if (inst->group == NULL || inst->n_minus_1 == NULL || !BN_sub_word(inst->n_minus_1, 1)) {
    instance_finalize(env, inst, NULL);
    napi_throw_error(env, "ERR_YIQIAN_SM2", "this OpenSSL has no SM2 curve");
    return NULL;
  }
  /* SM3 fetched once: an implicit fetch per digest takes OpenSSL 3.0's global lock. */
  if (sm3_md == NULL) sm3_md = EVP_MD_fetch(NULL, "SM3", NULL);
  if (sm3_md == NULL) {
    instance_finalize(env, inst, NULL);
    napi_throw_error(env, "ERR_YIQIAN_SM2", "this OpenSSL has no SM3");
    return NULL;
  }
  sm2p256_init();
  CHECK(env, napi_set_instance_data(env, inst, instance_finalize, NULL));
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  CHECK(env, napi_create_string_utf8(env, OpenSSL_version(OPENSSL_VERSION), NAPI_AUTO_LENGTH, &version));
  CHECK(env, napi_set_named_property(env, exports, "openssl", version));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
