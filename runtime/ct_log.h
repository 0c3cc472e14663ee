/*
 * ct_log: leveled, one-line-per-event logging to stderr.
 *
 * Line format: `<UTC time> <LEVEL> <component> <facility>: <message>` where
 * the message is free text followed by key=value context. Each line is one
 * write(2), so lines from concurrent threads or sibling processes sharing a
 * pipe never interleave. Never log payloads or secrets: pass secret settings through
 * ct_log_redact_secret() first.
 *
 * The component and level are process-wide (set once by main before threads
 * start); everything else is thread-safe.
 */
#ifndef CT_LOG_H
#define CT_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ct_log_level { CT_LOG_DEBUG = 0, CT_LOG_INFO, CT_LOG_WARN, CT_LOG_ERROR } ct_log_level;

void ct_log_init(const char *component, ct_log_level min_level);
void ct_log_write(ct_log_level level, const char *facility, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int ct_log_enabled(ct_log_level level);
/* 0 and the level on success, -1 for an unknown name. */
int ct_log_level_parse(const char *name, ct_log_level *out);
const char *ct_log_level_name(ct_log_level level);

/* Copies a secret setting's value to out in a form fit for a log line:
 * a Postgres URL keeps user, host, port and database, with the password
 * and every password/secret/key/token query parameter as "***"; any other
 * URL (a webhook) keeps scheme and host and masks the rest, path and
 * query, where a webhook's secret is; conninfo (`host=db password=...`)
 * hides every such keyword's value; a bare value (an API key) is "***"
 * whole. Empty stays empty. */
void ct_log_redact_secret(const char *value, char *out, size_t out_bytes);
/* True if a setting or parameter name says its value is a secret: it holds
 * password, secret, key or token (any case) in its n bytes. */
bool ct_log_secret_name(const char *name, size_t n);

/* Rate limiting for errors that repeat in a loop: at most one line per
 * interval per call site; the next line says how many were suppressed. */
typedef struct ct_log_ratelimit {
    _Atomic int64_t last_ms;
    _Atomic int64_t suppressed;
} ct_log_ratelimit;
int ct_log_ratelimit_allow(ct_log_ratelimit *rl, int64_t interval_ms, int64_t *suppressed_out);

#define CT_LOG_DEBUG(fac, ...)                                                          \
    do {                                                                                \
        if (ct_log_enabled(CT_LOG_DEBUG)) ct_log_write(CT_LOG_DEBUG, fac, __VA_ARGS__); \
    } while (0)
#define CT_LOG_INFO(fac, ...) ct_log_write(CT_LOG_INFO, fac, __VA_ARGS__)
#define CT_LOG_WARN(fac, ...) ct_log_write(CT_LOG_WARN, fac, __VA_ARGS__)
#define CT_LOG_ERROR(fac, ...) ct_log_write(CT_LOG_ERROR, fac, __VA_ARGS__)
/* Logs at most once per interval_ms from this call site. */
#define CT_LOG_RATELIMITED(level, fac, interval_ms, fmt, ...)                                    \
    do {                                                                                         \
        static ct_log_ratelimit ct__rl;                                                          \
        int64_t ct__sup = 0;                                                                     \
        if (ct_log_ratelimit_allow(&ct__rl, (interval_ms), &ct__sup))                            \
            ct_log_write((level), fac, fmt " suppressed=%lld", __VA_ARGS__, (long long)ct__sup); \
    } while (0)

/* Monotonic and wall clocks in milliseconds, the monotonic one also in
 * microseconds (adapters only; the domain core never reads a clock). */
int64_t ct_clock_mono_ms(void);
int64_t ct_clock_mono_us(void);
int64_t ct_clock_wall_ms(void);

#endif
