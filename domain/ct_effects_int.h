/*
 * ct_effects_int: the core's side of ct_effects (private to domain/).
 *
 * The overlay is a sorted array of entries over one byte arena; it is both
 * the record's write set (the mutations) and what the core reads first, so
 * a record sees its own earlier writes.
 */
#ifndef CT_EFFECTS_INT_H
#define CT_EFFECTS_INT_H

#include "ct_effects.h"

typedef struct ct_fx_entry {
    uint32_t key_off;
    uint32_t val_off;
    uint16_t key_len;
    uint16_t val_len;
    bool is_delete;
} ct_fx_entry;

struct ct_effects {
    uint8_t *arena;
    size_t arena_len, arena_cap;
    ct_fx_entry *ent;
    size_t ent_len, ent_cap;
    ct_out *out;
    size_t out_len, out_cap;
    char input_id[CT_RECORD_ID_BYTES_MAX + 1];
    int64_t clock_ms;
};

/* Empties fx for a new record. */
void ct_fx_reset(ct_effects *fx, const char *input_id);

/* Looks key up in the overlay. Returns 1 and the value (valid until the
 * next put) if the record wrote it, 0 if the record deleted it, -1 if the
 * record has not touched it. */
int ct_fx_lookup(const ct_effects *fx, const uint8_t *key, size_t key_len, const uint8_t **val, size_t *val_len);

/* Index of the first overlay entry with key >= key (ent_len if none). */
size_t ct_fx_lower_bound(const ct_effects *fx, const uint8_t *key, size_t key_len);

/* Records a put / delete. Returns 0, or -1 with a FATAL error when a limit
 * or memory runs out. */
int ct_fx_put(ct_effects *fx, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len, ct_error *err);
int ct_fx_del(ct_effects *fx, const uint8_t *key, size_t key_len, ct_error *err);

/* Appends a zeroed output with its index set. NULL with a FATAL error when
 * a limit or memory runs out. */
ct_out *ct_fx_out(ct_effects *fx, ct_error *err);

#endif
