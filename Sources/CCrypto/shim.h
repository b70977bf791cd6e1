#ifndef LOCKSMITH_CCRYPTO_H
#define LOCKSMITH_CCRYPTO_H
#include <openssl/sha.h>
#endif
