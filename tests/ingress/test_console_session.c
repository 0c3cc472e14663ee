/* ct_console without I/O: which path is which page, the session cookie
 * (made, accepted, refused when expired, forged, for another key or
 * tampered with), the Set-Cookie flags, the login form's decoding. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ct_console.h"

#define KEY "console-test-key"
#define NOW 1800000000LL

static void cookie_of(const char *session, char *out, size_t n) {
    snprintf(out, n, "theme=dark; " CT_CONSOLE_COOKIE "=%s; other=1", session);
}

Test(console, paths_name_pages_files_and_nothing_else) {
    cr_assert(ct_console_is_path("/admin"));
    cr_assert(ct_console_is_path("/admin/"));
    cr_assert(ct_console_is_path("/admin/topics"));
    cr_assert_not(ct_console_is_path("/administrator"));
    cr_assert_not(ct_console_is_path("/v1/admin/topics"));
    const char *pages[] = {"/admin/",          "/admin/outbox", "/admin/topics",
                           "/admin/consumers", "/admin/queues", "/admin/slack"};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        ct_console_asset a = ct_console_asset_find(pages[i]);
        cr_assert_eq(a.kind, CT_CONSOLE_PAGE, "%s", pages[i]);
        cr_assert(strstr(a.body, "/admin/console.js"), "%s loads the script", pages[i]);
        cr_assert(strstr(a.content_type, "text/html"));
    }
    cr_assert_eq(ct_console_asset_find("/admin").kind, CT_CONSOLE_REDIRECT);
    cr_assert_eq(ct_console_asset_find("/admin/login").kind, CT_CONSOLE_LOGIN);
    cr_assert(strstr(ct_console_asset_find("/admin/login").body, "name=\"key\""));
    cr_assert_eq(ct_console_asset_find("/admin/logout").kind, CT_CONSOLE_LOGOUT);
    cr_assert_eq(ct_console_asset_find("/admin/console.js").kind, CT_CONSOLE_FILE);
    cr_assert(strstr(ct_console_asset_find("/admin/console.js").content_type, "javascript"));
    cr_assert_eq(ct_console_asset_find("/admin/console.css").kind, CT_CONSOLE_FILE);
    cr_assert_eq(ct_console_asset_find("/admin/favicon.svg").kind, CT_CONSOLE_FILE);
    cr_assert_eq(ct_console_asset_find("/admin/../etc/passwd").kind, CT_CONSOLE_NONE);
    cr_assert_eq(ct_console_asset_find("/admin/outbox/").kind, CT_CONSOLE_NONE);
}

Test(console, every_answer_carries_a_strict_content_security_policy) {
    const char *name, *value;
    bool csp = false, frame = false;
    for (size_t i = 0; ct_console_security_header(i, &name, &value); i++) {
        if (strcmp(name, "Content-Security-Policy") == 0) {
            csp = true;
            cr_assert(strstr(value, "script-src 'self'") && !strstr(value, "unsafe-inline"), "%s", value);
            cr_assert(strstr(value, "frame-ancestors 'none'"), "%s", value);
        }
        frame |= strcmp(name, "X-Frame-Options") == 0 && strcmp(value, "DENY") == 0;
    }
    cr_assert(csp && frame);
}

Test(console, a_session_is_accepted_until_it_expires) {
    char s[CT_CONSOLE_SESSION_CHARS + 1], c[256];
    cr_assert_eq(ct_console_session_new(KEY, NOW, s), 0);
    cr_assert_eq(strlen(s), 10 + 1 + 64, "%s", s);
    cookie_of(s, c, sizeof c);
    cr_assert(ct_console_session_valid(KEY, c, NOW));
    cr_assert(ct_console_session_valid(KEY, c, NOW + CT_CONSOLE_SESSION_S - 1));
    cr_assert_not(ct_console_session_valid(KEY, c, NOW + CT_CONSOLE_SESSION_S), "expired");
    /* Dated further ahead than one session: not one this server made. */
    cr_assert_not(ct_console_session_valid(KEY, c, NOW - 10));
}

