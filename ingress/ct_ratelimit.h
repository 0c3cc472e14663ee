/*
 * ct_ratelimit: token buckets by key (a user id, an IP address), for the
 * ingress's limits on writes. Each key may take `per_s` a second on
 * average and up to two seconds' worth at once; a refused take says when
 * the next one would pass (Retry-After).
 *
 * The buckets live in a fixed table (CT_RATELIMIT_SLOTS): a key whose slot
 * is needed by another key after it has been idle long enough to be full
 * again loses nothing; only more than that many keys all active within
 * two seconds would push a busy one out (it then starts full again).
 *
 * Locality: any thread (one mutex).
 */
#ifndef CT_RATELIMIT_H
#define CT_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CT_RATELIMIT_SLOTS 65536

typedef struct ct_ratelimit ct_ratelimit;

/* NULL when per_s is 0 (no limit) or out of memory (err_oom set). */
ct_ratelimit *ct_ratelimit_new(int per_s, bool *err_oom);
void ct_ratelimit_destroy(ct_ratelimit *rl);

/* Takes one from key's bucket at now_ms. true: allowed. false: refused,
 * *retry_after_s (≥ 1) says when one is back. A NULL rl allows all. */
bool ct_ratelimit_take(ct_ratelimit *rl, const char *key, int64_t now_ms, int *retry_after_s);

#endif
