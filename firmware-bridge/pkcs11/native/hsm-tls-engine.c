/*
 * yiqian_hsm_tls: an OpenSSL ENGINE, living inside Node's own OpenSSL, whose private keys are
 * ECDSA keys on a PKCS#11 token. Node's TLS takes it through createSecureContext's
 * privateKeyEngine / privateKeyIdentifier, so the appliance's TLS key never leaves the HSM.
 *
 * Why not the system's libp11 engine (libengine-pkcs11-openssl): it links the system libcrypto,
 * a second OpenSSL next to the one statically inside Node; keys made by one are not usable by the
 * other. This file links to nothing but libdl: every OpenSSL symbol comes from the node binary,
 * which exports them (nm -D /usr/bin/node), and the headers are Node's (/usr/include/node).
 *
 * register(modulePath, tokenLabel, pin) dlopen()s the PKCS#11 module (the same library pkcs11js
 * uses in this process: one instance, so C_Initialize may answer ALREADY_INITIALIZED and C_Login
 * USER_ALREADY_LOGGED_IN), opens its own session and adds ENGINE "yiqian-pkcs11". Its
 * load_privkey(key_id) takes an RFC 7512 URI (object=, optional token=, id=, type=private) or a
 * plain label, finds the private key by CKA_LABEL (and CKA_ID), reads the public point and curve
 * from the matching public key, and returns an EVP_PKEY whose EC_KEY_METHOD signs with
 * C_SignInit(CKM_ECDSA) + C_Sign. A custom EC_KEY_METHOD makes OpenSSL 3 treat the key as a
 * "foreign" legacy key, so TLS 1.2 and 1.3 handshakes call the method for the signature.
 *
 * TLS handshakes run on Node's main thread; a mutex still guards the engine's session.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1 /* ENGINE and EC_KEY_METHOD are deprecated in 3.0, and still what Node's privateKeyEngine uses */

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/engine.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

#include "pkcs11.h"

#define ENGINE_ID "yiqian-pkcs11"
#define ENGINE_NAME "yiqian PKCS#11 TLS key engine"

static struct {
  pthread_mutex_t lock;
  void *dl;
  char *module_path;
  CK_FUNCTION_LIST_PTR f;
  char token_label[33];
  char *pin;
  CK_SLOT_ID slot;
  CK_SESSION_HANDLE session;
  int have_session;
  unsigned long generation; /* bumped whenever the session is replaced: key handles must be found again */
  int registered;
  EC_KEY_METHOD *ec_method;
  int ex_index;
  unsigned long signs;
  unsigned long sign_failures;
  unsigned long reopens;
  CK_RV last_rv;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .ex_index = -1};

/* OpenSSL error strings of our own library, so that Node's error message (which shows the reason
 * string, not the extra data) says what went wrong. */
enum {
  R_KEY_NOT_FOUND = 100,
  R_OTHER_TOKEN,
  R_NOT_EC_KEY,
  R_PKCS11_ERROR,
  R_BAD_KEY_ID,
  R_SIGN_FAILED,
};
static int err_lib = 0;
static ERR_STRING_DATA err_lib_name[] = {{0, "yiqian-pkcs11 engine"}, {0, NULL}};
static ERR_STRING_DATA err_reasons[] = {
    {ERR_PACK(0, 0, R_KEY_NOT_FOUND), "private key not found on the token"},
    {ERR_PACK(0, 0, R_OTHER_TOKEN), "key URI names another token or object type"},
    {ERR_PACK(0, 0, R_NOT_EC_KEY), "not an ECDSA P-256/P-384 key"},
    {ERR_PACK(0, 0, R_PKCS11_ERROR), "PKCS#11 call failed"},
    {ERR_PACK(0, 0, R_BAD_KEY_ID), "key id must be a label or an RFC 7512 URI with object="},
    {ERR_PACK(0, 0, R_SIGN_FAILED), "PKCS#11 C_Sign failed"},
    {0, NULL},
};

/* What the EC_KEY carries (ex_data): how to find its token object again. */
struct hsm_key {
  char *label;
  unsigned char *id;
  size_t id_len;
  CK_OBJECT_HANDLE handle;
  unsigned long generation;
  int field_len;
};

/* ------------------------------------------------------------------ PKCS#11 session */

