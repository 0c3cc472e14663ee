/* ct_pgarray: see ct_pgarray.h. */
#include "ct_pgarray.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(ct_pgarray *a, const char *s, size_t n) {
    if (a->oom) return;
    if (a->n + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 4096;
        while (cap < a->n + n + 1) cap *= 2;
        char *p = realloc(a->p, cap);
        if (!p) {
            a->oom = true;
            return;
        }
        a->p = p, a->cap = cap;
    }
    memcpy(a->p + a->n, s, n);
    a->n += n;
    a->p[a->n] = 0;
}

void ct_pgarray_add(ct_pgarray *a, const char *s) {
    if (!s) {
        put(a, a->count++ == 0 ? "{NULL" : ",NULL", 5);
        return;
    }
    put(a, a->count++ == 0 ? "{\"" : ",\"", 2);
    for (const char *p = s; *p; p++) {
        const char *run = p;
        while (*p && *p != '"' && *p != '\\') p++;
        put(a, run, (size_t)(p - run));
        if (!*p) break;
        put(a, "\\", 1);
        put(a, p, 1);
    }
    put(a, "\"", 1);
}

void ct_pgarray_add_int(ct_pgarray *a, int64_t v) {
    char b[32];
    snprintf(b, sizeof b, "%" PRId64, v);
    ct_pgarray_add(a, b);
}

const char *ct_pgarray_text(ct_pgarray *a) {
    if (!a->closed) {
        if (a->count == 0) put(a, "{", 1);
        put(a, "}", 1);
        a->closed = true;
    }
    return a->oom ? NULL : a->p;
}

void ct_pgarray_free(ct_pgarray *a) {
    free(a->p);
    memset(a, 0, sizeof *a);
}
