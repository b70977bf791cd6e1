#ifndef LOCKSMITH_CCRYPTO_H
#define LOCKSMITH_CCRYPTO_H
/* SHA-1 and SHA-256 of the system libcrypto (OpenSSL 3), loaded on first use rather than
 * linked: linked, libcrypto costs every start of locksmith ~3.4M instructions (its 21k
 * relocations and its initialisers), also for the runs that hash nothing (--version, why
 * by lock file, the TUI's first frame). The functions are bound through dlvsym at the
 * symbol version the linker would have bound (OPENSSL_3.0.0).
 *
 * A host without libcrypto.so.3 could not start a linked locksmith at all (the dynamic
 * loader refuses it); loaded here, the first hash on such a host prints one line naming
 * the library to stderr and exits with status 2 (could not inspect). */
#include <stddef.h>

#define CCRYPTO_SHA1_LENGTH 20
#define CCRYPTO_SHA256_LENGTH 32

/* SHA-1 and SHA-256 (SHA1_Init(3)/Update/Final, SHA256_...; not the one-shot SHA1(), which
 * OpenSSL 3 runs through its providers: shim.c): `count` bytes at `data` into `out` (20 and
 * 32 bytes). */
/* Loads libcrypto now, on the calling thread, rather than at the first hash (a command sure
 * to hash loads it on a thread of its own while it parses its arguments). */
void ccrypto_load(void);

void ccrypto_sha1(const unsigned char *data, size_t count, unsigned char *out);
void ccrypto_sha256(const unsigned char *data, size_t count, unsigned char *out);
#endif
