/* ct_log: see ct_log.h. */
#include "ct_log.h"

#include <stdarg.h>
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
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, ct_log_level_name(level), g_component,
                     facility ? facility : "-");
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

void ct_log_redact_url(const char *url, char *out, size_t out_bytes) {
    if (out_bytes == 0) return;
    out[0] = '\0';
    if (!url) return;
    size_t o = 0;
    const char *p = url;
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = (scheme && at) ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    while (*p && o + 1 < out_bytes) {
        if (colon && p == colon + 1) {
            /* URL form: user:PASSWORD@host */
            const char *mask = "***";
            while (*mask && o + 1 < out_bytes) out[o++] = *mask++;
            p = at;
            continue;
        }
        if (!scheme && strncasecmp(p, "password=", 9) == 0 && (p == url || p[-1] == ' ')) {
            const char *mask = "password=***";
            while (*mask && o + 1 < out_bytes) out[o++] = *mask++;
            p += 9;
            if (*p == '\'') {
                p++;
                while (*p && *p != '\'') p += (*p == '\\' && p[1]) ? 2 : 1;
                if (*p) p++;
            } else {
                while (*p && *p != ' ') p++;
            }
            continue;
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
}