static int is_recoverable(CK_RV rv) {
  switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_KEY_HANDLE_INVALID:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
      return 1;
    default:
      return 0;
  }
}

static CK_RV initialize_locked(void) {
  CK_C_INITIALIZE_ARGS args;
  memset(&args, 0, sizeof(args));
  args.flags = CKF_OS_LOCKING_OK;
  CK_RV rv = g.f->C_Initialize(&args);
  return rv == CKR_CRYPTOKI_ALREADY_INITIALIZED ? CKR_OK : rv;
}

static void blank_trim(char *dst, const CK_UTF8CHAR *src, size_t n) {
  memcpy(dst, src, n);
  dst[n] = 0;
  while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == 0)) dst[--n] = 0;
}

static CK_RV find_slot_locked(CK_SLOT_ID *out) {
  CK_ULONG n = 0;
  CK_RV rv = g.f->C_GetSlotList(CK_TRUE, NULL, &n);
  if (rv != CKR_OK) return rv;
  CK_SLOT_ID *slots = calloc(n ? n : 1, sizeof(CK_SLOT_ID));
  if (!slots) return CKR_HOST_MEMORY;
  rv = g.f->C_GetSlotList(CK_TRUE, slots, &n);
  if (rv == CKR_OK) {
    rv = CKR_TOKEN_NOT_PRESENT;
    for (CK_ULONG i = 0; i < n; i++) {
      CK_TOKEN_INFO ti;
      char label[33];
      if (g.f->C_GetTokenInfo(slots[i], &ti) != CKR_OK) continue;
      blank_trim(label, ti.label, sizeof(ti.label));
      if (strcmp(label, g.token_label) == 0) {
        *out = slots[i];
        rv = CKR_OK;
        break;
      }
    }
  }
  free(slots);
  return rv;
}

/* Drops the current session (without closing it when `close_it` is 0: the handle may be stale). */
static void drop_session_locked(int close_it) {
  if (g.have_session && close_it) g.f->C_CloseSession(g.session);
  g.have_session = 0;
  g.generation++;
}

static CK_RV open_session_locked(void) {
  CK_RV rv = find_slot_locked(&g.slot);
  if (rv == CKR_CRYPTOKI_NOT_INITIALIZED) {
    rv = initialize_locked();
    if (rv == CKR_OK) rv = find_slot_locked(&g.slot);
  }
  if (rv != CKR_OK) return rv;
  CK_SESSION_HANDLE s;
  rv = g.f->C_OpenSession(g.slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
  if (rv != CKR_OK) return rv;
  rv = g.f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)g.pin, (CK_ULONG)strlen(g.pin));
  if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
    g.f->C_CloseSession(s);
    return rv;
  }
  g.session = s;
  g.have_session = 1;
  g.generation++;
  return CKR_OK;
}

static CK_RV ensure_session_locked(void) {
  return g.have_session ? CKR_OK : open_session_locked();
}

/* Finds one object by class, label and (optionally) id. */
static CK_RV find_object_locked(CK_OBJECT_CLASS cls, const char *label, const unsigned char *id, size_t id_len, CK_OBJECT_HANDLE *out) {
  CK_ATTRIBUTE t[3] = {
      {CKA_CLASS, &cls, sizeof(cls)},
      {CKA_LABEL, (void *)label, (CK_ULONG)strlen(label)},
      {CKA_ID, (void *)id, (CK_ULONG)id_len},
  };
  CK_ULONG count = 0;
  CK_RV rv = g.f->C_FindObjectsInit(g.session, t, id ? 3 : 2);
  if (rv != CKR_OK) return rv;
  rv = g.f->C_FindObjects(g.session, out, 1, &count);
  g.f->C_FindObjectsFinal(g.session);
  if (rv != CKR_OK) return rv;
  return count == 1 ? CKR_OK : CKR_OBJECT_HANDLE_INVALID;
}

