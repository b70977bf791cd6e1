// libcrypto's SHA-1 and SHA-256, loaded on first use (see CCrypto.h).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include "CCrypto.h"

_Static_assert(CCRYPTO_SHA1_LENGTH == SHA_DIGEST_LENGTH, "SHA-1 length");
_Static_assert(CCRYPTO_SHA256_LENGTH == SHA256_DIGEST_LENGTH, "SHA-256 length");

static struct {
    __typeof__(&SHA1) sha1;
    __typeof__(&SHA256) sha256;
} api;

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void fail(const char *why) {
    /* No terminal escapes can come from here: dlerror names the library and the symbol. */
    dprintf(STDERR_FILENO, "locksmith: cannot load libcrypto.so.3 (OpenSSL 3) for SHA-1/SHA-256: %s\n", why);
    _exit(2);
}

static void load(void) {
    void *lib = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
    if (!lib) fail(dlerror());
    api.sha1 = (__typeof__(api.sha1))dlvsym(lib, "SHA1", "OPENSSL_3.0.0");
    api.sha256 = (__typeof__(api.sha256))dlvsym(lib, "SHA256", "OPENSSL_3.0.0");
    if (!api.sha1 || !api.sha256) fail("no SHA1 or SHA256 at version OPENSSL_3.0.0");
}

void ccrypto_sha1(const unsigned char *data, size_t count, unsigned char *out) {
    pthread_once(&once, load);
    api.sha1(data, count, out);
}

void ccrypto_sha256(const unsigned char *data, size_t count, unsigned char *out) {
    pthread_once(&once, load);
    api.sha256(data, count, out);
}
