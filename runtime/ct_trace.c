/* ct_trace: see ct_trace.h. */
#include "ct_trace.h"

#include <stdint.h>
#include <time.h>

#include "ct_hash.h"
#include "ct_log.h"

static int trace_one_in;

void ct_trace_init(int one_in) { trace_one_in = one_in > 0 ? one_in : 0; }

/* true when command ids like this one are traced. */
static bool ct_trace_sampled(const char *command_id, size_t len) {
    if (trace_one_in <= 0 || !command_id || len == 0) return false;
    if (trace_one_in == 1) return true;
    /* Hashed: the id's leading time digits must not decide. */
    return ct_hash64(command_id, len) % (uint64_t)trace_one_in == 0;
}

bool ct_trace_hop(const char *command_id, size_t len, const char *hop) {
    if (!ct_trace_sampled(command_id, len)) return false;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    ct_log_write(CT_LOG_INFO, "trace", "cmd=%.*s hop=%s us=%lld", (int)len, command_id, hop, us);
    return true;
}