/* Reads a variable-length attribute into a malloc'd buffer. */
static CK_RV read_attr_locked(CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type, unsigned char **out, CK_ULONG *len) {
  CK_ATTRIBUTE a = {type, NULL, 0};
  CK_RV rv = g.f->C_GetAttributeValue(g.session, o, &a, 1);
  if (rv != CKR_OK) return rv;
  if (a.ulValueLen == (CK_ULONG)-1 || a.ulValueLen == 0) return CKR_ATTRIBUTE_TYPE_INVALID;
  a.pValue = malloc(a.ulValueLen);
  if (!a.pValue) return CKR_HOST_MEMORY;
  rv = g.f->C_GetAttributeValue(g.session, o, &a, 1);
  if (rv != CKR_OK) {
    free(a.pValue);
    return rv;
  }
  *out = a.pValue;
  *len = a.ulValueLen;
  return CKR_OK;
}

/* ------------------------------------------------------------------ EC_KEY method */

static struct hsm_key *hsm_key_copy(const struct hsm_key *k) {
  struct hsm_key *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  *c = *k;
  c->label = strdup(k->label);
  c->id = NULL;
  if (k->id) {
    c->id = malloc(k->id_len ? k->id_len : 1);
    if (c->id) memcpy(c->id, k->id, k->id_len);
  }
  if (!c->label || (k->id && !c->id)) {
    free(c->label);
    free(c->id);
    free(c);
    return NULL;
  }
  return c;
}

/* An EC_KEY copied by OpenSSL gets its own copy of the reference (never a shared pointer, freed twice). */
static int hsm_key_dup(CRYPTO_EX_DATA *to, const CRYPTO_EX_DATA *from, void **from_d, int idx, long argl, void *argp) {
  (void)to, (void)from, (void)idx, (void)argl, (void)argp;
  if (!from_d || !*from_d) return 1;
  struct hsm_key *c = hsm_key_copy(*from_d);
  if (!c) return 0;
  *from_d = c;
  return 1;
}

static void hsm_key_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp) {
  (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
  struct hsm_key *k = ptr;
  if (!k) return;
  free(k->label);
  free(k->id);
  free(k);
}


static ECDSA_SIG *hsm_sign_sig(const unsigned char *dgst, int dgst_len, const BIGNUM *in_kinv, const BIGNUM *in_r, EC_KEY *eckey) {
  (void)in_kinv, (void)in_r;
  struct hsm_key *k = EC_KEY_get_ex_data(eckey, g.ex_index);
  if (!k) {
    ERR_raise_data(err_lib, R_SIGN_FAILED, "EC key is not an HSM key");
    return NULL;
  }
  unsigned char raw[2 * 66];
  CK_ULONG raw_len = sizeof(raw);
  CK_RV rv = CKR_GENERAL_ERROR;
  CK_MECHANISM mech = {CKM_ECDSA, NULL, 0};

  pthread_mutex_lock(&g.lock);
  for (int attempt = 0; attempt < 2; attempt++) {
    rv = ensure_session_locked();
    if (rv == CKR_OK && k->generation != g.generation) {
      rv = find_object_locked(CKO_PRIVATE_KEY, k->label, k->id, k->id_len, &k->handle);
      if (rv == CKR_OK) k->generation = g.generation;
    }
    if (rv == CKR_OK) rv = g.f->C_SignInit(g.session, &mech, k->handle);
    if (rv == CKR_OK) {
      raw_len = sizeof(raw);
      rv = g.f->C_Sign(g.session, (CK_BYTE_PTR)dgst, (CK_ULONG)dgst_len, raw, &raw_len);
    }
    if (rv == CKR_OK || attempt == 1 || !is_recoverable(rv)) break;
    /* Session, login or device gone: a new session (re-initialising if needed), then once more. */
    int stale = rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED || rv == CKR_CRYPTOKI_NOT_INITIALIZED || rv == CKR_DEVICE_REMOVED;
    drop_session_locked(!stale);
    g.reopens++;
  }
  if (rv == CKR_OK) g.signs++;
  else {
    g.sign_failures++;
    g.last_rv = rv;
  }
  pthread_mutex_unlock(&g.lock);

  if (rv != CKR_OK) {
    ERR_raise_data(err_lib, R_SIGN_FAILED, "key \"%s\": CK_RV 0x%lx", k->label, (unsigned long)rv);
    return NULL;
  }
  if (raw_len != (CK_ULONG)(2 * k->field_len)) {
    ERR_raise_data(err_lib, R_SIGN_FAILED, "CKM_ECDSA for \"%s\" returned %lu bytes", k->label, (unsigned long)raw_len);
    return NULL;
  }
  BIGNUM *r = BN_bin2bn(raw, k->field_len, NULL);
  BIGNUM *s = BN_bin2bn(raw + k->field_len, k->field_len, NULL);
  ECDSA_SIG *sig = ECDSA_SIG_new();
  if (!r || !s || !sig || !ECDSA_SIG_set0(sig, r, s)) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return NULL;
  }
  return sig;
}

