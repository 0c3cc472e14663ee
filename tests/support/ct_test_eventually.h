/* Waiting for what another process brings about, else failing the test:
 * ct_test_eventually(timeout_ms, cond, fmt, ...) evaluates cond every
 * CT_TEST_EVENTUALLY_STEP_MS (monotonic clock) until it holds; if it still
 * does not once timeout_ms has passed, the test fails with the printf-style
 * message, whose arguments are evaluated then, after cond's last
 * evaluation. Header-only. */
#ifndef CT_TEST_EVENTUALLY_H
#define CT_TEST_EVENTUALLY_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <time.h>

/* Between two evaluations of the condition: often enough that a test
 * waits little past the moment it holds, seldom enough that a condition
 * which queries Postgres or HTTP stays cheap. */
#define CT_TEST_EVENTUALLY_STEP_MS 50

static inline int64_t ct_test_eventually_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void ct_test_eventually_pause(void) {
    struct timespec ts = {0, CT_TEST_EVENTUALLY_STEP_MS * 1000000L};
    nanosleep(&ts, NULL);
}

/* The clock is read before cond is: the test fails only when cond,
 * evaluated at or after the deadline, does not hold. */
#define ct_test_eventually(timeout_ms, cond, ...)                                                            \
    do {                                                                                                     \
        const int64_t ct_test_eventually_deadline_ms_ = ct_test_eventually_now_ms() + (int64_t)(timeout_ms); \
        for (;;) {                                                                                           \
            const int64_t ct_test_eventually_at_ms_ = ct_test_eventually_now_ms();                           \
            if (cond) break;                                                                                 \
            if (ct_test_eventually_at_ms_ >= ct_test_eventually_deadline_ms_) cr_assert_fail(__VA_ARGS__);   \
            ct_test_eventually_pause();                                                                      \
        }                                                                                                    \
    } while (0)

#endif
