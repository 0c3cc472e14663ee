/* ct_hash: see ct_hash.h. */
#include "ct_hash.h"

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

uint64_t ct_hash64_more(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * FNV_PRIME;
    return h;
}

uint64_t ct_hash64(const void *data, size_t n) { return ct_hash64_more(FNV_OFFSET, data, n); }

uint64_t ct_hash64_str(const char *s) {
    uint64_t h = FNV_OFFSET;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * FNV_PRIME;
    return h;
}