static int hsm_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig, unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *eckey) {
  (void)type;
  ECDSA_SIG *s = hsm_sign_sig(dgst, dlen, kinv, r, eckey);
  if (!s) return 0;
  int n = i2d_ECDSA_SIG(s, &sig);
  ECDSA_SIG_free(s);
  if (n <= 0) return 0;
  *siglen = (unsigned int)n;
  return 1;
}

/* ------------------------------------------------------------------ load_privkey */

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-decodes [s, s+n) into a malloc'd buffer (NUL-terminated). */
static unsigned char *pct_decode(const char *s, size_t n, size_t *out_len) {
  unsigned char *o = malloc(n + 1);
  size_t j = 0;
  if (!o) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '%') {
      if (i + 2 >= n) { free(o); return NULL; }
      int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
      if (hi < 0 || lo < 0) { free(o); return NULL; }
      o[j++] = (unsigned char)(hi * 16 + lo);
      i += 2;
    } else {
      o[j++] = (unsigned char)s[i];
    }
  }
  o[j] = 0;
  *out_len = j;
  return o;
}

struct key_ref {
  char *label;
  unsigned char *id;
  size_t id_len;
  char *token;
  char *type;
};

static void key_ref_free(struct key_ref *r) {
  free(r->label);
  free(r->id);
  free(r->token);
  free(r->type);
}

/* RFC 7512 path attributes object/token/id/type; anything else in the path is ignored here, the query too. */
static int parse_key_id(const char *key_id, struct key_ref *r) {
  memset(r, 0, sizeof(*r));
  if (strncasecmp(key_id, "pkcs11:", 7) != 0) {
    r->label = strdup(key_id);
    return r->label != NULL;
  }
  const char *p = key_id + 7;
  const char *end = strchr(p, '?');
  if (!end) end = p + strlen(p);
  while (p < end) {
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *stop = semi ? semi : end;
    const char *eq = memchr(p, '=', (size_t)(stop - p));
    if (eq) {
      size_t nlen = (size_t)(eq - p), vlen;
      unsigned char *v = pct_decode(eq + 1, (size_t)(stop - eq - 1), &vlen);
      if (!v) return 0;
      if (nlen == 6 && strncmp(p, "object", 6) == 0) { free(r->label); r->label = (char *)v; }
      else if (nlen == 5 && strncmp(p, "token", 5) == 0) { free(r->token); r->token = (char *)v; }
      else if (nlen == 4 && strncmp(p, "type", 4) == 0) { free(r->type); r->type = (char *)v; }
      else if (nlen == 2 && strncmp(p, "id", 2) == 0) { free(r->id); r->id = v; r->id_len = vlen; }
      else free(v);
    }
    p = stop + (semi ? 1 : 0);
  }
  return r->label != NULL;
}

