/*
 * ct_hash: the one non-cryptographic hash of the code base, 64-bit FNV-1a.
 * Stable forever (migration checksums and trace sampling depend on its
 * values); for tables keyed by ids. Not for anything an attacker must not
 * steer: fingerprints and tokens use SHA-256 / HMAC (OpenSSL).
 */
#ifndef CT_HASH_H
#define CT_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t ct_hash64(const void *data, size_t n);
/* The hash of earlier bytes h (ct_hash64's value for them) continued over
 * data: ct_hash64_more(ct_hash64(a, an), b, bn) == ct_hash64(a ++ b). */
uint64_t ct_hash64_more(uint64_t h, const void *data, size_t n);
/* The same over a NUL-terminated string. */
uint64_t ct_hash64_str(const char *s);

#endif
