/* ct_time: see ct_time.h. Calendar arithmetic after Howard Hinnant's
 * days_from_civil / civil_from_days (proleptic Gregorian calendar). */
#include "ct_time.h"

#include <stdio.h>
#include <string.h>

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp + (mp < 10 ? 3 : -9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int month_days(int64_t y, int64_t m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* n digits at s[*i] into *out. */
static bool digits(const char *s, size_t len, size_t *i, int n, int64_t *out) {
    int64_t v = 0;
    for (int k = 0; k < n; k++, (*i)++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9') return false;
        v = v * 10 + (s[*i] - '0');
    }
    *out = v;
    return true;
}

static bool expect(const char *s, size_t len, size_t *i, char a, char b) {
    if (*i >= len || (s[*i] != a && s[*i] != b)) return false;
    (*i)++;
    return true;
}

int ct_time_parse_rfc3339(const char *s, size_t len, int64_t *ms) {
    size_t i = 0;
    int64_t y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0;
    if (!digits(s, len, &i, 4, &y) || !expect(s, len, &i, '-', '-') || !digits(s, len, &i, 2, &mo) ||
        !expect(s, len, &i, '-', '-') || !digits(s, len, &i, 2, &d) || !expect(s, len, &i, 'T', 't') ||
        !digits(s, len, &i, 2, &h) || !expect(s, len, &i, ':', ':') || !digits(s, len, &i, 2, &mi) ||
        !expect(s, len, &i, ':', ':') || !digits(s, len, &i, 2, &sec))
        return -1;
    if (i < len && s[i] == '.') {
        i++;
        int n = 0;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, n++)
            if (n < 3) frac = frac * 10 + (s[i] - '0');
        if (n == 0) return -1;
        for (; n < 3; n++) frac *= 10;
    }
    int sign = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < len && (s[i] == '+' || s[i] == '-')) {
        sign = s[i++] == '-' ? -1 : 1;
        if (!digits(s, len, &i, 2, &oh) || !expect(s, len, &i, ':', ':') || !digits(s, len, &i, 2, &om)) return -1;
        if (oh > 23 || om > 59) return -1;
    } else {
        return -1;
    }
    if (i != len || mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo) || h > 23 || mi > 59 || sec > 59) return -1;
    int64_t t = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + sec;
    t -= sign * (oh * 3600 + om * 60);
    *ms = t * 1000 + frac;
    return 0;
}

int ct_time_format_rfc3339(int64_t ms, char out[CT_TIME_RFC3339_BYTES]) {
    int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int64_t rem = ms - secs * 1000;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400, y, m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) return -1;
    char tmp[64]; /* the fields are in range; the compiler cannot tell */
    int n = snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y, (int)m, (int)d, (int)(sod / 3600),
                     (int)(sod / 60 % 60), (int)(sod % 60), (int)rem);
    if (n != CT_TIME_RFC3339_BYTES - 1) return -1;
    memcpy(out, tmp, CT_TIME_RFC3339_BYTES);
    return 0;
}
