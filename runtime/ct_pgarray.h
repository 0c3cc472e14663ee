/*
 * ct_pgarray: Postgres array literals ('{"a","b"}') built incrementally.
 *
 * Batches travel to Postgres as one parameter per column, unnested server
 * side (INSERT ... SELECT * FROM unnest($1::uuid[], $2::text[])): one
 * statement per batch whatever its size, still fully parameterised (the
 * literal is a bound value, never spliced into SQL). Every element is
 * quoted and escaped, so any text is safe.
 *
 * Zero-initialise, add, take the text, free. Out of memory is sticky and
 * reported by ct_pgarray_text returning NULL.
 */
#ifndef CT_PGARRAY_H
#define CT_PGARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ct_pgarray {
    char *p;
    size_t n, cap;
    bool oom, closed;
    size_t count;
} ct_pgarray;

/* s NULL adds a NULL element (a quoted "NULL" is the text NULL). */
void ct_pgarray_add(ct_pgarray *a, const char *s);
void ct_pgarray_add_int(ct_pgarray *a, int64_t v);
/* The finished literal (valid until ct_pgarray_free), NULL when out of
 * memory. No element may be added afterwards. */
const char *ct_pgarray_text(ct_pgarray *a);
void ct_pgarray_free(ct_pgarray *a);

#endif
