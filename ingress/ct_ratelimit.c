/* ct_ratelimit: see ct_ratelimit.h. Amounts are in thousandths of a take,
 * so a rate of 1/s refills 1 per ms without floating point. */
#include "ct_ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ct_hash.h"

#define PROBES 8
#define BURST_S 2

typedef struct slot {
    uint64_t key;  /* hash of the key; 0: empty */
    int64_t level; /* thousandths of a take */
    int64_t at_ms; /* when level was computed */
} slot;

struct ct_ratelimit {
    pthread_mutex_t mu;
    int64_t per_s, cap;
    slot *slots;
};

ct_ratelimit *ct_ratelimit_new(int per_s, bool *err_oom) {
    *err_oom = false;
    if (per_s <= 0) return NULL;
    ct_ratelimit *rl = calloc(1, sizeof *rl);
    if (rl) rl->slots = calloc(CT_RATELIMIT_SLOTS, sizeof *rl->slots);
    if (!rl || !rl->slots) {
        free(rl);
        *err_oom = true;
        return NULL;
    }
    pthread_mutex_init(&rl->mu, NULL);
    rl->per_s = per_s;
    rl->cap = (int64_t)per_s * BURST_S * 1000;
    return rl;
}

void ct_ratelimit_destroy(ct_ratelimit *rl) {
    if (!rl) return;
    pthread_mutex_destroy(&rl->mu);
    free(rl->slots);
    free(rl);
}

static int64_t level_at(const ct_ratelimit *rl, const slot *s, int64_t now_ms) {
    int64_t l = s->level + (now_ms > s->at_ms ? (now_ms - s->at_ms) * rl->per_s : 0);
    return l > rl->cap ? rl->cap : l;
}

bool ct_ratelimit_take(ct_ratelimit *rl, const char *key, int64_t now_ms, int *retry_after_s) {
    if (!rl) return true;
    uint64_t h = ct_hash64_str(key) | 1; /* never 0, the empty mark */
    pthread_mutex_lock(&rl->mu);
    slot *s = NULL, *fullest = NULL;
    for (size_t i = 0; i < PROBES && !s; i++) {
        slot *c = &rl->slots[(h + i) & (CT_RATELIMIT_SLOTS - 1)];
        if (c->key == h)
            s = c;
        else if (!fullest || c->key == 0 || level_at(rl, c, now_ms) > level_at(rl, fullest, now_ms))
            fullest = c;
    }
    if (!s) { /* a new key takes the probe's emptiest-of-use slot: a full bucket forgets nothing */
        s = fullest;
        *s = (slot){.key = h, .level = rl->cap, .at_ms = now_ms};
    }
    int64_t l = level_at(rl, s, now_ms);
    bool ok = l >= 1000;
    s->level = ok ? l - 1000 : l;
    s->at_ms = now_ms;
    if (!ok) {
        int64_t ms = (1000 - l + rl->per_s - 1) / rl->per_s; /* until one take is back */
        *retry_after_s = (int)((ms + 999) / 1000);
        if (*retry_after_s < 1) *retry_after_s = 1;
    }
    pthread_mutex_unlock(&rl->mu);
    return ok;
}
