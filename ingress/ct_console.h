/*
 * ct_console: the operator's web console under /admin/ (its pages and
 * files, compiled in from ingress/console/) and its sessions. Pure: no I/O;
 * the ingress serves what these functions decide.
 *
 * A session is a cookie the login form sets once the admin key was typed
 * in: "<expiry s>.<HMAC-SHA256(admin key, "concert-console." expiry) hex>".
 * It holds no secret, needs no server state (any ingress of the same key
 * accepts it), and dies with its expiry or a change of the key. The cookie
 * is HttpOnly (no script reads it) and SameSite=Strict (no other site's
 * page sends it); a write the console makes with it must also carry the
 * header X-Concert-Console, which a cross-site form cannot add.
 *
 * Locality: any thread; no state.
 */
#ifndef CT_CONSOLE_H
#define CT_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CT_CONSOLE_COOKIE "concert_console"
#define CT_CONSOLE_SESSION_S (8 * 3600)
/* "<up to 20 digits>.<64 hex>" */
#define CT_CONSOLE_SESSION_CHARS 85
/* Login attempts per second from one address (two at once): enough for a
 * person, slow for guessing (ct_ratelimit). */
#define CT_CONSOLE_LOGINS_PER_S 1
/* The header a cookie-authenticated write must carry (any value). */
#define CT_CONSOLE_WRITE_HEADER "X-Concert-Console"

/* true for /admin and everything under /admin/: the console's, not the API's. */
bool ct_console_is_path(const char *url);

typedef enum ct_console_kind {
    CT_CONSOLE_NONE = 0,
    CT_CONSOLE_REDIRECT, /* /admin: to /admin/ */
    CT_CONSOLE_PAGE,     /* a page of the console: needs a session */
    CT_CONSOLE_FILE,     /* its script and style sheet: public */
    CT_CONSOLE_LOGIN,    /* GET: the form; POST: a login */
    CT_CONSOLE_LOGOUT,   /* POST: ends the session */
} ct_console_kind;

typedef struct ct_console_asset {
    ct_console_kind kind;
    const char *body; /* static */
    const char *content_type;
} ct_console_asset;

/* What a console path is (kind NONE: 404). */
ct_console_asset ct_console_asset_find(const char *url);

/* The headers every console answer carries: a strict content security
 * policy (scripts and styles from the console itself only), no framing, no
 * sniffing, no referrer. Called per header: name, value; i from 0 until
 * false. */
bool ct_console_security_header(size_t i, const char **name, const char **value);

/* A new session's cookie value for admin_key at now_s into out. 0, or -1
 * when there is no key. */
int ct_console_session_new(const char *admin_key, int64_t now_s, char out[CT_CONSOLE_SESSION_CHARS + 1]);
/* true when the Cookie header holds a session of admin_key that has not
 * expired at now_s (and is not dated further ahead than one session). */
bool ct_console_session_valid(const char *admin_key, const char *cookie_header, int64_t now_s);
/* The Set-Cookie value for a session (session NULL: one that deletes it). */
void ct_console_set_cookie(const char *session, char *out, size_t out_bytes);

/* The value of field `name` of an application/x-www-form-urlencoded body,
 * decoded ('+' and %XX), into out. 0, or -1 when absent, malformed or
 * longer than out_bytes - 1. */
int ct_console_form_value(const char *body, size_t len, const char *name, char *out, size_t out_bytes);

#endif
