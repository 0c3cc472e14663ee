/* ct_console: see ct_console.h. */
#include "ct_console.h"

#include <ctype.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The files of ingress/console/, compiled in (cmake/embed.cmake). */
extern const char ct_console_index_html[];
extern const char ct_console_login_html[];
extern const char ct_console_js[];
extern const char ct_console_css[];
extern const char ct_console_favicon_svg[];

bool ct_console_is_path(const char *url) { return strcmp(url, "/admin") == 0 || strncmp(url, "/admin/", 7) == 0; }

/* Every page is the same document: its script draws the page its path
 * names, so a page can be reloaded or bookmarked. */
static const char *const pages[] = {"/admin/",          "/admin/outbox", "/admin/topics",
                                    "/admin/consumers", "/admin/queues", "/admin/slack"};

ct_console_asset ct_console_asset_find(const char *url) {
    ct_console_asset a = {0};
    const char *html = "text/html; charset=utf-8";
    if (strcmp(url, "/admin") == 0) {
        a.kind = CT_CONSOLE_REDIRECT;
        return a;
    }
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++)
        if (strcmp(url, pages[i]) == 0) return (ct_console_asset){CT_CONSOLE_PAGE, ct_console_index_html, html};
    if (strcmp(url, "/admin/login") == 0) return (ct_console_asset){CT_CONSOLE_LOGIN, ct_console_login_html, html};
    if (strcmp(url, "/admin/logout") == 0) return (ct_console_asset){CT_CONSOLE_LOGOUT, NULL, NULL};
    if (strcmp(url, "/admin/console.js") == 0)
        return (ct_console_asset){CT_CONSOLE_FILE, ct_console_js, "text/javascript; charset=utf-8"};
    if (strcmp(url, "/admin/console.css") == 0)
        return (ct_console_asset){CT_CONSOLE_FILE, ct_console_css, "text/css; charset=utf-8"};
    if (strcmp(url, "/admin/favicon.svg") == 0)
        return (ct_console_asset){CT_CONSOLE_FILE, ct_console_favicon_svg, "image/svg+xml"};
    return a;
}

static const char *const security_headers[][2] = {
    {"Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self';"
     " form-action 'self'; frame-ancestors 'none'; base-uri 'none'"},
    {"X-Frame-Options", "DENY"},
    {"X-Content-Type-Options", "nosniff"},
    {"Referrer-Policy", "no-referrer"},
};

bool ct_console_security_header(size_t i, const char **name, const char **value) {
    if (i >= sizeof security_headers / sizeof security_headers[0]) return false;
    *name = security_headers[i][0], *value = security_headers[i][1];
    return true;
}

/* HMAC-SHA256(key, "concert-console." expiry) as 64 hex digits. */
static int session_mac(const char *admin_key, const char *expiry, char hex[65]) {
    char msg[64];
    int n = snprintf(msg, sizeof msg, "concert-console.%s", expiry);
    if (n < 0 || (size_t)n >= sizeof msg) return -1;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), admin_key, (int)strlen(admin_key), (const unsigned char *)msg, (size_t)n, mac, &mac_len) ||
        mac_len != 32)
        return -1;
    for (unsigned i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return 0;
}

int ct_console_session_new(const char *admin_key, int64_t now_s, char out[CT_CONSOLE_SESSION_CHARS + 1]) {
    if (!admin_key || !admin_key[0]) return -1;
    char expiry[21], hex[65]; /* an int64 is at most 20 characters */
    snprintf(expiry, sizeof expiry, "%" PRId64, now_s + CT_CONSOLE_SESSION_S);
    if (session_mac(admin_key, expiry, hex) != 0) return -1;
    snprintf(out, CT_CONSOLE_SESSION_CHARS + 1, "%s.%s", expiry, hex);
    return 0;
}

/* The value of cookie `name` in a Cookie header ("a=1; b=2"), or NULL;
 * *len set to its length. */
static const char *cookie_value(const char *header, const char *name, size_t *len) {
    size_t nl = strlen(name);
    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == ';') p++;
        const char *end = strchr(p, ';');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            *len = n - nl - 1;
            return p + nl + 1;
        }
        p = end;
    }
    return NULL;
}

bool ct_console_session_valid(const char *admin_key, const char *cookie_header, int64_t now_s) {
    if (!admin_key || !admin_key[0] || !cookie_header) return false;
    size_t len = 0;
    const char *v = cookie_value(cookie_header, CT_CONSOLE_COOKIE, &len);
    if (!v || len > CT_CONSOLE_SESSION_CHARS) return false;
    const char *dot = memchr(v, '.', len);
    size_t digits = dot ? (size_t)(dot - v) : 0;
    if (digits == 0 || digits > 19 || len - digits - 1 != 64) return false;
    char expiry[24], hex[65];
    memcpy(expiry, v, digits);
    expiry[digits] = 0;
    for (size_t i = 0; i < digits; i++)
        if (!isdigit((unsigned char)expiry[i])) return false;
    int64_t exp = strtoll(expiry, NULL, 10);
    if (exp <= now_s || exp > now_s + CT_CONSOLE_SESSION_S) return false;
    if (session_mac(admin_key, expiry, hex) != 0) return false;
    return CRYPTO_memcmp(hex, dot + 1, 64) == 0;
}

void ct_console_set_cookie(const char *session, char *out, size_t out_bytes) {
    /* Path=/: the console's pages and the admin API they call. No Secure
     * flag: a local ingress speaks plain HTTP; behind TLS the proxy adds it. */
    if (session)
        snprintf(out, out_bytes, CT_CONSOLE_COOKIE "=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Strict", session,
                 CT_CONSOLE_SESSION_S);
    else
        snprintf(out, out_bytes, CT_CONSOLE_COOKIE "=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int ct_console_form_value(const char *body, size_t len, const char *name, char *out, size_t out_bytes) {
    size_t nl = strlen(name);
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && body[j] != '&') j++;
        if (j - i > nl && memcmp(body + i, name, nl) == 0 && body[i + nl] == '=') {
            size_t o = 0;
            for (size_t k = i + nl + 1; k < j; k++) {
                char c = body[k];
                if (c == '+')
                    c = ' ';
                else if (c == '%') {
                    int hi = k + 2 < j ? hex_digit(body[k + 1]) : -1, lo = hi >= 0 ? hex_digit(body[k + 2]) : -1;
                    if (hi < 0 || lo < 0) return -1;
                    c = (char)(hi * 16 + lo);
                    k += 2;
                }
                if (c == 0 || o + 1 >= out_bytes) return -1;
                out[o++] = c;
            }
            out[o] = 0;
            return 0;
        }
        i = j + 1;
    }
    return -1;
}
