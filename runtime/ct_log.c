/* ct_log: see ct_log.h. */
#include "ct_log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static char g_component[32] = "concert";
static ct_log_level g_min_level = CT_LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void ct_log_init(const char *component, ct_log_level min_level) {
    snprintf(g_component, sizeof g_component, "%s", component ? component : "concert");
    g_min_level = min_level;
}

int ct_log_enabled(ct_log_level level) { return level >= g_min_level; }

const char *ct_log_level_name(ct_log_level level) {
    return (level >= CT_LOG_DEBUG && level <= CT_LOG_ERROR) ? level_names[level] : "?";
}

int ct_log_level_parse(const char *name, ct_log_level *out) {
    static const char *const lower[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, lower[i]) == 0) {
            *out = (ct_log_level)i;
            return 0;
        }
    }
    return -1;
}

int64_t ct_clock_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ct_clock_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t ct_clock_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ct_log_write(ct_log_level level, const char *facility, const char *fmt, ...) {
    if (level < g_min_level) return;
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     ct_log_level_name(level), g_component, facility ? facility : "-");
    if (n < 0) return;
    size_t used = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + used, sizeof line - used, fmt, ap);
    va_end(ap);
    if (m > 0) used += ((size_t)m < sizeof line - used) ? (size_t)m : sizeof line - used - 1;
    /* One event, one line: fold embedded newlines (library messages). */
    for (size_t i = 0; i < used; i++)
        if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
    if (used >= sizeof line - 1) used = sizeof line - 2;
    line[used++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, used);
    (void)w; /* nowhere left to report a failed log write */
}

int ct_log_ratelimit_allow(ct_log_ratelimit *rl, int64_t interval_ms, int64_t *suppressed_out) {
    int64_t now = ct_clock_mono_ms();
    int64_t last = atomic_load(&rl->last_ms);
    if (last != 0 && now - last < interval_ms) {
        atomic_fetch_add(&rl->suppressed, 1);
        return 0;
    }
    if (!atomic_compare_exchange_strong(&rl->last_ms, &last, now)) {
        atomic_fetch_add(&rl->suppressed, 1);
        return 0;
    }
    *suppressed_out = atomic_exchange(&rl->suppressed, 0);
    return 1;
}

/* Appends n bytes of s to out (bounded, always NUL-terminated). */
static void put(char *out, size_t out_bytes, size_t *o, const char *s, size_t n) {
    while (n-- > 0 && *s && *o + 1 < out_bytes) out[(*o)++] = *s++;
    out[*o] = '\0';
}

bool ct_log_secret_name(const char *name, size_t n) {
    static const char *const words[] = {"password", "secret", "key", "token"};
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t wn = strlen(words[w]);
        for (size_t i = 0; i + wn <= n; i++)
            if (strncasecmp(name + i, words[w], wn) == 0) return true;
    }
    return false;
}

/* conninfo form: "host=db password='s 3' user=u": every secret-named
 * keyword's value (quoted or not) becomes ***. */
static void redact_conninfo(const char *p, char *out, size_t out_bytes, size_t *o) {
    while (*p) {
        const char *eq = strchr(p, '=');
        const char *sp = strchr(p, ' ');
        if (!eq || (sp && sp < eq)) { /* a word without a value */
            size_t n = sp ? (size_t)(sp - p) + 1 : strlen(p);
            put(out, out_bytes, o, p, n);
            p += n;
            continue;
        }
        put(out, out_bytes, o, p, (size_t)(eq - p) + 1);
        int hide = ct_log_secret_name(p, (size_t)(eq - p));
        const char *v = eq + 1, *ve = v;
        if (*ve == '\'') {
            ve++;
            while (*ve && *ve != '\'') ve += (*ve == '\\' && ve[1]) ? 2 : 1;
            if (*ve) ve++;
        } else {
            while (*ve && *ve != ' ') ve++;
        }
        if (hide)
            put(out, out_bytes, o, "***", 3);
        else
            put(out, out_bytes, o, v, (size_t)(ve - v));
        p = ve;
    }
}

void ct_log_redact_secret(const char *value, char *out, size_t out_bytes) {
    if (out_bytes == 0) return;
    out[0] = '\0';
    if (!value || !*value) return;
    size_t o = 0;
    const char *scheme = strstr(value, "://");
    if (!scheme) {
        if (strchr(value, '='))
            redact_conninfo(value, out, out_bytes, &o);
        else
            put(out, out_bytes, &o, "***", 3); /* a bare key or token */
        return;
    }
    const char *auth = scheme + 3;
    size_t auth_n = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', auth_n);
    put(out, out_bytes, &o, value, (size_t)(auth - value));
    if (at) { /* user[:password]@ */
        const char *colon = memchr(auth, ':', (size_t)(at - auth));
        put(out, out_bytes, &o, auth, (size_t)((colon ? colon : at) - auth));
        put(out, out_bytes, &o, colon ? ":***@" : "@", colon ? 5 : 1);
        auth_n -= (size_t)(at + 1 - auth);
        auth = at + 1;
    }
    put(out, out_bytes, &o, auth, auth_n); /* host[:port] */
    const char *rest = auth + auth_n;
    bool db = strncasecmp(value, "postgres", 8) == 0;
    if (!db) { /* an HTTP(S) webhook's path and query are its secret */
        if (*rest) put(out, out_bytes, &o, "/***", 4);
        return;
    }
    size_t path_n = strcspn(rest, "?#");
    put(out, out_bytes, &o, rest, path_n); /* the database name */
    rest += path_n;
    if (*rest != '?') return;
    put(out, out_bytes, &o, "?", 1);
    for (const char *q = rest + 1; *q && *q != '#';) {
        size_t pn = strcspn(q, "&#");
        const char *eq = memchr(q, '=', pn);
        if (eq && ct_log_secret_name(q, (size_t)(eq - q))) {
            put(out, out_bytes, &o, q, (size_t)(eq - q) + 1);
            put(out, out_bytes, &o, "***", 3);
        } else {
            put(out, out_bytes, &o, q, pn);
        }
        q += pn;
        if (*q == '&') put(out, out_bytes, &o, "&", 1), q++;
    }
}
