/* A small HTTP client for tests (libcurl). Header-only. */
#ifndef CT_TEST_HTTP_H
#define CT_TEST_HTTP_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ct_auth.h"
#include "ct_proc.h"

/* The HS256 key of the processes tests start (exported as
 * CONCERT_AUTH_KEY) and of the tokens ct_http_do signs. */
#define CT_TEST_AUTH_KEY "ct-test-auth-key-0123456789abcdef-0123456789abcdef"

static inline void ct_test_auth_env(void) { setenv("CONCERT_AUTH_KEY", CT_TEST_AUTH_KEY, 1); }

/* "Authorization: Bearer <token of user>" into out (an hour's token);
 * false when user is not a valid user id (err says why). */
static inline bool ct_test_auth_header_try(const char *user, char *out, size_t n, ct_error *err) {
    char tok[CT_AUTH_TOKEN_BYTES_MAX];
    if (ct_auth_token_new(CT_TEST_AUTH_KEY, user, (int64_t)time(NULL), 3600, tok, sizeof tok, err) != 0) return false;
    snprintf(out, n, "Authorization: Bearer %s", tok);
    return true;
}

static inline void ct_test_auth_header(const char *user, char *out, size_t n) {
    ct_error err = {0};
    cr_assert(ct_test_auth_header_try(user, out, n, &err), "%s", err.msg);
}

/* The user a request names: /v1/users/<id>/... or a body's "user_id". */
static inline bool ct_test_request_user(const char *url, const char *body, char *user, size_t n) {
    const char *p = strstr(url, "/v1/users/"), *end = NULL;
    if (p)
        p += strlen("/v1/users/"), end = p + strcspn(p, "/?");
    else if (body && (p = strstr(body, "\"user_id\":\"")))
        p += strlen("\"user_id\":\""), end = strchr(p, '"');
    if (!p || !end || end == p || (size_t)(end - p) >= n) return false;
    memcpy(user, p, (size_t)(end - p));
    user[end - p] = '\0';
    return true;
}
typedef struct ct_http_resp {
    long status;
    char *body; /* NUL-terminated, malloc'd */
    size_t len;
} ct_http_resp;

static size_t ct_http_collect(char *p, size_t size, size_t n, void *ud) {
    ct_http_resp *r = ud;
    size_t add = size * n;
    char *b = realloc(r->body, r->len + add + 1);
    if (!b) return 0;
    memcpy(b + r->len, p, add);
    r->len += add;
    b[r->len] = 0;
    r->body = b;
    return add;
}

/* One request on `curl` (reused: keep-alive). headers: NULL-terminated
 * "Name: value" strings. Returns the status (0 on a transport error).
 * Without an Authorization header the request acts as a client holding
 * the right credentials would: the token of the user it names (path or
 * body user_id); else a GET uses the admin key (CONCERT_ADMIN_KEY, which
 * reads any user's data) and a write the token of "test-user". Tests of
 * identity pass their own header, or "Authorization:" for none at all. */
static inline long ct_http_do(CURL *curl, const char *method, const char *url, const char *const *headers,
                              const char *body, ct_http_resp *out) {
    memset(out, 0, sizeof *out);
    struct curl_slist *h = NULL;
    bool authz = false;
    for (const char *const *p = headers; p && *p; p++) {
        h = curl_slist_append(h, *p);
        authz = authz || strncasecmp(*p, "Authorization:", 14) == 0;
    }
    char user[80], auth[CT_AUTH_TOKEN_BYTES_MAX + 32];
    const char *admin = getenv("CONCERT_ADMIN_KEY");
    bool get = strcmp(method, "GET") == 0, named = !authz && ct_test_request_user(url, body, user, sizeof user);
    if (!authz && (named || !get)) {
        if (!named) snprintf(user, sizeof user, "test-user");
        ct_error err = {0};
        /* A malformed user id (a test of the path's validation) has no token. */
        if (ct_test_auth_header_try(user, auth, sizeof auth, &err)) h = curl_slist_append(h, auth);
    } else if (!authz && admin && admin[0] && get) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", admin);
        h = curl_slist_append(h, auth);
    }
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, ct_http_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(h);
    if (!out->body) out->body = calloc(1, 1);
    return out->status;
}

static inline void ct_http_free(ct_http_resp *r) {
    free(r->body);
    r->body = NULL;
}

/* Waits until GET url answers 200 (the child is up), up to timeout_ms. */
static inline void ct_http_wait_ok(const char *url, int timeout_ms) {
    CURL *c = curl_easy_init();
    ct_http_resp r;
    long st = 0;
    for (int waited = 0; waited < timeout_ms && st != 200; waited += 100) {
        st = ct_http_do(c, "GET", url, NULL, NULL, &r);
        ct_http_free(&r);
        if (st != 200) usleep(100 * 1000);
    }
    curl_easy_cleanup(c);
    cr_assert_eq(st, 200, "%s never answered 200", url);
}

/* A loopback port free right now: bound with port 0, then released for a
 * child. A fixed range (base + pid) collided with the ephemeral ports of
 * other processes' outgoing connections now and then. */
static inline int ct_test_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &n), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts `concert <subcommand>` serving HTTP on a free port (exported as
 * CONCERT_HTTP_PORT), its output to log_path; fills base with its URL and
 * waits until wait_path answers 200. */
static inline pid_t ct_test_spawn_http(const char *subcommand, const char *wait_path, int wait_ms, char *base,
                                       size_t base_n, const char *log_path) {
    int port = ct_test_free_port();
    ct_test_auth_env();
    char p[16], url[160];
    snprintf(p, sizeof p, "%d", port);
    setenv("CONCERT_HTTP_PORT", p, 1);
    snprintf(base, base_n, "http://127.0.0.1:%d", port);
    const char *argv[] = {CT_CONCERT_BIN, subcommand, NULL};
    ct_proc_opts po = {
        .argv = argv, .output_path = log_path, .output_fd = -1, .die_with_parent = true, .null_stdin = true};
    ct_error err = {0};
    pid_t pid = ct_proc_spawn(&po, &err);
    cr_assert_gt(pid, 0, "%s", err.msg);
    snprintf(url, sizeof url, "%s%s", base, wait_path);
    ct_http_wait_ok(url, wait_ms);
    return pid;
}

#endif
