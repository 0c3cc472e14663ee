/* ct_kvmap: see ct_kvmap.h. Linear probing, capacity a power of two, load
 * kept under 3/4; entries are never removed one by one (a delete is a
 * tombstone value), only all at once by clear. */
#include "ct_kvmap.h"

#include <stdlib.h>
#include <string.h>

#include "ct_hash.h"

typedef struct entry {
    uint32_t kn, vn;
    bool tomb;
    uint8_t data[]; /* key then value */
} entry;

typedef struct slot {
    uint64_t hash;
    entry *e;
} slot;

struct ct_kvmap {
    slot *slots;
    size_t cap, count, bytes;
};

#define INITIAL_CAPACITY 1024

static uint64_t hash_bytes(const uint8_t *k, size_t n) { /* FNV-1a, then a final mix */
    uint64_t h = ct_hash64(k, n);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

ct_kvmap *ct_kvmap_new(void) {
    ct_kvmap *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->cap = INITIAL_CAPACITY;
    if (!(m->slots = calloc(m->cap, sizeof *m->slots))) {
        free(m);
        return NULL;
    }
    return m;
}

void ct_kvmap_clear(ct_kvmap *m) {
    if (m->count == 0) return;
    for (size_t i = 0; i < m->cap; i++) free(m->slots[i].e);
    memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->count = m->bytes = 0;
}

void ct_kvmap_destroy(ct_kvmap *m) {
    if (!m) return;
    ct_kvmap_clear(m);
    free(m->slots);
    free(m);
}

static size_t find(const ct_kvmap *m, uint64_t h, const uint8_t *k, size_t kn) {
    size_t i = h & (m->cap - 1);
    while (m->slots[i].e) {
        const entry *e = m->slots[i].e;
        if (m->slots[i].hash == h && e->kn == kn && memcmp(e->data, k, kn) == 0) return i;
        i = (i + 1) & (m->cap - 1);
    }
    return i; /* the empty slot where it would go */
}

int ct_kvmap_get(const ct_kvmap *m, const uint8_t *k, size_t kn, const uint8_t **v, size_t *vn, bool *tomb) {
    size_t i = find(m, hash_bytes(k, kn), k, kn);
    const entry *e = m->slots[i].e;
    if (!e) return 0;
    *v = e->data + e->kn;
    *vn = e->vn;
    *tomb = e->tomb;
    return 1;
}

static int grow(ct_kvmap *m) {
    size_t cap = m->cap * 2;
    slot *s = calloc(cap, sizeof *s);
    if (!s) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].e) continue;
        size_t j = m->slots[i].hash & (cap - 1);
        while (s[j].e) j = (j + 1) & (cap - 1);
        s[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = s;
    m->cap = cap;
    return 0;
}

/* Puts e in slot i (found by find for hash h), freeing what was there. */
static void install(ct_kvmap *m, size_t i, uint64_t h, entry *e) {
    entry *old = m->slots[i].e;
    if (old) {
        m->bytes -= old->kn + old->vn;
        free(old);
    } else {
        m->count++;
    }
    m->slots[i].hash = h;
    m->slots[i].e = e;
    m->bytes += e->kn + e->vn;
}

int ct_kvmap_put(ct_kvmap *m, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn, bool tomb) {
    if ((m->count + 1) * 4 > m->cap * 3 && grow(m) != 0) return -1;
    uint64_t h = hash_bytes(k, kn);
    size_t i = find(m, h, k, kn);
    entry *e = malloc(sizeof *e + kn + vn);
    if (!e) return -1;
    e->kn = (uint32_t)kn;
    e->vn = (uint32_t)vn;
    e->tomb = tomb;
    memcpy(e->data, k, kn);
    if (vn) memcpy(e->data + kn, v, vn);
    install(m, i, h, e);
    return 0;
}

int ct_kvmap_move_all(ct_kvmap *dst, ct_kvmap *src) {
    int rc = 0;
    for (size_t i = 0; i < src->cap; i++) {
        entry *e = src->slots[i].e;
        if (!e) continue;
        src->slots[i].e = NULL;
        if (rc != 0 || ((dst->count + 1) * 4 > dst->cap * 3 && grow(dst) != 0)) {
            free(e);
            rc = -1;
            continue;
        }
        uint64_t h = src->slots[i].hash;
        install(dst, find(dst, h, e->data, e->kn), h, e);
    }
    src->count = src->bytes = 0;
    return rc;
}

size_t ct_kvmap_count(const ct_kvmap *m) { return m->count; }
size_t ct_kvmap_bytes(const ct_kvmap *m) { return m->bytes; }
size_t ct_kvmap_capacity(const ct_kvmap *m) { return m->cap; }

bool ct_kvmap_at(const ct_kvmap *m, size_t i, const uint8_t **k, size_t *kn, const uint8_t **v, size_t *vn,
                 bool *tomb) {
    const entry *e = m->slots[i].e;
    if (!e) return false;
    *k = e->data;
    *kn = e->kn;
    *v = e->data + e->kn;
    *vn = e->vn;
    *tomb = e->tomb;
    return true;
}
