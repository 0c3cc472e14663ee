/*
 * ct_memkv: see ct_memkv.h.
 *
 * A hash index (runtime/ct_hidx: open addressing, the hash kept in the
 * slot, kept at most half full) serves point reads and writes. Order is
 * kept per first key byte (the state layout's tag: 'D' deadlines, 'T'
 * tokens, ...) in a skip list that exists only for tags that have been
 * seeked: the first seek within a tag links that tag's keys, and from then
 * on puts and deletes keep its list up to date. The core seeks only the deadline index, so the large tags
 * (tokens, reservations, seats) never pay for order; a full ordered walk
 * (foreach, equal) sorts a snapshot instead.
 *
 * Values live inline in the node when they fit the room reserved at
 * insert (rounded up), else in a separate buffer.
 */
#include "ct_memkv.h"

#include <stdlib.h>
#include <string.h>

#include "ct_domain_limits.h"
#include "ct_hidx.h"

#define LEVELS 24
#define TAGS 256

typedef struct node {
    uint8_t *val; /* points at inline room or at a heap buffer */
    uint16_t key_len, val_len, val_cap;
    uint8_t level;
    bool val_heap;
    uint8_t *key;
    struct node *next[]; /* level links, then the key bytes, then inline value room */
} node;

typedef struct order {
    node *head; /* sentinel with LEVELS links; NULL while the tag is unordered */
    int level;
} order;

struct ct_memkv {
    ct_hidx ix; /* of nodes */
    uint64_t rng;
    order ord[TAGS];
};

static int cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    size_t n = an < bn ? an : bn;
    int r = n ? memcmp(a, b, n) : 0;
    if (r) return r;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

ct_memkv *ct_memkv_new(void) {
    ct_memkv *kv = calloc(1, sizeof *kv);
    if (!kv) return NULL;
    if (ct_hidx_init(&kv->ix, 1024) != 0) {
        free(kv);
        return NULL;
    }
    kv->rng = 0x9e3779b97f4a7c15ull;
    return kv;
}

static void free_node(node *e) {
    if (e->val_heap) free(e->val);
    free(e);
}

void ct_memkv_destroy(ct_memkv *kv) {
    if (!kv) return;
    for (size_t i = 0; i < kv->ix.cap; i++)
        if (kv->ix.slots[i].item) free_node(kv->ix.slots[i].item);
    for (int t = 0; t < TAGS; t++) free(kv->ord[t].head);
    ct_hidx_fini(&kv->ix);
    free(kv);
}

size_t ct_memkv_count(const ct_memkv *kv) { return kv->ix.count; }

/* ---- hash index ------------------------------------------------------ */

static bool node_has_key(const void *item, const void *k, size_t n) {
    const node *e = item;
    return e->key_len == n && memcmp(e->key, k, n) == 0;
}

/* The node of key k (hash h) or NULL; *at gets its slot, or the empty slot
 * where it would go. */
static node *tab_find(const ct_memkv *kv, const uint8_t *k, size_t n, uint64_t h, size_t *at) {
    *at = ct_hidx_find(&kv->ix, h, node_has_key, k, n);
    return kv->ix.slots[*at].item;
}

/* ---- per-tag skip lists ------------------------------------------------ */

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

/* The first node >= key in the tag's list; update[] (if given) gets the
 * last node < key at each level. */
static node *sl_find(order *o, const uint8_t *k, size_t n, node **update) {
    node *x = o->head;
    for (int l = o->level - 1; l >= 0; l--) {
        while (x->next[l] && cmp(x->next[l]->key, x->next[l]->key_len, k, n) < 0) x = x->next[l];
        if (update) update[l] = x;
    }
    return x->next[0];
}

static void sl_link(order *o, node *e) {
    node *update[LEVELS];
    sl_find(o, e->key, e->key_len, update);
    for (int l = o->level; l < e->level; l++) update[l] = o->head;
    if (e->level > o->level) o->level = e->level;
    for (int l = 0; l < e->level; l++) {
        e->next[l] = update[l]->next[l];
        update[l]->next[l] = e;
    }
}

static void sl_unlink(order *o, node *e) {
    node *update[LEVELS];
    sl_find(o, e->key, e->key_len, update);
    for (int l = 0; l < e->level && l < o->level; l++)
        if (update[l]->next[l] == e) update[l]->next[l] = e->next[l];
    while (o->level > 1 && !o->head->next[o->level - 1]) o->level--;
}

/* Orders a tag on its first seek: links every key it holds. */
static int order_tag(ct_memkv *kv, uint8_t tag) {
    order *o = &kv->ord[tag];
    if (o->head) return 0;
    o->head = calloc(1, sizeof(node) + LEVELS * sizeof(node *));
    if (!o->head) return -1;
    o->head->level = LEVELS;
    o->level = 1;
    for (size_t i = 0; i < kv->ix.cap; i++) {
        node *e = kv->ix.slots[i].item;
        if (e && e->key[0] == tag) sl_link(o, e);
    }
    return 0;
}

/* ---- put / del ------------------------------------------------------- */

static int set_val(node *e, const uint8_t *v, size_t n) {
    if (n > e->val_cap) {
        uint8_t *p = malloc(n);
        if (!p) return -1;
        if (e->val_heap) free(e->val);
        e->val = p;
        e->val_heap = true;
        e->val_cap = (uint16_t)n;
    }
    if (n) memcpy(e->val, v, n);
    e->val_len = (uint16_t)n;
    return 0;
}

