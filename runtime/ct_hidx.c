/* ct_hidx: see ct_hidx.h. */
#include "ct_hidx.h"

#include <stdlib.h>

int ct_hidx_init(ct_hidx *ix, size_t cap) {
    *ix = (ct_hidx){0};
    if (!(ix->slots = calloc(cap, sizeof *ix->slots))) return -1;
    ix->cap = cap;
    return 0;
}

void ct_hidx_fini(ct_hidx *ix) {
    free(ix->slots);
    *ix = (ct_hidx){0};
}

void ct_hidx_clear(ct_hidx *ix) {
    memset(ix->slots, 0, ix->cap * sizeof *ix->slots);
    ix->count = 0;
}

int ct_hidx_grow(ct_hidx *ix) {
    size_t cap = ix->cap * 2, mask = cap - 1;
    ct_hidx_slot *t = calloc(cap, sizeof *t);
    if (!t) return -1;
    for (size_t i = 0; i < ix->cap; i++) {
        if (!ix->slots[i].item) continue;
        size_t j = ix->slots[i].hash & mask;
        while (t[j].item) j = (j + 1) & mask;
        t[j] = ix->slots[i];
    }
    free(ix->slots);
    ix->slots = t;
    ix->cap = cap;
    return 0;
}

void ct_hidx_remove(ct_hidx *ix, size_t i) {
    size_t mask = ix->cap - 1, j = i;
    ix->slots[i].item = NULL;
    ix->count--;
    for (;;) {
        j = (j + 1) & mask;
        if (!ix->slots[j].item) return;
        size_t home = ix->slots[j].hash & mask;
        /* the entry moves to i if i lies cyclically in [home, j) */
        bool move = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (move) {
            ix->slots[i] = ix->slots[j];
            ix->slots[j].item = NULL;
            i = j;
        }
    }
}
