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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>

#include "pkcs11.h"

#define MAX_MODULES 8

static struct {
  pthread_mutex_t lock;
  int n;
  char *path[MAX_MODULES];
  void *dl[MAX_MODULES];
  CK_FUNCTION_LIST_PTR f[MAX_MODULES];
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

struct job {
  napi_async_work work;
  napi_deferred deferred;
  CK_FUNCTION_LIST_PTR f;
  CK_SESSION_HANDLE session;
  CK_OBJECT_HANDLE key;
  CK_MECHANISM mech;
  CK_RSA_PKCS_PSS_PARAMS pss;
  unsigned char *data;
  CK_ULONG data_len;
  unsigned char *out;
  CK_ULONG out_len;
  CK_RV rv;
  const char *method;
};

/* ------------------------------------------------------------------ the job (libuv thread) */

/*
 * PKCS#11 v2.40 §5.2 / §5.12: C_Sign ends the signing operation unless it returns
 * CKR_BUFFER_TOO_SMALL or is a successful length query (NULL output). A failed C_SignInit leaves
 * no operation active. So the only exit that needs care is after CKR_BUFFER_TOO_SMALL.
 */
static void execute(napi_env env, void *arg) {
  (void)env;
  struct job *j = arg;
  j->method = "C_SignInit";
  j->rv = j->f->C_SignInit(j->session, &j->mech, j->key);
  if (j->rv != CKR_OK) return;
  j->method = "C_Sign";
  CK_ULONG len = j->out_len;
  j->rv = j->f->C_Sign(j->session, j->data, j->data_len, j->out, &len);
  if (j->rv == CKR_BUFFER_TOO_SMALL) {
    /* The operation is still active and `len` is the size needed: grow the buffer, call again. */
    unsigned char *bigger = len > 0 ? realloc(j->out, len) : NULL;
    if (!bigger) {
      /* End the operation with a C_Sign that fails (NULL length pointer → CKR_ARGUMENTS_BAD
       * terminates it, §5.12); the pool also drops the session on any error we report. */
      j->f->C_Sign(j->session, j->data, j->data_len, NULL, NULL);
      j->rv = CKR_HOST_MEMORY;
      return;
    }
    j->out = bigger;
    j->out_len = len;
    j->rv = j->f->C_Sign(j->session, j->data, j->data_len, j->out, &len);
  }
  if (j->rv == CKR_OK) j->out_len = len;
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

/* sign(module, session, mechanismType, param | null, keyHandle, data, outLen) → Promise<Buffer> */
static napi_value Sign(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != 7) return throw_type(env, "sign(module, session, mechanismType, param, keyHandle, data, outLen)");
  int32_t mod;
  if (napi_get_value_int32(env, argv[0], &mod) != napi_ok) return throw_type(env, "module must be an index from load()");
  pthread_mutex_lock(&g.lock);
  CK_FUNCTION_LIST_PTR f = mod >= 0 && mod < g.n ? g.f[mod] : NULL;
  pthread_mutex_unlock(&g.lock);
  if (!f) return throw_type(env, "module must be an index from load()");

  struct job *j = calloc(1, sizeof(*j));
  if (!j) return throw_type(env, "out of memory");
  j->f = f;
  CK_ULONG out_len;
  if (!get_handle(env, argv[1], &j->session)) goto bad_session;
  if (!get_ulong(env, argv[2], &j->mech.mechanism)) goto bad_mech;
  napi_valuetype pt;
  napi_typeof(env, argv[3], &pt);
  if (pt == napi_object) {
    if (!get_ulong_prop(env, argv[3], "hashAlg", &j->pss.hashAlg) || !get_ulong_prop(env, argv[3], "mgf", &j->pss.mgf) ||
        !get_ulong_prop(env, argv[3], "sLen", &j->pss.sLen)) {
      goto bad_param;
    }
    j->mech.pParameter = &j->pss;
    j->mech.ulParameterLen = sizeof(j->pss);
  } else if (pt != napi_null && pt != napi_undefined) {
    goto bad_param;
  }
  if (!get_handle(env, argv[4], &j->key)) goto bad_key;
  bool is_buf = false;
  void *data;
  size_t data_len;
  if (napi_is_buffer(env, argv[5], &is_buf) != napi_ok || !is_buf || napi_get_buffer_info(env, argv[5], &data, &data_len) != napi_ok) goto bad_data;
  if (!get_ulong(env, argv[6], &out_len) || out_len == 0 || out_len > 65536) goto bad_out;
  /* The job owns copies: the JS buffers may be moved or reused while it runs. */
  j->data = malloc(data_len ? data_len : 1);
  j->out = malloc(out_len);
  if (!j->data || !j->out) {
    job_free(env, j);
    return throw_type(env, "out of memory");
  }
  memcpy(j->data, data, data_len);
  j->data_len = (CK_ULONG)data_len;
  j->out_len = out_len;

  napi_value promise, name;
  napi_create_promise(env, &j->deferred, &promise);
  napi_create_string_utf8(env, "yiqian.pkcs11.sign", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, execute, complete, j, &j->work) != napi_ok || napi_queue_async_work(env, j->work) != napi_ok) {
    napi_reject_deferred(env, j->deferred, rv_error(env, "C_SignInit", CKR_HOST_MEMORY));
    job_free(env, j);
  }
  return promise;

bad_session:
  job_free(env, j);
  return throw_type(env, "session must be a pkcs11js session handle (Buffer of sizeof(CK_ULONG) bytes)");
bad_mech:
  job_free(env, j);
  return throw_type(env, "mechanismType must be a CK_MECHANISM_TYPE number");
bad_param:
  job_free(env, j);
  return throw_type(env, "param must be null or {hashAlg, mgf, sLen} numbers");
bad_key:
  job_free(env, j);
  return throw_type(env, "keyHandle must be a pkcs11js object handle (Buffer of sizeof(CK_ULONG) bytes)");
bad_data:
  job_free(env, j);
  return throw_type(env, "data must be a Buffer");
bad_out:
  job_free(env, j);
  return throw_type(env, "outLen must be an integer 1..65536");
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"load", NULL, Load, NULL, NULL, NULL, napi_default, NULL},
      {"sign", NULL, Sign, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