int ct_memkv_put(ct_memkv *kv, const uint8_t *k, size_t n, const uint8_t *v, size_t vn, ct_error *err) {
    if (n == 0 || n > CT_KEY_BYTES_MAX + 1 || vn > CT_VALUE_BYTES_MAX) {
        CT_ERR(err, CT_ERR_FATAL, "memkv: key (%zu) or value (%zu) bytes out of range", n, vn);
        return -1;
    }
    uint64_t h = ct_hidx_hash(k, n);
    size_t at;
    node *e = tab_find(kv, k, n, h, &at);
    if (e) {
        if (set_val(e, v, vn)) goto oom;
        return 0;
    }
    if ((kv->ix.count + 1) * 2 > kv->ix.cap) {
        if (ct_hidx_grow(&kv->ix)) goto oom;
        tab_find(kv, k, n, h, &at);
    }
    int lvl = random_level(kv);
    size_t room = (vn + 15) & ~(size_t)15; /* values rarely grow; when they do, they move out */
    e = malloc(sizeof(node) + (size_t)lvl * sizeof(node *) + n + room);
    if (!e) goto oom;
    e->key = (uint8_t *)&e->next[lvl];
    memcpy(e->key, k, n);
    e->key_len = (uint16_t)n;
    e->val = e->key + n;
    e->val_cap = (uint16_t)room;
    e->val_heap = false;
    e->level = (uint8_t)lvl;
    set_val(e, v, vn); /* fits: cannot fail */
    ct_hidx_set(&kv->ix, at, h, e);
    if (kv->ord[k[0]].head) sl_link(&kv->ord[k[0]], e);
    return 0;
oom:
    CT_ERR(err, CT_ERR_FATAL, "memkv: out of memory");
    return -1;
}

void ct_memkv_del(ct_memkv *kv, const uint8_t *k, size_t n) {
    if (n == 0) return;
    size_t at;
    node *e = tab_find(kv, k, n, ct_hidx_hash(k, n), &at);
    if (!e) return;
    ct_hidx_remove(&kv->ix, at);
    if (kv->ord[k[0]].head) sl_unlink(&kv->ord[k[0]], e);
    free_node(e);
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
    size_t at;
    node *e = tab_find(kv, k, n, ct_hidx_hash(k, n), &at);
    if (!e) return 0;
    return copy_out(e->val, e->val_len, v, cap, vn, err) ? -1 : 1;
}

static int port_seek(void *ud, const uint8_t *prefix, size_t pn, const uint8_t *from, size_t fn, uint8_t *k,
                     size_t kcap, size_t *kn, uint8_t *v, size_t vcap, size_t *vn, ct_error *err) {
    ct_memkv *kv = ud;
    if (pn == 0 || fn == 0 || from[0] != prefix[0]) {
        /* every key of the state layout has a tag; a seek spans one */
        CT_ERR(err, CT_ERR_FATAL, "memkv: seek needs a non-empty prefix that from starts with");
        return -1;
    }
    if (order_tag(kv, prefix[0])) {
        CT_ERR(err, CT_ERR_FATAL, "memkv: out of memory");
        return -1;
    }
    node *e = sl_find(&kv->ord[prefix[0]], from, fn, NULL);
    if (!e || e->key_len < pn || memcmp(e->key, prefix, pn) != 0) return 0;
    if (copy_out(e->key, e->key_len, k, kcap, kn, err) || copy_out(e->val, e->val_len, v, vcap, vn, err)) return -1;
    return 1;
}

ct_kv_port ct_memkv_port(ct_memkv *kv) { return (ct_kv_port){.ud = kv, .get = port_get, .seek = port_seek}; }

/* ---- ordered walks over a sorted snapshot ------------------------------- */

static int node_cmp(const void *a, const void *b) {
    const node *x = *(node *const *)a, *y = *(node *const *)b;
    return cmp(x->key, x->key_len, y->key, y->key_len);
}

/* A sorted array of all nodes (caller frees), or NULL on OOM / empty. */
static node **snapshot(const ct_memkv *kv) {
    size_t count = kv->ix.count;
    node **all = malloc((count ? count : 1) * sizeof *all);
    if (!all) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < kv->ix.cap; i++)
        if (kv->ix.slots[i].item) all[n++] = kv->ix.slots[i].item;
    qsort(all, n, sizeof *all, node_cmp);
    return all;
}

int ct_memkv_foreach(const ct_memkv *kv, ct_memkv_visit_fn fn, void *ud) {
    node **all = snapshot(kv);
    if (!all) return -1;
    int r = 0;
    for (size_t i = 0; i < kv->ix.count && !r; i++)
        r = fn(ud, all[i]->key, all[i]->key_len, all[i]->val, all[i]->val_len);
    free(all);
    return r;
}

bool ct_memkv_equal(const ct_memkv *a, const ct_memkv *b, bool (*skip)(const uint8_t *key, size_t key_len)) {
    node **x = snapshot(a), **y = snapshot(b);
    bool eq = x && y;
    size_t i = 0, j = 0;
    while (eq) {
        while (i < a->ix.count && skip && skip(x[i]->key, x[i]->key_len)) i++;
        while (j < b->ix.count && skip && skip(y[j]->key, y[j]->key_len)) j++;
        if (i == a->ix.count || j == b->ix.count) {
            eq = i == a->ix.count && j == b->ix.count;
            break;
        }
        eq = cmp(x[i]->key, x[i]->key_len, y[j]->key, y[j]->key_len) == 0 &&
             cmp(x[i]->val, x[i]->val_len, y[j]->val, y[j]->val_len) == 0;
        i++, j++;
    }
    free(x);
    free(y);
    return eq;
}
