#include "ct_backoff.h"

#include <sys/random.h>
#include <sys/types.h>

int64_t ct_backoff_ms(int attempts, int base_ms, int max_ms, double jitter01) {
    double d = base_ms;
    for (int i = 0; i < attempts && d < max_ms; i++) d *= 2;
    if (d > max_ms) d = max_ms;
    if (jitter01 < 0) jitter01 = 0;
    if (jitter01 > 1) jitter01 = 1;
    int64_t ms = (int64_t)(d * (0.5 + 0.5 * jitter01));
    return ms < 1 ? 1 : ms;
}

double ct_backoff_jitter(void) {
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) return 1.0;
    return (double)r / 4294967295.0;
}
