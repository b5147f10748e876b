# Native addons, built by `npm ci` (node-gyp) against Node's own headers. Both link to the
# OpenSSL inside Node (Node exports its symbols), never to the system's libcrypto.
{
  "targets": [
    {
      # SM2 sign/verify/encrypt/decrypt with a distinguishing ID (ARCHITECTURE.md §4); verification
      # with arithmetic for the SM2 curve (sm2p256-verify.c).
      "target_name": "yiqian_sm2",
      "sources": ["appliance/native/sm2.c", "appliance/native/sm2p256-verify.c"],
      "cflags": ["-O2", "-Wall"],
      "include_dirs": ["<!(node -p \"require('node:path').dirname(process.execPath) + '/../include/node'\")"]
    },
    {
      # OpenSSL ENGINE inside Node that signs TLS handshakes with a PKCS#11 token key.
      "target_name": "yiqian_hsm_tls",
      "sources": ["firmware-bridge/pkcs11/native/hsm-tls-engine.c"],
      "cflags": ["-O2", "-Wall"],
      "include_dirs": ["node_modules/pkcs11js/includes/pkcs11"],
      "libraries": ["-ldl"]
    },
    {
      # C_SignInit + C_Sign in one libuv-pool job, on the sessions pkcs11js opened (pkcs11/sign-async.ts).
      "target_name": "yiqian_pkcs11_sign",
      "sources": ["firmware-bridge/pkcs11/native/sign-async.c"],
      "cflags": ["-O2", "-Wall"],
      "include_dirs": ["node_modules/pkcs11js/includes/pkcs11", "appliance/native"],
      "libraries": ["-ldl"]
    }
  ]
}
