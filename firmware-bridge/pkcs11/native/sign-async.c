/*
 * yiqian_pkcs11_sign: C_SignInit + C_Sign as ONE job on the libuv thread pool (napi async work).
 *
 * Why: pkcs11js has C_SignAsync but no async C_SignInit, and SoftHSM2 decrypts and loads the key
 * object on every C_SignInit (~0.1 ms), so with pkcs11js the init ran on Node's main thread and
 * HSM signing saturated the one JS thread while other cores idled.
 *
 * The module is the library pkcs11js already loaded in this process: dlopen() of the same path
 * returns the same instance, so pkcs11js's session and object handles are valid here. This file
 * never calls C_Initialize / C_Finalize (pkcs11js owns the module's lifecycle); after pkcs11js
 * finalises and initialises it again, our dlopen handle and function list stay valid (we hold a
 * reference, so the library is never unmapped) — only the session/object handles change, and
 * those come from the caller on every call.
 *
 * JS API (see ../sign-async.ts):
 *   load(modulePath) → module index (the same index for the same path)
 *   sign(module, session, mechanismType, param | null, keyHandle, data, outLen) → Promise<Buffer>
 *   signMany(… same, but data[] of 1..256 Buffers) → Promise<Buffer[]> (one job, inputs in turn)
 * session and keyHandle are pkcs11js's encoding of CK_SESSION_HANDLE / CK_OBJECT_HANDLE: a Buffer
 * of sizeof(CK_ULONG) bytes holding the value in native byte order (pkcs11js src/pkcs11.cpp
 * get_args_handle). param is null or {hashAlg, mgf, sLen} (CK_RSA_PKCS_PSS_PARAMS, PKCS#11 v2.40
 * §2.1.15). A failure rejects with an Error whose `code` is the CK_RV (a number) and whose
 * `method` is "C_SignInit" or "C_Sign"; the TS wrapper turns it into pkcs11js's Pkcs11Error shape.
 *
 * The caller must not use the session for anything else while a job runs (the custody's session
 * pool hands a session to one operation at a time).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>

#include "pkcs11.h"
#include "pool-thread.h"

#define MAX_MODULES 8

static struct {
  pthread_mutex_t lock;
  int n;
  char *path[MAX_MODULES];
  void *dl[MAX_MODULES];
  CK_FUNCTION_LIST_PTR f[MAX_MODULES];
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* What every signing job shares: the module, session, key and mechanism (with PSS parameters). */
struct op {
  CK_FUNCTION_LIST_PTR f;
  CK_SESSION_HANDLE session;
  CK_OBJECT_HANDLE key;
  CK_MECHANISM mech;
  CK_RSA_PKCS_PSS_PARAMS pss;
};

struct job {
  napi_async_work work;
  napi_deferred deferred;
  struct op op;
  unsigned char *data;
  CK_ULONG data_len;
  unsigned char *out;
  CK_ULONG out_len;
  CK_RV rv;
  const char *method;
};

/* signMany: the same key and mechanism over n inputs, one after the other on one session. */
#define MANY_MAX 256
struct many {
  napi_async_work work;
  napi_deferred deferred;
  struct op op;
  uint32_t n;
  uint32_t done; /* inputs signed before a failure */
  unsigned char *data[MANY_MAX];
  CK_ULONG data_len[MANY_MAX];
  unsigned char *out[MANY_MAX];
  CK_ULONG out_len[MANY_MAX];
  CK_RV rv;
  const char *method;
};

/* ------------------------------------------------------------------ the job (libuv thread) */

/*
 * PKCS#11 v2.40 §5.2 / §5.12: C_Sign ends the signing operation unless it returns
 * CKR_BUFFER_TOO_SMALL or is a successful length query (NULL output). A failed C_SignInit leaves
 * no operation active. So the only exit that needs care is after CKR_BUFFER_TOO_SMALL.
 */
/* One C_SignInit + C_Sign into *out (malloc'd, *out_len bytes; grown once). Returns the CK_RV
 * and sets *method to the call that failed. */
