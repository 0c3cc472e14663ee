/* ct_effects: the overlay / write set and the outputs of one record.
 * See ct_effects.h and ct_effects_int.h. */
#include "ct_effects_int.h"

#include <stdlib.h>
#include <string.h>

ct_effects *ct_effects_new(void) {
    ct_effects *fx = calloc(1, sizeof *fx);
    return fx;
}

void ct_effects_destroy(ct_effects *fx) {
    if (!fx) return;
    free(fx->arena);
    free(fx->ent);
    free(fx->out);
    free(fx);
}

void ct_fx_reset(ct_effects *fx, const char *input_id) {
    fx->arena_len = 0;
    fx->ent_len = 0;
    fx->out_len = 0;
    fx->clock_ms = 0;
    size_t n = strlen(input_id);
    if (n > CT_RECORD_ID_BYTES_MAX) n = CT_RECORD_ID_BYTES_MAX;
    memcpy(fx->input_id, input_id, n);
    fx->input_id[n] = '\0';
}

size_t ct_effects_mutation_count(const ct_effects *fx) { return fx->ent_len; }

void ct_effects_mutation_at(const ct_effects *fx, size_t i, ct_mutation *m) {
    const ct_fx_entry *e = &fx->ent[i];
    m->key = fx->arena + e->key_off;
    m->key_len = e->key_len;
    m->is_delete = e->is_delete;
    m->val = e->is_delete ? NULL : fx->arena + e->val_off;
    m->val_len = e->is_delete ? 0 : e->val_len;
}

size_t ct_effects_output_count(const ct_effects *fx) { return fx->out_len; }
const ct_out *ct_effects_output_at(const ct_effects *fx, size_t i) { return &fx->out[i]; }
const char *ct_effects_input_id(const ct_effects *fx) { return fx->input_id; }
int64_t ct_effects_clock_ms(const ct_effects *fx) { return fx->clock_ms; }

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

size_t ct_fx_lower_bound(const ct_effects *fx, const uint8_t *key, size_t key_len) {
    size_t lo = 0, hi = fx->ent_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const ct_fx_entry *e = &fx->ent[mid];
        if (key_cmp(fx->arena + e->key_off, e->key_len, key, key_len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int ct_fx_lookup(const ct_effects *fx, const uint8_t *key, size_t key_len, const uint8_t **val, size_t *val_len) {
    size_t i = ct_fx_lower_bound(fx, key, key_len);
    if (i == fx->ent_len) return -1;
    const ct_fx_entry *e = &fx->ent[i];
    if (key_cmp(fx->arena + e->key_off, e->key_len, key, key_len) != 0) return -1;
    if (e->is_delete) return 0;
    *val = fx->arena + e->val_off;
    *val_len = e->val_len;
    return 1;
}

static int grow_slow(void *pp, size_t *cap, size_t need, size_t elem, size_t first, ct_error *err);

/* Makes room for `need` elements of `elem` bytes in *p (capacity *cap),
 * doubling. Returns 0, or -1 with a FATAL error when memory runs out. */
static int grow_slow(void *pp, size_t *cap, size_t need, size_t elem, size_t first, ct_error *err) {
    size_t c = *cap ? *cap : first;
    while (c < need) c *= 2;
    void *old;
    memcpy(&old, pp, sizeof old);
    void *q = realloc(old, c * elem);
    if (!q) {
        CT_ERR(err, CT_ERR_FATAL, "effects: out of memory growing to %zu entries", c);
        return -1;
    }
    memcpy(pp, &q, sizeof q);
    *cap = c;
    return 0;
}

static inline int grow(void *pp, size_t *cap, size_t need, size_t elem, size_t first, ct_error *err) {
    return need <= *cap ? 0 : grow_slow(pp, cap, need, elem, first, err);
}

static int arena_add(ct_effects *fx, const uint8_t *b, size_t n, uint32_t *off, ct_error *err) {
    if (fx->arena_len + n > UINT32_MAX) {
        CT_ERR(err, CT_ERR_FATAL, "effects: arena beyond 4 GiB");
        return -1;
    }
    if (grow(&fx->arena, &fx->arena_cap, fx->arena_len + n, 1, 4096, err)) return -1;
    if (n) memcpy(fx->arena + fx->arena_len, b, n);
    *off = (uint32_t)fx->arena_len;
    fx->arena_len += n;
    return 0;
}

static int set(ct_effects *fx, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len, bool del,
               ct_error *err) {
    if (key_len > CT_KEY_BYTES_MAX || val_len > CT_VALUE_BYTES_MAX) {
        CT_ERR(err, CT_ERR_FATAL, "effects: key (%zu) or value (%zu) beyond its limit", key_len, val_len);
        return -1;
    }
    size_t i = ct_fx_lower_bound(fx, key, key_len);
    bool exists = i < fx->ent_len && key_cmp(fx->arena + fx->ent[i].key_off, fx->ent[i].key_len, key, key_len) == 0;
    uint32_t voff = 0;
    if (!del && arena_add(fx, val, val_len, &voff, err)) return -1;
    if (exists) {
        fx->ent[i].is_delete = del;
        fx->ent[i].val_off = voff;
        fx->ent[i].val_len = (uint16_t)(del ? 0 : val_len);
        return 0;
    }
    if (fx->ent_len >= CT_EFFECTS_MUTATIONS_MAX) {
        CT_ERR(err, CT_ERR_FATAL, "effects: more than %u mutations in one record", (unsigned)CT_EFFECTS_MUTATIONS_MAX);
        return -1;
    }
    uint32_t koff;
    if (arena_add(fx, key, key_len, &koff, err)) return -1;
    if (grow(&fx->ent, &fx->ent_cap, fx->ent_len + 1, sizeof *fx->ent, 64, err)) return -1;
    memmove(&fx->ent[i + 1], &fx->ent[i], (fx->ent_len - i) * sizeof *fx->ent);
    fx->ent[i] = (ct_fx_entry){.key_off = koff,
                               .key_len = (uint16_t)key_len,
                               .val_off = voff,
                               .val_len = (uint16_t)(del ? 0 : val_len),
                               .is_delete = del};
    fx->ent_len++;
    return 0;
}

int ct_fx_put(ct_effects *fx, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len, ct_error *err) {
    return set(fx, key, key_len, val, val_len, false, err);
}

int ct_fx_del(ct_effects *fx, const uint8_t *key, size_t key_len, ct_error *err) {
    return set(fx, key, key_len, NULL, 0, true, err);
}

ct_out *ct_fx_out(ct_effects *fx, ct_error *err) {
    if (fx->out_len >= CT_EFFECTS_OUTPUTS_MAX) {
        CT_ERR(err, CT_ERR_FATAL, "effects: more than %u outputs in one record", (unsigned)CT_EFFECTS_OUTPUTS_MAX);
        return NULL;
    }
    if (grow(&fx->out, &fx->out_cap, fx->out_len + 1, sizeof *fx->out, 16, err)) return NULL;
    ct_out *o = &fx->out[fx->out_len];
    memset(o, 0, sizeof *o);
    o->index = (uint32_t)fx->out_len;
    fx->out_len++;
    return o;
}
