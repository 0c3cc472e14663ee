/* Users' bearer tokens (ct_auth): a token verifies as its user until it
 * expires; another key, another algorithm (none, or a header naming one),
 * a changed payload, a bad or missing sub or exp, or no Bearer header do
 * not. The key file: created 0600 once, then read back; CONCERT_AUTH_KEY
 * comes first. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ct_auth.h"

#define KEY "0123456789abcdef0123456789abcdef-test"
#define NOW INT64_C(1800000000)

static void header_of(const char *tok, char *out, size_t n) { snprintf(out, n, "Bearer %s", tok); }

/* base64url without padding of n bytes of s. */
static void b64url_n(const char *s, size_t n, char *out) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)s[i] << 16 | (i + 1 < n ? (unsigned char)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? (unsigned char)s[i + 2] : 0);
        out[o++] = t[v >> 18 & 63], out[o++] = t[v >> 12 & 63];
        if (i + 1 < n) out[o++] = t[v >> 6 & 63];
        if (i + 2 < n) out[o++] = t[v & 63];
    }
    out[o] = 0;
}

static void b64url(const char *s, char *out) { b64url_n(s, strlen(s), out); }

Test(auth, a_token_verifies_as_its_user_until_it_expires) {
    char tok[CT_AUTH_TOKEN_BYTES_MAX], h[CT_AUTH_TOKEN_BYTES_MAX + 8], user[CT_AUTH_USER_BYTES_MAX + 1];
    ct_error err = {0};
    cr_assert_eq(ct_auth_token_new(KEY, "alice_1", NOW, 60, tok, sizeof tok, &err), 0, "%s", err.msg);
    header_of(tok, h, sizeof h);
    cr_assert_eq(ct_auth_verify(KEY, h, NOW, user), CT_AUTH_OK);
    cr_assert_str_eq(user, "alice_1");
    cr_assert_eq(ct_auth_verify(KEY, h, NOW + 59, user), CT_AUTH_OK);
    cr_assert_eq(ct_auth_verify(KEY, h, NOW + 60, user), CT_AUTH_EXPIRED);
    cr_assert_str_eq(user, "");
    cr_assert_eq(ct_auth_verify(KEY "x", h, NOW, user), CT_AUTH_INVALID, "another key");
    cr_assert_eq(ct_auth_verify(KEY, NULL, NOW, user), CT_AUTH_MISSING);
    cr_assert_eq(ct_auth_verify(KEY, "Basic YWxpY2U6cHc=", NOW, user), CT_AUTH_MISSING);
    cr_assert_eq(ct_auth_verify(KEY, "Bearer ", NOW, user), CT_AUTH_INVALID);
    cr_assert_eq(ct_auth_verify(KEY, tok, NOW, user), CT_AUTH_MISSING, "no Bearer");
    /* The payload changed under the same signature: alice becomes mallory. */
    char *dot1 = strchr(tok, '.'), *dot2 = strchr(dot1 + 1, '.');
    char body[128], forged[CT_AUTH_TOKEN_BYTES_MAX];
    b64url("{\"exp\":1800000060,\"iat\":1800000000,\"sub\":\"mallory\"}", body);
    snprintf(forged, sizeof forged, "Bearer %.*s.%s%s", (int)(dot1 - tok), tok, body, dot2);
    cr_assert_eq(ct_auth_verify(KEY, forged, NOW, user), CT_AUTH_INVALID);
    cr_assert_eq(ct_auth_token_new(KEY, "bad user", NOW, 60, tok, sizeof tok, &err), -1);
    cr_assert_eq(ct_auth_token_new(KEY, "alice", NOW, 0, tok, sizeof tok, &err), -1);
}

Test(auth, unsigned_or_incomplete_tokens_are_refused) {
    char user[CT_AUTH_USER_BYTES_MAX + 1], head[128], body[256], h[1024];
    static const char *const payloads[] = {
        "{\"sub\":\"alice\",\"exp\":1900000000}",
        "{\"sub\":\"alice\"}",                        /* no exp */
        "{\"sub\":\"al ice\",\"exp\":1900000000}",    /* not an id */
        "{\"exp\":1900000000}",                       /* no sub */
        "{\"sub\":\"alice\",\"exp\":\"1900000000\"}", /* exp not a number */
    };
    b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}", head);
    b64url(payloads[0], body);
    snprintf(h, sizeof h, "Bearer %s.%s.", head, body);
    cr_assert_eq(ct_auth_verify(KEY, h, NOW, user), CT_AUTH_INVALID, "alg none");
    /* Signed with the key (HMAC-SHA256 by OpenSSL) but incomplete. */
    b64url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", head);
    for (size_t i = 0; i < sizeof payloads / sizeof payloads[0]; i++) {
        char input[512], sig[64];
        unsigned char mac[32];
        unsigned int macn = 0;
        b64url(payloads[i], body);
        snprintf(input, sizeof input, "%s.%s", head, body);
        cr_assert_not_null(
            HMAC(EVP_sha256(), KEY, (int)strlen(KEY), (const unsigned char *)input, strlen(input), mac, &macn));
        char raw[33];
        memcpy(raw, mac, 32), raw[32] = 0;
        b64url_n(raw, 32, sig);
        snprintf(h, sizeof h, "Bearer %s.%s", input, sig);
        ct_auth_result want = i == 0 ? CT_AUTH_OK : CT_AUTH_INVALID;
        cr_assert_eq(ct_auth_verify(KEY, h, NOW, user), want, "%s", payloads[i]);
    }
}

Test(auth, the_key_file_is_made_once_with_mode_0600_and_the_setting_comes_first) {
    char dir[] = "/tmp/ct-test-auth-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    ct_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/data", dir);
    char k1[CT_AUTH_KEY_BYTES_MAX], k2[CT_AUTH_KEY_BYTES_MAX], path[600];
    ct_error err = {0};
    cr_assert_eq(ct_auth_key_load(&cfg, false, k1, &err), 0, "none yet");
    cr_assert_eq(ct_auth_key_load(&cfg, true, k1, &err), 1, "%s", err.msg);
    cr_assert_eq(strlen(k1), 64u);
    cr_assert_eq(ct_auth_key_load(&cfg, true, k2, &err), 1);
    cr_assert_str_eq(k1, k2, "made once");
    snprintf(path, sizeof path, "%s/auth.key", cfg.data_dir);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    snprintf(cfg.auth_key, sizeof cfg.auth_key, "%s", KEY);
    cr_assert_eq(ct_auth_key_load(&cfg, true, k2, &err), 1);
    cr_assert_str_eq(k2, KEY);
    FILE *f = fopen(path, "w");
    fputs("short\n", f);
    fclose(f);
    cfg.auth_key[0] = 0;
    cr_assert_eq(ct_auth_key_load(&cfg, false, k2, &err), -1, "a short key file is an error");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