static CK_RV sign_one(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE session, CK_MECHANISM *mech, CK_OBJECT_HANDLE key, unsigned char *data,
                      CK_ULONG data_len, unsigned char **out, CK_ULONG *out_len, const char **method) {
  *method = "C_SignInit";
  CK_RV rv = f->C_SignInit(session, mech, key);
  if (rv != CKR_OK) return rv;
  *method = "C_Sign";
  CK_ULONG len = *out_len;
  rv = f->C_Sign(session, data, data_len, *out, &len);
  if (rv == CKR_BUFFER_TOO_SMALL) {
    /* The operation is still active and `len` is the size needed: grow the buffer, call again. */
    unsigned char *bigger = len > 0 ? realloc(*out, len) : NULL;
    if (!bigger) {
      /* End the operation with a C_Sign that fails (NULL length pointer → CKR_ARGUMENTS_BAD
       * terminates it, §5.12); the pool also drops the session on any error we report. */
      f->C_Sign(session, data, data_len, NULL, NULL);
      return CKR_HOST_MEMORY;
    }
    *out = bigger;
    *out_len = len;
    rv = f->C_Sign(session, data, data_len, *out, &len);
  }
  if (rv == CKR_OK) *out_len = len;
  return rv;
}

static void execute(napi_env env, void *arg) {
  (void)env;
  struct job *j = arg;
  yq_pool_thread_batch();
  j->rv = sign_one(j->op.f, j->op.session, &j->op.mech, j->op.key, j->data, j->data_len, &j->out, &j->out_len, &j->method);
}

/* Stops at the first failure: the caller signs what is left (and recovers) one by one. */
static void many_execute(napi_env env, void *arg) {
  (void)env;
  struct many *m = arg;
  yq_pool_thread_batch();
  m->rv = CKR_OK;
  for (m->done = 0; m->done < m->n; m->done++) {
    uint32_t i = m->done;
    m->rv = sign_one(m->op.f, m->op.session, &m->op.mech, m->op.key, m->data[i], m->data_len[i], &m->out[i], &m->out_len[i], &m->method);
    if (m->rv != CKR_OK) return;
  }
}

static void many_free(napi_env env, struct many *m) {
  if (m->work) napi_delete_async_work(env, m->work);
  for (uint32_t i = 0; i < m->n; i++) {
    free(m->data[i]);
    if (m->out[i]) {
      memset(m->out[i], 0, m->out_len[i]);
      free(m->out[i]);
    }
  }
  free(m);
}

static void job_free(napi_env env, struct job *j) {
  if (j->work) napi_delete_async_work(env, j->work);
  free(j->data);
  if (j->out) {
    memset(j->out, 0, j->out_len);
    free(j->out);
  }
  free(j);
}

/* pkcs11js-like error: message names the call and the CK_RV, `code` carries the CK_RV. */
static napi_value rv_error(napi_env env, const char *method, CK_RV rv) {
  char msg[96];
  snprintf(msg, sizeof(msg), "%s failed: CK_RV 0x%lx", method, (unsigned long)rv);
  napi_value m, err, code, meth;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_error(env, NULL, m, &err);
  napi_create_double(env, (double)rv, &code);
  napi_set_named_property(env, err, "code", code);
  napi_create_string_utf8(env, method, NAPI_AUTO_LENGTH, &meth);
  napi_set_named_property(env, err, "method", meth);
  return err;
}

static void complete(napi_env env, napi_status status, void *arg) {
  struct job *j = arg;
  if (status != napi_ok) {
    napi_reject_deferred(env, j->deferred, rv_error(env, "C_Sign", CKR_FUNCTION_CANCELED));
  } else if (j->rv != CKR_OK) {
    napi_reject_deferred(env, j->deferred, rv_error(env, j->method, j->rv));
  } else {
    napi_value buf;
    if (napi_create_buffer_copy(env, j->out_len, j->out, NULL, &buf) == napi_ok) {
      napi_resolve_deferred(env, j->deferred, buf);
    } else {
      napi_reject_deferred(env, j->deferred, rv_error(env, "C_Sign", CKR_HOST_MEMORY));
    }
  }
  job_free(env, j);
}

/* ------------------------------------------------------------------ N-API */

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
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

/* A CK_ULONG handle in pkcs11js's Buffer encoding. */
static int get_handle(napi_env env, napi_value v, CK_ULONG *out) {
  bool is_buf = false;
  void *data;
  size_t len;
  if (napi_is_buffer(env, v, &is_buf) != napi_ok || !is_buf) return 0;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok || len != sizeof(CK_ULONG)) return 0;
  memcpy(out, data, sizeof(CK_ULONG));
  return 1;
}

/* A non-negative integer that fits a CK_ULONG (vendor numbers exceed 2^31). */
static int get_ulong(napi_env env, napi_value v, CK_ULONG *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return 0;
  if (!(d >= 0 && d <= 4294967295.0 * 4294967296.0) || d != (double)(unsigned long long)d) return 0;
  *out = (CK_ULONG)d;
  return 1;
}

