/* ct_time: RFC 3339 <-> epoch milliseconds, against values Python's
 * datetime gives, against timegm() over a sweep, and on malformed input. */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "ct_time.h"

static int64_t parse(const char *s) {
    int64_t ms = 0;
    cr_assert_eq(ct_time_parse_rfc3339(s, strlen(s), &ms), 0, "%s refused", s);
    return ms;
}

Test(time, known_instants_parse_to_their_epoch_milliseconds) {
    cr_assert_eq(parse("2027-01-15T19:00:00Z"), 1800039600000LL);
    cr_assert_eq(parse("1970-01-01T00:00:00Z"), 0);
    cr_assert_eq(parse("2000-02-29T23:59:59.999Z"), 951868799999LL);
    cr_assert_eq(parse("1969-12-31T23:59:59.5Z"), -500);
    cr_assert_eq(parse("2030-01-01T09:00:00+09:00"), 1893456000000LL);
    cr_assert_eq(parse("2029-12-31T19:30:00-04:30"), 1893456000000LL);
    cr_assert_eq(parse("2030-01-01t00:00:00.000123456z"), 1893456000000LL); /* past ms: truncated */
    cr_assert_eq(parse("9999-12-31T23:59:59.999Z"), 253402300799999LL);
    cr_assert_eq(parse("0001-01-01T00:00:00Z"), -62135596800000LL);
}

Test(time, formatting_is_the_inverse_and_agrees_with_timegm) {
    char out[CT_TIME_RFC3339_BYTES];
    cr_assert_eq(ct_time_format_rfc3339(1800039600000LL, out), 0);
    cr_assert_str_eq(out, "2027-01-15T19:00:00.000Z");
    cr_assert_eq(ct_time_format_rfc3339(-500, out), 0);
    cr_assert_str_eq(out, "1969-12-31T23:59:59.500Z");
    /* Every ~11 days from 1900 to 2200, at an odd millisecond. */
    for (int64_t ms = -2208988800000LL; ms < 7258118400000LL; ms += 987654321LL) {
        cr_assert_eq(ct_time_format_rfc3339(ms, out), 0);
        cr_assert_eq(parse(out), ms, "%lld -> %s", (long long)ms, out);
        struct tm tm = {0};
        cr_assert_not_null(strptime(out, "%Y-%m-%dT%H:%M:%S", &tm));
        int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
        cr_assert_eq((int64_t)timegm(&tm), secs, "%s", out);
    }
    cr_assert_eq(ct_time_format_rfc3339(253402300800000LL, out), -1, "year 10000");
}

Test(time, what_is_not_an_rfc3339_date_time_is_refused) {
    static const char *const bad[] = {
        "",
        "2027-01-15",
        "2027-01-15T19:00:00",
        "2027-01-15 19:00:00Z",
        "2027-02-29T00:00:00Z",
        "2027-13-01T00:00:00Z",
        "2027-00-10T00:00:00Z",
        "2027-01-32T00:00:00Z",
        "2027-01-15T24:00:00Z",
        "2027-01-15T19:60:00Z",
        "2027-01-15T19:00:60Z",
        "2027-01-15T19:00:00.Z",
        "2027-01-15T19:00:00+0900",
        "2027-01-15T19:00:00+24:00",
        "2027-01-15T19:00:00Zjunk",
        "27-01-15T19:00:00Z",
        "+2027-01-15T19:00:00Z",
        "2027-1-15T19:00:00Z",
        "1800039600000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 42;
        cr_assert_eq(ct_time_parse_rfc3339(bad[i], strlen(bad[i]), &ms), -1, "accepted '%s'", bad[i]);
        cr_assert_eq(ms, 42, "'%s' changed the output", bad[i]);
    }
    /* A length shorter than the string: the rest is not read. */
    int64_t ms = 0;
    cr_assert_eq(ct_time_parse_rfc3339("2027-01-15T19:00:00Z", 19, &ms), -1);
}