static EVP_PKEY *hsm_load_privkey(ENGINE *e, const char *key_id, UI_METHOD *ui, void *cb) {
  (void)e, (void)ui, (void)cb;
  struct key_ref ref = {0};
  if (!key_id || !parse_key_id(key_id, &ref)) {
    ERR_raise_data(err_lib, R_BAD_KEY_ID, "key id %s", key_id ? key_id : "(null)");
    key_ref_free(&ref);
    return NULL;
  }
  if (ref.token && strcmp(ref.token, g.token_label) != 0) {
    ERR_raise_data(err_lib, R_OTHER_TOKEN, "key URI names token \"%s\", the engine serves \"%s\"", ref.token, g.token_label);
    key_ref_free(&ref);
    return NULL;
  }
  if (ref.type && strcmp(ref.type, "private") != 0) {
    ERR_raise_data(err_lib, R_OTHER_TOKEN, "key URI type must be private");
    key_ref_free(&ref);
    return NULL;
  }

  EVP_PKEY *pkey = NULL;
  EC_KEY *ec = NULL;
  EC_POINT *pt = NULL;
  ASN1_OBJECT *oid = NULL;
  ASN1_OCTET_STRING *os = NULL;
  unsigned char *params = NULL, *point = NULL, *ckid = NULL;
  CK_ULONG params_len = 0, point_len = 0, ckid_len = 0;
  CK_OBJECT_HANDLE priv = 0, pub = 0;
  CK_KEY_TYPE kt = 0;
  CK_ATTRIBUTE kta = {CKA_KEY_TYPE, &kt, sizeof(kt)};
  CK_RV rv = CKR_OK;
  const char *what = "open a session for";
  unsigned long generation = 0;

  pthread_mutex_lock(&g.lock);
  for (int attempt = 0; attempt < 2; attempt++) {
    what = "open a session for";
    rv = ensure_session_locked();
    if (rv == CKR_OK) { what = "find the private key"; rv = find_object_locked(CKO_PRIVATE_KEY, ref.label, ref.id, ref.id_len, &priv); }
    if (rv == CKR_OK) { what = "read CKA_KEY_TYPE"; rv = g.f->C_GetAttributeValue(g.session, priv, &kta, 1); }
    if (rv == CKR_OK && kt != CKK_EC) break; /* refused below, with its own reason */
    if (rv == CKR_OK && !ref.id) {
      free(ckid);
      ckid = NULL;
      if (read_attr_locked(priv, CKA_ID, &ckid, &ckid_len) != CKR_OK) { ckid = NULL; ckid_len = 0; }
    }
    if (rv == CKR_OK) {
      what = "find the public key";
      rv = find_object_locked(CKO_PUBLIC_KEY, ref.label, ref.id ? ref.id : ckid, ref.id ? ref.id_len : ckid_len, &pub);
    }
    if (rv == CKR_OK) { what = "read CKA_EC_PARAMS"; free(params); params = NULL; rv = read_attr_locked(pub, CKA_EC_PARAMS, &params, &params_len); }
    if (rv == CKR_OK) { what = "read CKA_EC_POINT"; free(point); point = NULL; rv = read_attr_locked(pub, CKA_EC_POINT, &point, &point_len); }
    /* A key not found may also mean the token was logged out underneath: one fresh session, then believe it. */
    if (rv == CKR_OK || attempt == 1 || !is_recoverable(rv)) break;
    drop_session_locked(!(rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED || rv == CKR_CRYPTOKI_NOT_INITIALIZED));
    g.reopens++;
  }
  generation = g.generation;
  pthread_mutex_unlock(&g.lock);

  if (rv == CKR_OK && kt != CKK_EC) {
    ERR_raise_data(err_lib, R_NOT_EC_KEY, "key \"%s\" is not an EC key", ref.label);
    goto done;
  }
  if (rv != CKR_OK) {
    if (rv == CKR_OBJECT_HANDLE_INVALID)
      ERR_raise_data(err_lib, R_KEY_NOT_FOUND, "cannot %s \"%s\" on token \"%s\": no such object", what, ref.label, g.token_label);
    else
      ERR_raise_data(err_lib, R_PKCS11_ERROR, "cannot %s \"%s\" on token \"%s\" (CK_RV 0x%lx)", what, ref.label, g.token_label, (unsigned long)rv);
    goto done;
  }
  const unsigned char *pp = params;
  oid = d2i_ASN1_OBJECT(NULL, &pp, (long)params_len);
  int nid = oid ? OBJ_obj2nid(oid) : NID_undef;
  if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1) {
    ERR_raise_data(err_lib, R_NOT_EC_KEY, "key \"%s\": only P-256 and P-384 are supported", ref.label);
    goto done;
  }
  ec = EC_KEY_new_by_curve_name(nid);
  if (!ec) goto done;
  const EC_GROUP *group = EC_KEY_get0_group(ec);
  int field_len = (EC_GROUP_get_degree(group) + 7) / 8;
  /* CKA_EC_POINT is a DER OCTET STRING around the point; some tokens give the bare point. */
  const unsigned char *q = point;
  long qlen = (long)point_len;
  if (point_len != (CK_ULONG)(2 * field_len + 1)) {
    const unsigned char *pp2 = point;
    os = d2i_ASN1_OCTET_STRING(NULL, &pp2, (long)point_len);
    if (!os) {
      ERR_raise_data(err_lib, R_NOT_EC_KEY, "key \"%s\": CKA_EC_POINT is malformed", ref.label);
      goto done;
    }
    q = ASN1_STRING_get0_data(os);
    qlen = ASN1_STRING_length(os);
  }
  pt = EC_POINT_new(group);
  if (!pt || !EC_POINT_oct2point(group, pt, q, (size_t)qlen, NULL) || !EC_KEY_set_public_key(ec, pt)) goto done;

  struct hsm_key *k = calloc(1, sizeof(*k));
  if (!k) goto done;
  k->label = strdup(ref.label);
  k->field_len = field_len;
  k->handle = priv;
  k->generation = generation;
  if (ref.id || ckid) {
    k->id_len = ref.id ? ref.id_len : ckid_len;
    k->id = malloc(k->id_len ? k->id_len : 1);
    if (k->id) memcpy(k->id, ref.id ? ref.id : ckid, k->id_len);
  }
  if (!k->label || ((ref.id || ckid) && !k->id) || !EC_KEY_set_ex_data(ec, g.ex_index, k)) {
    hsm_key_free(NULL, k, NULL, 0, 0, NULL);
    goto done;
  }
  if (!EC_KEY_set_method(ec, g.ec_method)) goto done;
  pkey = EVP_PKEY_new();
  if (!pkey || !EVP_PKEY_assign(pkey, EVP_PKEY_EC, ec)) {
    EVP_PKEY_free(pkey);
    pkey = NULL;
    goto done;
  }
  ec = NULL; /* owned by pkey now */