static int get_ulong_prop(napi_env env, napi_value o, const char *name, CK_ULONG *out) {
  napi_value v;
  return napi_get_named_property(env, o, name, &v) == napi_ok && get_ulong(env, v, out);
}

/* load(modulePath) → index */
static napi_value Load(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char *path = argc == 1 ? get_string(env, argv[0]) : NULL;
  if (!path) return throw_type(env, "load(modulePath: string)");
  char err[512] = {0};
  int idx = -1;
  pthread_mutex_lock(&g.lock);
  for (int i = 0; i < g.n; i++) {
    if (strcmp(g.path[i], path) == 0) idx = i;
  }
  if (idx < 0) {
    if (g.n == MAX_MODULES) {
      snprintf(err, sizeof(err), "more than %d PKCS#11 modules", MAX_MODULES);
    } else {
      void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
      CK_C_GetFunctionList gfl = dl ? (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList") : NULL;
      CK_FUNCTION_LIST_PTR f = NULL;
      if (!dl) {
        snprintf(err, sizeof(err), "cannot load PKCS#11 module: %s", dlerror());
      } else if (!gfl || gfl(&f) != CKR_OK || !f) {
        dlclose(dl);
        snprintf(err, sizeof(err), "%s has no usable C_GetFunctionList", path);
      } else {
        idx = g.n++;
        g.path[idx] = path;
        g.dl[idx] = dl;
        g.f[idx] = f;
        path = NULL;
      }
    }
  }
  pthread_mutex_unlock(&g.lock);
  free(path);
  if (idx < 0) {
    napi_throw_error(env, "PKCS11_SIGN_LOAD", err);
    return NULL;
  }
  napi_value out;
  napi_create_int32(env, idx, &out);
  return out;
}

/* The first five arguments of sign and signMany: (module, session, mechanismType, param, keyHandle).
 * Returns NULL, or the TypeError message. */
static const char *get_op(napi_env env, napi_value *argv, struct op *op) {
  int32_t mod;
  if (napi_get_value_int32(env, argv[0], &mod) != napi_ok) return "module must be an index from load()";
  pthread_mutex_lock(&g.lock);
  op->f = mod >= 0 && mod < g.n ? g.f[mod] : NULL;
  pthread_mutex_unlock(&g.lock);
  if (!op->f) return "module must be an index from load()";
  if (!get_handle(env, argv[1], &op->session)) return "session must be a pkcs11js session handle (Buffer of sizeof(CK_ULONG) bytes)";
  if (!get_ulong(env, argv[2], &op->mech.mechanism)) return "mechanismType must be a CK_MECHANISM_TYPE number";
  napi_valuetype pt;
  napi_typeof(env, argv[3], &pt);
  if (pt == napi_object) {
    if (!get_ulong_prop(env, argv[3], "hashAlg", &op->pss.hashAlg) || !get_ulong_prop(env, argv[3], "mgf", &op->pss.mgf) ||
        !get_ulong_prop(env, argv[3], "sLen", &op->pss.sLen)) {
      return "param must be null or {hashAlg, mgf, sLen} numbers";
    }
    op->mech.pParameter = &op->pss;
    op->mech.ulParameterLen = sizeof(op->pss);
  } else if (pt != napi_null && pt != napi_undefined) {
    return "param must be null or {hashAlg, mgf, sLen} numbers";
  }
  if (!get_handle(env, argv[4], &op->key)) return "keyHandle must be a pkcs11js object handle (Buffer of sizeof(CK_ULONG) bytes)";
  return NULL;
}

/* A copy of a JS Buffer (the job owns it: the JS buffer may be moved or reused while it runs). */
static int copy_buffer(napi_env env, napi_value v, unsigned char **out, CK_ULONG *out_len) {
  bool is_buf = false;
  void *data;
  size_t len;
  if (napi_is_buffer(env, v, &is_buf) != napi_ok || !is_buf || napi_get_buffer_info(env, v, &data, &len) != napi_ok) return 0;
  *out = malloc(len ? len : 1);
  if (!*out) return 0;
  memcpy(*out, data, len);
  *out_len = (CK_ULONG)len;
  return 1;
}

static int get_out_len(napi_env env, napi_value v, CK_ULONG *out) {
  return get_ulong(env, v, out) && *out > 0 && *out <= 65536;
}

static napi_value queue(napi_env env, napi_async_work *work, napi_deferred *deferred, const char *name, napi_async_execute_callback exec,
                        napi_async_complete_callback done, void *data, int *queued) {
  napi_value promise, n;
  napi_create_promise(env, deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &n);
  *queued = napi_create_async_work(env, NULL, n, exec, done, data, work) == napi_ok && napi_queue_async_work(env, *work) == napi_ok;
  if (!*queued) napi_reject_deferred(env, *deferred, rv_error(env, "C_SignInit", CKR_HOST_MEMORY));
  return promise;
}

/* sign(module, session, mechanismType, param | null, keyHandle, data, outLen) → Promise<Buffer> */
static napi_value Sign(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 7) return throw_type(env, "sign(module, session, mechanismType, param, keyHandle, data, outLen)");
  struct job *j = calloc(1, sizeof(*j));
  if (!j) return throw_type(env, "out of memory");
  const char *bad = get_op(env, argv, &j->op);
  if (!bad && !get_out_len(env, argv[6], &j->out_len)) bad = "outLen must be an integer 1..65536";
  if (!bad && !copy_buffer(env, argv[5], &j->data, &j->data_len)) bad = "data must be a Buffer";
  if (!bad && !(j->out = malloc(j->out_len))) bad = "out of memory";
  if (bad) {
    job_free(env, j);
    return throw_type(env, bad);
  }
  int queued;
  napi_value promise = queue(env, &j->work, &j->deferred, "yiqian.pkcs11.sign", execute, complete, j, &queued);
  if (!queued) job_free(env, j);
  return promise;
}

