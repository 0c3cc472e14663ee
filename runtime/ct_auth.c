/* ct_auth: see ct_auth.h. */
#include "ct_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ct_proc.h"

static bool user_valid(const char *s) {
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= CT_AUTH_USER_BYTES_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static int read_key_file(const char *path, char key[CT_AUTH_KEY_BYTES_MAX], ct_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return 0;
        CT_ERR(err, CT_ERR_FATAL, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    size_t n = fread(key, 1, CT_AUTH_KEY_BYTES_MAX - 1, f);
    fclose(f);
    key[n] = '\0';
    key[strcspn(key, "\r\n")] = '\0';
    if (strlen(key) < 32) {
        key[0] = '\0';
        CT_ERR(err, CT_ERR_PERMANENT, "%s: a key of at least 32 characters expected", path);
        return -1;
    }
    return 1;
}

int ct_auth_key_load(const ct_config *cfg, bool create, char key[CT_AUTH_KEY_BYTES_MAX], ct_error *err) {
    key[0] = '\0';
    if (cfg->auth_key[0]) {
        snprintf(key, CT_AUTH_KEY_BYTES_MAX, "%s", cfg->auth_key);
        return 1;
    }
    char path[CT_CONFIG_PATH_MAX + 16];
    ct_config_path(cfg, "auth.key", path, sizeof path);
    int rc = read_key_file(path, key, err);
    if (rc != 0 || !create) return rc;
    unsigned char raw[32];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        CT_ERR(err, CT_ERR_FATAL, "getrandom failed: %s", strerror(errno));
        return -1;
    }
    char hex[2 * sizeof raw + 2];
    for (size_t i = 0; i < sizeof raw; i++) snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    strcat(hex, "\n");
    if (ct_fs_mkdirs(cfg->data_dir, 0755, err) != 0) return -1;
    /* Created with 0600 from the start: no moment when others can read it. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        if (errno == EEXIST) return read_key_file(path, key, err); /* a sibling won the race */
        CT_ERR(err, CT_ERR_FATAL, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t w = write(fd, hex, strlen(hex));
    int fs = fsync(fd);
    close(fd);
    if (w != (ssize_t)strlen(hex) || fs != 0) {
        unlink(path);
        CT_ERR(err, CT_ERR_FATAL, "cannot write %s", path);
        return -1;
    }
    return read_key_file(path, key, err);
}

int ct_auth_token_new(const char *key, const char *user, int64_t now_s, int64_t ttl_s, char *out, size_t out_bytes,
                      ct_error *err) {
    if (!user_valid(user)) {
        CT_ERR(err, CT_ERR_PERMANENT, "user id must be 1..%d characters of [A-Za-z0-9_-]", CT_AUTH_USER_BYTES_MAX);
        return -1;
    }
    if (ttl_s <= 0) {
        CT_ERR(err, CT_ERR_PERMANENT, "a token's lifetime must be positive");
        return -1;
    }
    jwt_t *jwt = NULL;
    char *tok = NULL;
    int rc = -1;
    if (jwt_new(&jwt) == 0 && jwt_add_grant(jwt, "sub", user) == 0 && jwt_add_grant_int(jwt, "iat", (long)now_s) == 0 &&
        jwt_add_grant_int(jwt, "exp", (long)(now_s + ttl_s)) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)key, (int)strlen(key)) == 0 &&
        (tok = jwt_encode_str(jwt)) != NULL && strlen(tok) < out_bytes) {
        memcpy(out, tok, strlen(tok) + 1);
        rc = 0;
    } else {
        CT_ERR(err, CT_ERR_FATAL, "cannot sign a token");
    }
    free(tok);
    jwt_free(jwt);
    return rc;
}

ct_auth_result ct_auth_verify(const char *key, const char *authorization, int64_t now_s,
                              char user[CT_AUTH_USER_BYTES_MAX + 1]) {
    user[0] = '\0';
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) return CT_AUTH_MISSING;
    const char *tok = authorization + 7;
    while (*tok == ' ') tok++;
    if (!*tok || strlen(tok) >= CT_AUTH_TOKEN_BYTES_MAX || !key || !*key) return CT_AUTH_INVALID;
    jwt_t *jwt = NULL;
    /* jwt_decode checks the signature with the key for the algorithm the
     * header names; only HS256 is taken, so "none" or an RSA header signed
     * with this key as a "public key" are refused below. */
    if (jwt_decode(&jwt, tok, (const unsigned char *)key, (int)strlen(key)) != 0 || !jwt) {
        jwt_free(jwt);
        return CT_AUTH_INVALID;
    }
    ct_auth_result res = CT_AUTH_INVALID;
    const char *sub = jwt_get_grant(jwt, "sub");
    errno = 0;
    long exp = jwt_get_grant_int(jwt, "exp");
    if (jwt_get_alg(jwt) == JWT_ALG_HS256 && user_valid(sub) && errno == 0 && exp > 0) {
        if ((int64_t)exp <= now_s) {
            res = CT_AUTH_EXPIRED;
        } else {
            memcpy(user, sub, strlen(sub) + 1);
            res = CT_AUTH_OK;
        }
    }
    jwt_free(jwt);
    return res;
}
