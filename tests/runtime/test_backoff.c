/* ct_backoff: the retry delay is base * 2^attempts, capped at max, scaled
 * by a jitter factor in [0.5, 1], never below 1 ms; the jitter source gives
 * values in [0, 1] that actually vary. The delay function takes its jitter
 * as an argument, so every case but the last is deterministic. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdint.h>

#include "ct_backoff.h"

/* Without jitter (jitter01 = 1) the delay is the full step. */
Test(backoff, doubles_with_each_attempt_until_the_cap) {
    static const struct {
        int attempts, base_ms, max_ms;
        int64_t want_ms;
    } cases[] = {
        {0, 100, 60000, 100},
        {1, 100, 60000, 200},
        {2, 100, 60000, 400},
        {3, 100, 60000, 800},
        {9, 100, 60000, 51200},
        {10, 100, 60000, 60000},
        {11, 100, 60000, 60000},
        {30, 100, 60000, 60000},
        {0, 500, 60000, 500},
        {6, 500, 60000, 32000},
        {7, 500, 60000, 60000},
        {0, 1, 1, 1},
        {5, 1, 3600000, 32},
        {21, 1, 3600000, 2097152},
        {22, 1, 3600000, 3600000},
        /* a cap that is not a power-of-two multiple of the base */
        {2, 300, 1000, 1000},
        {1, 300, 1000, 600},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t got = ct_backoff_ms(cases[i].attempts, cases[i].base_ms, cases[i].max_ms, 1.0);
        cr_expect_eq(got, cases[i].want_ms, "attempts=%d base=%d max=%d: %lld ms, want %lld", cases[i].attempts,
                     cases[i].base_ms, cases[i].max_ms, (long long)got, (long long)cases[i].want_ms);
    }
}

Test(backoff, grows_monotonically_and_never_passes_the_cap) {
    static const int bases[] = {1, 7, 100, 500, 1000};
    static const int maxes[] = {1000, 60000, 3600000};
    static const double jitters[] = {0.0, 0.25, 0.5, 1.0};
    for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++)
        for (size_t m = 0; m < sizeof maxes / sizeof maxes[0]; m++)
            for (size_t j = 0; j < sizeof jitters / sizeof jitters[0]; j++) {
                int64_t prev = 0;
                for (int a = 0; a <= 64; a++) {
                    int64_t d = ct_backoff_ms(a, bases[b], maxes[m], jitters[j]);
                    cr_assert_geq(d, prev, "base=%d max=%d jitter=%g: attempt %d gives %lld < %lld", bases[b], maxes[m],
                                  jitters[j], a, (long long)d, (long long)prev);
                    cr_assert_leq(d, maxes[m], "base=%d max=%d: attempt %d gives %lld", bases[b], maxes[m], a,
                                  (long long)d);
                    prev = d;
                }
                /* Far past the cap the delay has reached the (jittered) cap. */
                int64_t capped = (int64_t)(maxes[m] * (0.5 + 0.5 * jitters[j]));
                cr_assert_eq(prev, capped < 1 ? 1 : capped, "base=%d max=%d jitter=%g: %lld", bases[b], maxes[m],
                             jitters[j], (long long)prev);
            }
}

/* Attempt counts from a database column: huge ones are capped, not
 * overflowed (the doubling stops at the cap), negative ones are the base. */
Test(backoff, extreme_attempt_counts_stay_within_bounds) {
    cr_assert_eq(ct_backoff_ms(INT_MAX, 500, 60000, 1.0), 60000);
    cr_assert_eq(ct_backoff_ms(INT_MAX, 1, 3600000, 1.0), 3600000);
    cr_assert_eq(ct_backoff_ms(1000, 1, INT_MAX, 1.0), INT_MAX);
    cr_assert_eq(ct_backoff_ms(-1, 500, 60000, 1.0), 500);
    cr_assert_eq(ct_backoff_ms(INT_MIN, 500, 60000, 1.0), 500);
}

Test(backoff, jitter_scales_the_step_into_its_upper_half) {
    /* attempts=3, base 100: step 800 ms; jitter maps [0, 1] onto [400, 800]. */
    cr_assert_eq(ct_backoff_ms(3, 100, 60000, 0.0), 400);
    cr_assert_eq(ct_backoff_ms(3, 100, 60000, 0.5), 600);
    cr_assert_eq(ct_backoff_ms(3, 100, 60000, 0.75), 700);
    cr_assert_eq(ct_backoff_ms(3, 100, 60000, 1.0), 800);
    /* the cap is jittered too: delays of clients at the cap still spread */
    cr_assert_eq(ct_backoff_ms(20, 100, 60000, 0.0), 30000);
    /* out-of-range jitter is clamped to [0, 1] */
    cr_assert_eq(ct_backoff_ms(3, 100, 60000, -3.0), 400);
    cr_assert_eq(ct_backoff_ms(3, 100, 60000, 7.0), 800);
    /* Every jitter in [0, 1] lands within [step / 2, step], and a larger
     * jitter never gives a shorter delay. */
    for (int a = 0; a < 12; a++) {
        int64_t step = ct_backoff_ms(a, 250, 100000, 1.0), prev = 0;
        for (int k = 0; k <= 1000; k++) {
            int64_t d = ct_backoff_ms(a, 250, 100000, k / 1000.0);
            cr_assert(d >= step / 2 && d <= step, "attempts=%d jitter=%g: %lld not in [%lld, %lld]", a, k / 1000.0,
                      (long long)d, (long long)(step / 2), (long long)step);
            cr_assert_geq(d, prev);
            prev = d;
        }
    }
}

Test(backoff, is_at_least_one_millisecond) {
    cr_assert_eq(ct_backoff_ms(0, 1, 1, 0.0), 1); /* 0.5 ms rounds down to 0: raised to 1 */
    cr_assert_eq(ct_backoff_ms(0, 1, 1000, 0.0), 1);
    cr_assert_eq(ct_backoff_ms(1, 1, 1000, 0.0), 1);
    cr_assert_eq(ct_backoff_ms(2, 1, 1000, 0.0), 2);
}

/* The one nondeterministic part: the OS random source. 2,000 draws are all
 * in [0, 1], not all the same, with a mean near 1/2 and both halves hit
 * (a stuck or biased source would spread nobody's retries). */
Test(backoff, os_jitter_is_uniform_in_zero_to_one) {
    enum { DRAWS = 2000 };
    double sum = 0, lo = 2, hi = -1;
    int low_half = 0;
    for (int i = 0; i < DRAWS; i++) {
        double j = ct_backoff_jitter();
        cr_assert(j >= 0.0 && j <= 1.0, "draw %d: %g", i, j);
        sum += j, low_half += j < 0.5;
        if (j < lo) lo = j;
        if (j > hi) hi = j;
    }
    double mean = sum / DRAWS;
    cr_log_info("jitter: %d draws, mean %.4f, min %.4f, max %.4f, below 0.5: %d", DRAWS, mean, lo, hi, low_half);
    /* The mean of 2,000 uniform draws has a standard deviation of 0.0065:
     * 0.45..0.55 is more than 7 of them either side. */
    cr_assert(mean > 0.45 && mean < 0.55, "mean jitter %g", mean);
    cr_assert(lo < 0.01 && hi > 0.99, "draws span only [%g, %g]", lo, hi);
    cr_assert(low_half > DRAWS * 4 / 10 && low_half < DRAWS * 6 / 10, "%d of %d draws below 0.5", low_half, DRAWS);
}
