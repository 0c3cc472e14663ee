/* ct_memkv: skip list (order) + open-addressing hash (point reads).
 * See ct_memkv.h. */
#include "ct_memkv.h"

#include <stdlib.h>
#include <string.h>

#include "ct_domain_limits.h"

#define LEVELS 24

typedef struct node {
    uint8_t *val;
    uint16_t key_len, val_len, val_cap;
    uint8_t level;
    uint64_t hash;
    uint8_t *key;
    struct node *next[]; /* level entries */
} node;

struct ct_memkv {
    node *head; /* sentinel with LEVELS links */
    int level;  /* levels in use */
    uint64_t rng;
    node **tab; /* hash index, linear probing, NULL = empty */
    size_t tab_cap, count;
};

static uint64_t hash_key(const uint8_t *k, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < n; i++) h = (h ^ k[i]) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static int cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    size_t n = an < bn ? an : bn;
    int r = n ? memcmp(a, b, n) : 0;
    if (r) return r;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

ct_memkv *ct_memkv_new(void) {
    ct_memkv *kv = calloc(1, sizeof *kv);
    if (!kv) return NULL;
    kv->head = calloc(1, sizeof(node) + LEVELS * sizeof(node *));
    kv->tab_cap = 1024;
    kv->tab = calloc(kv->tab_cap, sizeof *kv->tab);
    if (!kv->head || !kv->tab) {
        free(kv->head);
        free(kv->tab);
        free(kv);
        return NULL;
    }
    kv->head->level = LEVELS;
    kv->level = 1;
    kv->rng = 0x9e3779b97f4a7c15ull;
    return kv;
}

void ct_memkv_destroy(ct_memkv *kv) {
    if (!kv) return;
    node *n = kv->head->next[0];
    while (n) {
        node *nx = n->next[0];
        free(n->val);
        free(n);
        n = nx;
    }
    free(kv->head);
    free(kv->tab);
    free(kv);
}

size_t ct_memkv_count(const ct_memkv *kv) { return kv->count; }

/* ---- hash index ------------------------------------------------------ */

static node *tab_find(const ct_memkv *kv, const uint8_t *k, size_t n, uint64_t h, size_t *slot) {
    size_t mask = kv->tab_cap - 1, i = h & mask;
    for (;;) {
        node *e = kv->tab[i];
        if (!e) {
            *slot = i;
            return NULL;
        }
        if (e->hash == h && e->key_len == n && memcmp(e->key, k, n) == 0) {
            *slot = i;
            return e;
        }
        i = (i + 1) & mask;
    }
}

