/*
 * ct_auth: who a user is. Users carry a bearer token, an HS256 JWT whose
 * `sub` is their user id and whose `exp` (required) bounds it; the ingress
 * verifies it (libjwt: signature, algorithm, expiry), `concert auth token`
 * and the benchmarks issue them. The key is CONCERT_AUTH_KEY, else the
 * file <CONCERT_DATA_DIR>/auth.key (mode 0600), which `concert up` creates
 * with 256 random bits so a local pipeline needs no setup.
 *
 * Locality: any thread; no state.
 */
#ifndef CT_AUTH_H
#define CT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ct_config.h"
#include "ct_error.h"

#define CT_AUTH_KEY_BYTES_MAX 256
#define CT_AUTH_USER_BYTES_MAX 64
#define CT_AUTH_TOKEN_BYTES_MAX 1024

/* The key into key (NUL-terminated): CONCERT_AUTH_KEY, else the key file;
 * when there is neither and create is set, a new random key file. Returns
 * 1 with a key, 0 without one (key empty), -1 on an error (an unreadable
 * or malformed key file, or one that cannot be written). */
int ct_auth_key_load(const ct_config *cfg, bool create, char key[CT_AUTH_KEY_BYTES_MAX], ct_error *err);

/* A token for user (an id of [A-Za-z0-9_-], 1..64) valid from now_s for
 * ttl_s seconds, into out. 0, or -1 with err. */
int ct_auth_token_new(const char *key, const char *user, int64_t now_s, int64_t ttl_s, char *out, size_t out_bytes,
                      ct_error *err);

typedef enum ct_auth_result {
    CT_AUTH_OK = 0,
    CT_AUTH_MISSING, /* no Authorization: Bearer header */
    CT_AUTH_INVALID, /* not a token of this key, another algorithm, no valid sub or exp */
    CT_AUTH_EXPIRED, /* exp is not after now */
} ct_auth_result;

/* Checks an Authorization header's bearer token against key at now_s;
 * on CT_AUTH_OK the user id is in user. */
ct_auth_result ct_auth_verify(const char *key, const char *authorization, int64_t now_s,
                              char user[CT_AUTH_USER_BYTES_MAX + 1]);

#endif
