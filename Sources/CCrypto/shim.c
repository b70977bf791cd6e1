// libcrypto's SHA-1 and SHA-256, loaded on first use (see CCrypto.h).
#define _GNU_SOURCE
/* SHA1_Init/Update/Final are deprecated in OpenSSL 3 in favour of EVP, and kept: see below. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <dlfcn.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include "CCrypto.h"

_Static_assert(CCRYPTO_SHA1_LENGTH == SHA_DIGEST_LENGTH, "SHA-1 length");
_Static_assert(CCRYPTO_SHA256_LENGTH == SHA256_DIGEST_LENGTH, "SHA-256 length");

/* The digest functions themselves, not the one-shot SHA1()/SHA256(): in OpenSSL 3 those go
 * through EVP_Q_digest, which fetches the algorithm from a provider at each call and, at the
 * first, initialises the provider machinery and reads openssl.cnf (~5.4M instructions by
 * callgrind, a third of a quiet host's `list --json`), then makes and frees an EVP_MD_CTX per
 * hash. SHA1_Init/Update/Final run the same assembly (chosen at load by OPENSSL_cpuid_setup)
 * on a context on the stack. */
static struct {
    __typeof__(&SHA1_Init) sha1_init;
    __typeof__(&SHA1_Update) sha1_update;
    __typeof__(&SHA1_Final) sha1_final;
    __typeof__(&SHA256_Init) sha256_init;
    __typeof__(&SHA256_Update) sha256_update;
    __typeof__(&SHA256_Final) sha256_final;
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
#define BIND(field, name) api.field = (__typeof__(api.field))dlvsym(lib, name, "OPENSSL_3.0.0")
    BIND(sha1_init, "SHA1_Init");
    BIND(sha1_update, "SHA1_Update");
    BIND(sha1_final, "SHA1_Final");
    BIND(sha256_init, "SHA256_Init");
    BIND(sha256_update, "SHA256_Update");
    BIND(sha256_final, "SHA256_Final");
#undef BIND
    if (!api.sha1_init || !api.sha1_update || !api.sha1_final || !api.sha256_init || !api.sha256_update
        || !api.sha256_final)
        fail("no SHA1_Init/Update/Final or SHA256_Init/Update/Final at version OPENSSL_3.0.0");
}

void ccrypto_load(void) {
    pthread_once(&once, load);
}

void ccrypto_sha1(const unsigned char *data, size_t count, unsigned char *out) {
    pthread_once(&once, load);
    SHA_CTX c;
    api.sha1_init(&c);
    api.sha1_update(&c, data, count);
    api.sha1_final(out, &c);
}

void ccrypto_sha256(const unsigned char *data, size_t count, unsigned char *out) {
    pthread_once(&once, load);
    SHA256_CTX c;
    api.sha256_init(&c);
    api.sha256_update(&c, data, count);
    api.sha256_final(out, &c);
}
