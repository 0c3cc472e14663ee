/* A small HTTP client for tests (libcurl). Header-only. */
#ifndef CT_TEST_HTTP_H
#define CT_TEST_HTTP_H

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

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
 * "Name: value" strings. Returns the status (0 on a transport error). */
static inline long ct_http_do(CURL *curl, const char *method, const char *url, const char *const *headers,
                              const char *body, ct_http_resp *out) {
    memset(out, 0, sizeof *out);
    struct curl_slist *h = NULL;
    for (const char *const *p = headers; p && *p; p++) h = curl_slist_append(h, *p);
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

#endif
