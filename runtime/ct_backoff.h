/*
 * ct_backoff: retry delays shared by everything that retries against
 * something outside the process (the relay's publishes, the Slack sender's
 * posts, reconnect loops).
 */
#ifndef CT_BACKOFF_H
#define CT_BACKOFF_H

#include <stdint.h>

/* The delay before attempt `attempts + 1` after a failure: base * 2^attempts
 * capped at max, then scaled by a jitter factor in [0.5, 1] (jitter01 in
 * [0, 1]), so clients retrying together spread out. At least 1 ms. */
int64_t ct_backoff_ms(int attempts, int base_ms, int max_ms, double jitter01);

/* A uniform value in [0, 1] from the OS random source (1.0 if it fails). */
double ct_backoff_jitter(void);

#endif