done:
  EC_KEY_free(ec);
  EC_POINT_free(pt);
  ASN1_OBJECT_free(oid);
  ASN1_OCTET_STRING_free(os);
  free(params);
  free(point);
  free(ckid);
  key_ref_free(&ref);
  return pkey;
}

/* ------------------------------------------------------------------ N-API */

static napi_value throw_error(napi_env env, const char *msg) {
  napi_throw_error(env, "HSM_TLS_ENGINE", msg);
  return NULL;
}

static char *get_string(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (!s) return NULL;
  napi_get_value_string_utf8(env, v, s, len + 1, &len);
  return s;
}

static int make_engine(void) {
  if (!err_lib) {
    err_lib = ERR_get_next_error_library();
    err_lib_name[0].error = ERR_PACK(err_lib, 0, 0);
    ERR_load_strings(err_lib, err_lib_name);
    ERR_load_strings(err_lib, err_reasons);
  }
  if (!g.ec_method) {
    int (*def_sign)(int, const unsigned char *, int, unsigned char *, unsigned int *, const BIGNUM *, const BIGNUM *, EC_KEY *) = NULL;
    int (*def_setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;
    ECDSA_SIG *(*def_sig)(const unsigned char *, int, const BIGNUM *, const BIGNUM *, EC_KEY *) = NULL;
    g.ec_method = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
    if (!g.ec_method) return 0;
    EC_KEY_METHOD_get_sign(EC_KEY_OpenSSL(), &def_sign, &def_setup, &def_sig);
    EC_KEY_METHOD_set_sign(g.ec_method, hsm_sign, def_setup, hsm_sign_sig);
  }
  if (g.ex_index < 0) {
    g.ex_index = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_EC_KEY, 0, NULL, NULL, hsm_key_dup, hsm_key_free);
    if (g.ex_index < 0) return 0;
  }
  ENGINE *e = ENGINE_by_id(ENGINE_ID);
  if (e) { /* already in OpenSSL's list (e.g. the addon was loaded twice) */
    ENGINE_free(e);
    return 1;
  }
  ERR_clear_error();
  e = ENGINE_new();
  if (!e) return 0;
  int ok = ENGINE_set_id(e, ENGINE_ID) && ENGINE_set_name(e, ENGINE_NAME) && ENGINE_set_load_privkey_function(e, hsm_load_privkey) && ENGINE_add(e);
  ENGINE_free(e); /* the engine list keeps its own reference */
  return ok;
}