Test(console, a_session_of_another_key_or_altered_is_refused) {
    char s[CT_CONSOLE_SESSION_CHARS + 1], c[256];
    cr_assert_eq(ct_console_session_new(KEY, NOW, s), 0);
    cookie_of(s, c, sizeof c);
    cr_assert_not(ct_console_session_valid(KEY "x", c, NOW), "a changed key ends every session");
    cr_assert_not(ct_console_session_valid("", c, NOW), "no key: no console");
    cr_assert_not(ct_console_session_valid(NULL, c, NOW));
    /* Another expiry (in range) with the old MAC: refused. */
    char forged[CT_CONSOLE_SESSION_CHARS + 1];
    snprintf(forged, sizeof forged, "%s", s);
    cr_assert_eq(forged[7], '8', "%s", s);
    forged[7] = '7';
    cookie_of(forged, c, sizeof c);
    cr_assert_not(ct_console_session_valid(KEY, c, NOW));
    /* One MAC digit changed. */
    snprintf(forged, sizeof forged, "%s", s);
    forged[20] = forged[20] == 'a' ? 'b' : 'a';
    cookie_of(forged, c, sizeof c);
    cr_assert_not(ct_console_session_valid(KEY, c, NOW));
    /* Truncated, empty, missing, malformed. */
    snprintf(forged, sizeof forged, "%.*s", (int)strlen(s) - 1, s);
    cookie_of(forged, c, sizeof c);
    cr_assert_not(ct_console_session_valid(KEY, c, NOW));
    cr_assert_not(ct_console_session_valid(KEY, CT_CONSOLE_COOKIE "=", NOW));
    cr_assert_not(ct_console_session_valid(KEY, "other=1", NOW));
    cr_assert_not(ct_console_session_valid(KEY, NULL, NOW));
    cr_assert_not(ct_console_session_valid(KEY, CT_CONSOLE_COOKIE "=abc.def", NOW));
    /* A cookie whose name only ends like ours. */
    char wrong[256];
    snprintf(wrong, sizeof wrong, "x" CT_CONSOLE_COOKIE "=%s", s);
    cr_assert_not(ct_console_session_valid(KEY, wrong, NOW));
}

Test(console, the_cookie_is_http_only_and_same_site_strict) {
    char set[256];
    ct_console_set_cookie("123.abc", set, sizeof set);
    cr_assert(strstr(set, CT_CONSOLE_COOKIE "=123.abc;"), "%s", set);
    cr_assert(strstr(set, "HttpOnly") && strstr(set, "SameSite=Strict") && strstr(set, "Path=/"), "%s", set);
    ct_console_set_cookie(NULL, set, sizeof set);
    cr_assert(strstr(set, CT_CONSOLE_COOKIE "=;") && strstr(set, "Max-Age=0"), "logout: %s", set);
}

Test(console, the_login_form_is_decoded) {
    char v[64];
    const char *body = "user=x&key=s3cr%2Bt+key%21&x=1";
    cr_assert_eq(ct_console_form_value(body, strlen(body), "key", v, sizeof v), 0);
    cr_assert_str_eq(v, "s3cr+t key!");
    cr_assert_eq(ct_console_form_value(body, strlen(body), "ke", v, sizeof v), -1, "a prefix is not the field");
    cr_assert_eq(ct_console_form_value(body, strlen(body), "missing", v, sizeof v), -1);
    cr_assert_eq(ct_console_form_value("key=%zz", 7, "key", v, sizeof v), -1, "malformed escape");
    cr_assert_eq(ct_console_form_value("key=%4", 6, "key", v, sizeof v), -1, "cut escape");
    cr_assert_eq(ct_console_form_value("key=a%00b", 9, "key", v, sizeof v), -1, "NUL");
    cr_assert_eq(ct_console_form_value("key=abcdef", 10, "key", v, 4), -1, "longer than out");
    cr_assert_eq(ct_console_form_value("key=", 4, "key", v, sizeof v), 0);
    cr_assert_str_eq(v, "");
}
