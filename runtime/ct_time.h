/*
 * ct_time: RFC 3339 times <-> milliseconds since the Unix epoch (UTC),
 * without the C library's time zone state (pure, no I/O).
 *
 * Parsing takes `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` (the
 * RFC's `t` and `z` in either case; a space is not accepted for `T`);
 * digits past milliseconds are truncated. Years 0000-9999 only, leap
 * seconds (:60) refused: the API's times are instants a schedule or a hold
 * can fall on.
 */
#ifndef CT_TIME_H
#define CT_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "2027-01-15T19:00:00.000Z" plus NUL. */
#define CT_TIME_RFC3339_BYTES 25

/* 0 and *ms set, or -1 when s is not an RFC 3339 date-time. */
int ct_time_parse_rfc3339(const char *s, size_t len, int64_t *ms);
/* Writes ms as "YYYY-MM-DDTHH:MM:SS.sssZ"; -1 when ms is outside years
 * 0000-9999. */
int ct_time_format_rfc3339(int64_t ms, char out[CT_TIME_RFC3339_BYTES]);

#endif