/* register(modulePath, tokenLabel, pin) → engine id */
static napi_value Register(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) return throw_error(env, "register(modulePath, tokenLabel, pin)");
  char *path = get_string(env, argv[0]);
  char *label = get_string(env, argv[1]);
  char *pin = get_string(env, argv[2]);
  char err[512] = {0};
  if (!path || !label || !pin) {
    snprintf(err, sizeof(err), "register: arguments must be strings");
    goto fail;
  }
  if (strlen(label) > 32) {
    snprintf(err, sizeof(err), "token label longer than 32 bytes");
    goto fail;
  }

  pthread_mutex_lock(&g.lock);
  if (g.registered && strcmp(g.module_path, path) != 0) {
    pthread_mutex_unlock(&g.lock);
    snprintf(err, sizeof(err), "the engine is already registered for module %s", g.module_path);
    goto fail;
  }
  if (!g.dl) {
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
      pthread_mutex_unlock(&g.lock);
      snprintf(err, sizeof(err), "cannot load PKCS#11 module: %s", dlerror());
      goto fail;
    }
    CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
    CK_FUNCTION_LIST_PTR f = NULL;
    if (!gfl || gfl(&f) != CKR_OK || !f) {
      dlclose(dl);
      pthread_mutex_unlock(&g.lock);
      snprintf(err, sizeof(err), "%s has no usable C_GetFunctionList", path);
      goto fail;
    }
    g.dl = dl;
    g.f = f;
    g.module_path = strdup(path);
  }
  CK_RV rv = initialize_locked();
  /* Try the new token and PIN; on failure keep serving the previous ones (if any). */
  char old_label[sizeof(g.token_label)];
  char *old_pin = g.pin;
  memcpy(old_label, g.token_label, sizeof(old_label));
  if (g.have_session) drop_session_locked(1);
  memset(g.token_label, 0, sizeof(g.token_label));
  strncpy(g.token_label, label, sizeof(g.token_label) - 1);
  g.pin = pin;
  if (rv == CKR_OK) rv = open_session_locked();
  if (rv != CKR_OK) {
    memcpy(g.token_label, old_label, sizeof(old_label));
    g.pin = old_pin;
    pthread_mutex_unlock(&g.lock);
    snprintf(err, sizeof(err), "cannot open a logged-in session on token \"%s\" (CK_RV 0x%lx)", label, (unsigned long)rv);
    goto fail;
  }
  pin = NULL;
  if (old_pin) {
    memset(old_pin, 0, strlen(old_pin));
    free(old_pin);
  }
  if (!make_engine()) {
    pthread_mutex_unlock(&g.lock);
    snprintf(err, sizeof(err), "cannot register OpenSSL ENGINE %s", ENGINE_ID);
    goto fail;
  }
  g.registered = 1;
  pthread_mutex_unlock(&g.lock);
  free(path);
  free(label);
  napi_value out;
  napi_create_string_utf8(env, ENGINE_ID, NAPI_AUTO_LENGTH, &out);
  return out;

fail:
  free(path);
  free(label);
  if (pin) {
    memset(pin, 0, strlen(pin));
    free(pin);
  }
  return throw_error(env, err);
}

/* invalidateSessions(): the module was finalised and initialised again by someone else in the
 * process; our session number may now belong to another session, so forget it without closing. */
static napi_value InvalidateSessions(napi_env env, napi_callback_info info) {
  (void)info;
  pthread_mutex_lock(&g.lock);
  if (g.f) drop_session_locked(0);
  pthread_mutex_unlock(&g.lock);
  return NULL;
}

/* stats() → { signs, signFailures, reopens, lastError } */
static napi_value Stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value o, v;
  napi_create_object(env, &o);
  pthread_mutex_lock(&g.lock);
  napi_create_double(env, (double)g.signs, &v);
  napi_set_named_property(env, o, "signs", v);
  napi_create_double(env, (double)g.sign_failures, &v);
  napi_set_named_property(env, o, "signFailures", v);
  napi_create_double(env, (double)g.reopens, &v);
  napi_set_named_property(env, o, "reopens", v);
  napi_create_double(env, (double)g.last_rv, &v);
  napi_set_named_property(env, o, "lastError", v);
  pthread_mutex_unlock(&g.lock);
  return o;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"register", NULL, Register, NULL, NULL, NULL, napi_default, NULL},
      {"invalidateSessions", NULL, InvalidateSessions, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, Stats, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
