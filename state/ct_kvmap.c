/* ct_kvmap: see ct_kvmap.h. The index is runtime/ct_hidx (open addressing,
 * capacity a power of two), kept under 3/4 full; entries are never removed
 * one by one (a delete is a tombstone value), only all at once by clear. */
#include "ct_kvmap.h"

#include <stdlib.h>
#include <string.h>

#include "ct_hidx.h"

typedef struct entry {
    uint32_t kn, vn;
    bool tomb;
    uint8_t data[]; /* key then value */
} entry;

struct ct_kvmap {
    ct_hidx ix; /* of entries */
    size_t bytes;
};

#define INITIAL_CAPACITY 1024

ct_kvmap *ct_kvmap_new(void) {
    ct_kvmap *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    if (ct_hidx_init(&m->ix, INITIAL_CAPACITY) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

void ct_kvmap_clear(ct_kvmap *m) {
    if (m->ix.count == 0) return;
    for (size_t i = 0; i < m->ix.cap; i++) free(m->ix.slots[i].item);
    ct_hidx_clear(&m->ix);
    m->bytes = 0;
}

void ct_kvmap_destroy(ct_kvmap *m) {
    if (!m) return;
    ct_kvmap_clear(m);
    ct_hidx_fini(&m->ix);
    free(m);
}

static bool entry_has_key(const void *item, const void *k, size_t kn) {
    const entry *e = item;
    return e->kn == kn && memcmp(e->data, k, kn) == 0;
}

int ct_kvmap_get(const ct_kvmap *m, const uint8_t *k, size_t kn, const uint8_t **v, size_t *vn, bool *tomb) {
    const entry *e = m->ix.slots[ct_hidx_find(&m->ix, ct_hidx_hash(k, kn), entry_has_key, k, kn)].item;
    if (!e) return 0;
    *v = e->data + e->kn;
    *vn = e->vn;
    *tomb = e->tomb;
    return 1;
}

static bool full(const ct_kvmap *m) { return (m->ix.count + 1) * 4 > m->ix.cap * 3; }

/* Puts e (hash h) in its slot, freeing the entry of the same key it
 * replaces. */
static void install(ct_kvmap *m, uint64_t h, entry *e) {
    size_t i = ct_hidx_find(&m->ix, h, entry_has_key, e->data, e->kn);
    entry *old = m->ix.slots[i].item;
    if (old) {
        m->bytes -= old->kn + old->vn;
        free(old);
    }
    ct_hidx_set(&m->ix, i, h, e);
    m->bytes += e->kn + e->vn;
}

int ct_kvmap_put(ct_kvmap *m, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn, bool tomb) {
    if (full(m) && ct_hidx_grow(&m->ix) != 0) return -1;
    entry *e = malloc(sizeof *e + kn + vn);
    if (!e) return -1;
    e->kn = (uint32_t)kn;
    e->vn = (uint32_t)vn;
    e->tomb = tomb;
    memcpy(e->data, k, kn);
    if (vn) memcpy(e->data + kn, v, vn);
    install(m, ct_hidx_hash(k, kn), e);
    return 0;
}

int ct_kvmap_move_all(ct_kvmap *dst, ct_kvmap *src) {
    int rc = 0;
    for (size_t i = 0; i < src->ix.cap; i++) {
        entry *e = src->ix.slots[i].item;
        if (!e) continue;
        if (rc != 0 || (full(dst) && ct_hidx_grow(&dst->ix) != 0)) {
            free(e);
            rc = -1;
            continue;
        }
        install(dst, src->ix.slots[i].hash, e);
    }
    ct_hidx_clear(&src->ix);
    src->bytes = 0;
    return rc;
}

size_t ct_kvmap_count(const ct_kvmap *m) { return m->ix.count; }
size_t ct_kvmap_bytes(const ct_kvmap *m) { return m->bytes; }
size_t ct_kvmap_capacity(const ct_kvmap *m) { return m->ix.cap; }

bool ct_kvmap_at(const ct_kvmap *m, size_t i, const uint8_t **k, size_t *kn, const uint8_t **v, size_t *vn,
                 bool *tomb) {
    const entry *e = m->ix.slots[i].item;
    if (!e) return false;
    *k = e->data;
    *kn = e->kn;
    *v = e->data + e->kn;
    *vn = e->vn;
    *tomb = e->tomb;
    return true;
}