static void many_complete(napi_env env, napi_status status, void *arg) {
  struct many *m = arg;
  if (status != napi_ok) {
    napi_reject_deferred(env, m->deferred, rv_error(env, "C_Sign", CKR_FUNCTION_CANCELED));
  } else if (m->rv != CKR_OK) {
    napi_value err = rv_error(env, m->method, m->rv), done;
    napi_create_uint32(env, m->done, &done);
    napi_set_named_property(env, err, "signed", done);
    napi_reject_deferred(env, m->deferred, err);
  } else {
    napi_value arr, buf;
    napi_create_array_with_length(env, m->n, &arr);
    uint32_t i = 0;
    for (; i < m->n; i++) {
      if (napi_create_buffer_copy(env, m->out_len[i], m->out[i], NULL, &buf) != napi_ok || napi_set_element(env, arr, i, buf) != napi_ok) break;
    }
    if (i == m->n) napi_resolve_deferred(env, m->deferred, arr);
    else napi_reject_deferred(env, m->deferred, rv_error(env, "C_Sign", CKR_HOST_MEMORY));
  }
  many_free(env, m);
}

/* signMany(module, session, mechanismType, param | null, keyHandle, data[], outLen) → Promise<Buffer[]>.
 * One job signs every input in turn on the session (one thread hand-over for the lot). A failure
 * rejects with `code`, `method` and `signed` (how many inputs were signed before it). */
static napi_value SignMany(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 7) return throw_type(env, "signMany(module, session, mechanismType, param, keyHandle, data[], outLen)");
  struct many *m = calloc(1, sizeof(*m));
  if (!m) return throw_type(env, "out of memory");
  const char *bad = get_op(env, argv, &m->op);
  bool is_array = false;
  uint32_t n = 0;
  CK_ULONG out_len = 0;
  if (!bad && !get_out_len(env, argv[6], &out_len)) bad = "outLen must be an integer 1..65536";
  if (!bad && (napi_is_array(env, argv[5], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[5], &n) != napi_ok || n == 0 || n > MANY_MAX)) {
    bad = "data must be an array of 1..256 Buffers";
  }
  for (uint32_t i = 0; !bad && i < n; i++) {
    napi_value v;
    m->n = i + 1; /* many_free frees what was copied so far */
    if (napi_get_element(env, argv[5], i, &v) != napi_ok || !copy_buffer(env, v, &m->data[i], &m->data_len[i])) bad = "data must be an array of 1..256 Buffers";
    else if (!(m->out[i] = malloc(out_len))) bad = "out of memory";
    else m->out_len[i] = out_len;
  }
  if (bad) {
    many_free(env, m);
    return throw_type(env, bad);
  }
  int queued;
  napi_value promise = queue(env, &m->work, &m->deferred, "yiqian.pkcs11.signMany", many_execute, many_complete, m, &queued);
  if (!queued) many_free(env, m);
  return promise;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"load", NULL, Load, NULL, NULL, NULL, napi_default, NULL},
      {"sign", NULL, Sign, NULL, NULL, NULL, napi_default, NULL},
      {"signMany", NULL, SignMany, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
