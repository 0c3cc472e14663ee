/*
 * ct_effects: what applying one record produced.
 *
 * A ct_effects holds, after ct_concert_apply / ct_wallet_apply returned 0:
 *   - the state mutations: one per key touched, sorted by key (memcmp
 *     order), each a put (key, value) or a delete (key). Applying them in
 *     any order gives the same state; they are sorted so the effects of a
 *     record are byte-identical from run to run.
 *   - the output records, in the order they happened, each naming its
 *     topic, partition key and whether it is its command's terminal outcome.
 * If apply returned -1 the contents are unspecified: apply nothing.
 *
 * One ct_effects is meant to be reused for every record of a task: apply
 * resets it and keeps its memory, so steady state allocates nothing.
 * Pointers returned by the accessors stay valid until the next apply or
 * destroy. Not thread-safe; one per task.
 */
#ifndef CT_EFFECTS_H
#define CT_EFFECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ct_error.h"
#include "ct_record.h"

typedef struct ct_effects ct_effects;

typedef struct ct_mutation {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *val; /* NULL for a delete */
    size_t val_len;
    bool is_delete;
} ct_mutation;

/* Returns a new, empty ct_effects, or NULL when out of memory. */
ct_effects *ct_effects_new(void);
/* Accepts NULL. */
void ct_effects_destroy(ct_effects *fx);

size_t ct_effects_mutation_count(const ct_effects *fx);
/* The i-th mutation (i < count), borrowed. */
void ct_effects_mutation_at(const ct_effects *fx, size_t i, ct_mutation *m);

size_t ct_effects_output_count(const ct_effects *fx);
/* The i-th output (i < count), borrowed. Its index field equals i. */
const ct_out *ct_effects_output_at(const ct_effects *fx, size_t i);

/* The id of the input record these effects came from: output i's record id
 * is "<input id>:<i>". */
const char *ct_effects_input_id(const ct_effects *fx);

/* The partition's logical time after the record (also stored in state). */
int64_t ct_effects_clock_ms(const ct_effects *fx);

#endif