static int tab_grow(ct_memkv *kv) {
    size_t cap = kv->tab_cap * 2;
    node **t = calloc(cap, sizeof *t);
    if (!t) return -1;
    for (size_t i = 0; i < kv->tab_cap; i++) {
        node *e = kv->tab[i];
        if (!e) continue;
        size_t j = e->hash & (cap - 1);
        while (t[j]) j = (j + 1) & (cap - 1);
        t[j] = e;
    }
    free(kv->tab);
    kv->tab = t;
    kv->tab_cap = cap;
    return 0;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void tab_remove(ct_memkv *kv, size_t i) {
    size_t mask = kv->tab_cap - 1, j = i;
    kv->tab[i] = NULL;
    for (;;) {
        j = (j + 1) & mask;
        node *e = kv->tab[j];
        if (!e) return;
        size_t home = e->hash & mask;
        /* move e to i if i lies cyclically in [home, j) */
        bool move = (j > i) ? (home <= i || home > j) : (home <= i && home > j);
        if (move) {
            kv->tab[i] = e;
            kv->tab[j] = NULL;
            i = j;
        }
    }
}

/* ---- skip list ------------------------------------------------------- */

static int random_level(ct_memkv *kv) {
    uint64_t x = kv->rng; /* xorshift64: fixed seed, deterministic */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    kv->rng = x;
    int lvl = 1;
    while (lvl < LEVELS && (x & 3) == 0) {
        lvl++;
        x >>= 2;
    }
    return lvl;
}

/* Fills update[] with the last node < key at each level; returns the first
 * node >= key (or NULL). */
static node *sl_find(const ct_memkv *kv, const uint8_t *k, size_t n, node **update) {
    node *x = kv->head;
    for (int l = kv->level - 1; l >= 0; l--) {
        while (x->next[l] && cmp(x->next[l]->key, x->next[l]->key_len, k, n) < 0) x = x->next[l];
        if (update) update[l] = x;
    }
    return x->next[0];
}

static int set_val(node *e, const uint8_t *v, size_t n) {
    if (n > e->val_cap || !e->val) {
        size_t cap = n ? n : 1;
        uint8_t *p = realloc(e->val, cap);
        if (!p) return -1;
        e->val = p;
        e->val_cap = (uint16_t)cap;
    }
    if (n) memcpy(e->val, v, n);
    e->val_len = (uint16_t)n;
    return 0;
}

int ct_memkv_put(ct_memkv *kv, const uint8_t *k, size_t n, const uint8_t *v, size_t vn, ct_error *err) {
    if (n > CT_KEY_BYTES_MAX + 1 || vn > CT_VALUE_BYTES_MAX) {
        CT_ERR(err, CT_ERR_FATAL, "memkv: key (%zu) or value (%zu) beyond its limit", n, vn);
        return -1;
    }
    uint64_t h = hash_key(k, n);
    size_t slot;
    node *e = tab_find(kv, k, n, h, &slot);
    if (e) {
        if (set_val(e, v, vn)) goto oom;
        return 0;
    }
    if ((kv->count + 1) * 2 > kv->tab_cap) {
        if (tab_grow(kv)) goto oom;
        tab_find(kv, k, n, h, &slot);
    }
    node *update[LEVELS];
    sl_find(kv, k, n, update);
    int lvl = random_level(kv);
    e = malloc(sizeof(node) + (size_t)lvl * sizeof(node *) + n);
    if (!e) goto oom;
    e->key = (uint8_t *)&e->next[lvl];
    memcpy(e->key, k, n);
    e->key_len = (uint16_t)n;
    e->val = NULL;
    e->val_cap = 0;
    e->level = (uint8_t)lvl;
    e->hash = h;
    if (set_val(e, v, vn)) {
        free(e);
        goto oom;
    }
    for (int l = kv->level; l < lvl; l++) update[l] = kv->head;
    if (lvl > kv->level) kv->level = lvl;
    for (int l = 0; l < lvl; l++) {
        e->next[l] = update[l]->next[l];
        update[l]->next[l] = e;
    }
    kv->tab[slot] = e;
    kv->count++;
    return 0;
oom:
    CT_ERR(err, CT_ERR_FATAL, "memkv: out of memory");
    return -1;
}

void ct_memkv_del(ct_memkv *kv, const uint8_t *k, size_t n) {
    uint64_t h = hash_key(k, n);
    size_t slot;
    node *e = tab_find(kv, k, n, h, &slot);
    if (!e) return;
    tab_remove(kv, slot);
    node *update[LEVELS];
    sl_find(kv, k, n, update);
    for (int l = 0; l < e->level; l++)
        if (update[l]->next[l] == e) update[l]->next[l] = e->next[l];
    while (kv->level > 1 && !kv->head->next[kv->level - 1]) kv->level--;
    free(e->val);
    free(e);
    kv->count--;
}

int ct_memkv_apply(ct_memkv *kv, const ct_effects *fx, ct_error *err) {
    size_t n = ct_effects_mutation_count(fx);
    for (size_t i = 0; i < n; i++) {
        ct_mutation m;
        ct_effects_mutation_at(fx, i, &m);
        if (m.is_delete)
            ct_memkv_del(kv, m.key, m.key_len);
        else if (ct_memkv_put(kv, m.key, m.key_len, m.val, m.val_len, err))
            return -1;
    }
    return 0;
}

/* ---- port ------------------------------------------------------------ */

static int copy_out(const uint8_t *src, size_t n, uint8_t *dst, size_t cap, size_t *len, ct_error *err) {
    if (n > cap) {
        CT_ERR(err, CT_ERR_FATAL, "memkv: %zu bytes do not fit a %zu-byte buffer", n, cap);
        return -1;
    }
    if (n) memcpy(dst, src, n);
    *len = n;
    return 0;
}

static int port_get(void *ud, const uint8_t *k, size_t n, uint8_t *v, size_t cap, size_t *vn, ct_error *err) {
    ct_memkv *kv = ud;
    size_t slot;
    node *e = tab_find(kv, k, n, hash_key(k, n), &slot);
    if (!e) return 0;
    return copy_out(e->val, e->val_len, v, cap, vn, err) ? -1 : 1;
}

static int port_seek(void *ud, const uint8_t *prefix, size_t pn, const uint8_t *from, size_t fn, uint8_t *k,
                     size_t kcap, size_t *kn, uint8_t *v, size_t vcap, size_t *vn, ct_error *err) {
    ct_memkv *kv = ud;
    node *e = sl_find(kv, from, fn, NULL);
    if (!e || e->key_len < pn || memcmp(e->key, prefix, pn) != 0) return 0;
    if (copy_out(e->key, e->key_len, k, kcap, kn, err) || copy_out(e->val, e->val_len, v, vcap, vn, err))
        return -1;
    return 1;
}

ct_kv_port ct_memkv_port(ct_memkv *kv) { return (ct_kv_port){.ud = kv, .get = port_get, .seek = port_seek}; }

int ct_memkv_foreach(const ct_memkv *kv, ct_memkv_visit_fn fn, void *ud) {
    for (node *e = kv->head->next[0]; e; e = e->next[0]) {
        int r = fn(ud, e->key, e->key_len, e->val, e->val_len);
        if (r) return r;
    }
    return 0;
}

bool ct_memkv_equal(const ct_memkv *a, const ct_memkv *b, bool (*skip)(const uint8_t *key, size_t key_len)) {
    node *x = a->head->next[0], *y = b->head->next[0];
    for (;;) {
        while (x && skip && skip(x->key, x->key_len)) x = x->next[0];
        while (y && skip && skip(y->key, y->key_len)) y = y->next[0];
        if (!x || !y) return !x && !y;
        if (cmp(x->key, x->key_len, y->key, y->key_len) != 0) return false;
        if (cmp(x->val, x->val_len, y->val, y->val_len) != 0) return false;
        x = x->next[0];
        y = y->next[0];
    }
}
