/* ct_store: see ct_store.h. */
#include "ct_store.h"

#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>

#include "ct_kvmap.h"

/* Committed values kept in memory (the task is the store's only writer, so
 * the cache never goes stale); past this many bytes it is emptied. */
#define CACHE_BYTES_MAX (64u << 20)
/* Prefixes with a sorted view of the pending keys, for ordered reads. */
#define VIEWS_MAX 4
#define VIEW_PREFIX_MAX 16
/* Longest position a view's iterator remembers: a domain key and the zero
 * byte of its successor. */
#define VIEW_POS_MAX (CT_KEY_BYTES_MAX + 1)

/* The pending keys under one prefix, sorted, built on the first ordered
 * read of that prefix in a batch and kept sorted as the batch grows. */
typedef struct view {
    bool built;
    uint8_t prefix[VIEW_PREFIX_MAX];
    size_t prefix_len;
    uint8_t **keys; /* each: 4-byte length, then the key */
    size_t n, cap;
    /* The committed keys under this prefix, read through an iterator of
     * their own. The database changes only at commit, so when the
     * iterator is known to stand at the first committed key >= lo, a seek
     * to any from >= lo that is <= that key needs no RocksDB seek: the
     * deadline scan asks for "the first deadline after now" once per
     * record, and now moves less often than the next deadline. */
    rocksdb_iterator_t *iter;
    bool positioned;
    uint8_t lo[VIEW_POS_MAX];
    size_t lo_len;
} view;

struct ct_store {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *table;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_writebatch_t *batch; /* what commit writes */
    ct_kvmap *pending;           /* the batch, readable: value or tombstone per key */
    ct_kvmap *cache;             /* committed values and known-absent keys */
    view views[VIEWS_MAX];       /* their iterators are created lazily, dropped at commit */
    int64_t batch_max_offset;    /* highest offset marked in this batch, -1 none */
    int64_t batch_max_logged;    /* latest log time marked in this batch, 0 none */
    int64_t id_window;           /* applied-id retention: offsets ... */
    int64_t id_keep_ms;          /* ... and log time (0: forever, -1: offsets only) */
    struct sorted_entry *sorted; /* commit's scratch: the pending entries by key */
    size_t sorted_cap;
};

static const char KEY_OFFSET[] = "\0offset";
#define KEY_OFFSET_LEN (sizeof KEY_OFFSET - 1)
#define ID_PREFIX "\0id/"
#define ID_PREFIX_LEN 4
#define IO_PREFIX "\0io/"
#define IO_PREFIX_LEN 4

/* RocksDB reports errors as malloc'd strings: turn them into ct_error at once. */
static int rocks_failed(char *rerr, const char *what, ct_error *err) {
    if (!rerr) return 0;
    CT_ERR(err, CT_ERR_FATAL, "RocksDB: %s failed", what);
    ct_error_detail(err, "%s", rerr);
    rocksdb_free(rerr);
    return 1;
}

static void put_be64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
    return v;
}

ct_store *ct_store_open(const char *dir, ct_error *err) {
    ct_store *st = calloc(1, sizeof *st);
    if (!st) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return NULL;
    }
    st->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(st->opts, 1);
    /* Small per-partition stores: a modest write buffer, one background job. */
    rocksdb_options_set_write_buffer_size(st->opts, 16 << 20);
    rocksdb_options_set_max_background_jobs(st->opts, 1);
    /* Many reads are of keys that do not exist (a new id, a free seat):
     * bloom filters answer those without walking the memtable or files. */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(st->opts, 0.1);
    rocksdb_options_set_memtable_whole_key_filtering(st->opts, 1);
    st->table = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_filter_policy(st->table, rocksdb_filterpolicy_create_bloom(10));
    rocksdb_options_set_block_based_table_factory(st->opts, st->table);
    char *rerr = NULL;
    st->db = rocksdb_open(st->opts, dir, &rerr);
    if (rocks_failed(rerr, "open", err)) {
        ct_error_detail(err, "%s: %s", dir, err->detail);
        ct_store_close(st);
        return NULL;
    }
    st->ropts = rocksdb_readoptions_create();
    st->wopts = rocksdb_writeoptions_create();
    /* Not synced. The Kafka transaction is committed before this write,
     * and a store behind Kafka's committed offset is repaired by restore
     * mode (the records in between replayed, producing nothing), so an
     * fsync could only shorten that replay after the machine itself
     * crashed: a process crash loses nothing the write handed to the OS.
     * It was not cheap: 10-13 ms a batch on this 2-core host (store_ms),
     * between a commit and the next batch, in every hop's latency. */
    rocksdb_writeoptions_set_sync(st->wopts, 0);
    st->batch = rocksdb_writebatch_create();
    st->pending = ct_kvmap_new();
    st->cache = ct_kvmap_new();
    if (!st->pending || !st->cache) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        ct_store_close(st);
        return NULL;
    }
    st->batch_max_offset = -1;
    st->id_window = CT_STORE_APPLIED_IDS_WINDOW;
    st->id_keep_ms = -1;
    return st;
}

void ct_store_set_id_retention(ct_store *st, int64_t window, int64_t keep_ms) {
    st->id_window = window > 0 ? window : 1;
    st->id_keep_ms = keep_ms > 0 ? keep_ms : 0;
}

static void drop_iterator(ct_store *st) {
    for (int i = 0; i < VIEWS_MAX; i++) {
        view *v = &st->views[i];
        if (v->iter) rocksdb_iter_destroy(v->iter);
        v->iter = NULL;
        v->positioned = false;
    }
}

static void views_reset(ct_store *st) {
    drop_iterator(st);
    for (int i = 0; i < VIEWS_MAX; i++) {
        view *v = &st->views[i];
        for (size_t k = 0; k < v->n; k++) free(v->keys[k]);
        v->n = 0;
        v->built = false;
    }
}

void ct_store_close(ct_store *st) {
    if (!st) return;
    views_reset(st);
    for (int i = 0; i < VIEWS_MAX; i++) free(st->views[i].keys);
    free(st->sorted);
    ct_kvmap_destroy(st->pending);
    ct_kvmap_destroy(st->cache);
    if (st->batch) rocksdb_writebatch_destroy(st->batch);
    if (st->wopts) rocksdb_writeoptions_destroy(st->wopts);
    if (st->ropts) rocksdb_readoptions_destroy(st->ropts);
    if (st->db) rocksdb_close(st->db);
    if (st->opts) rocksdb_options_destroy(st->opts);
    if (st->table) rocksdb_block_based_options_destroy(st->table);
    free(st);
}

int ct_store_wipe(const char *dir, ct_error *err) {
    rocksdb_options_t *o = rocksdb_options_create();
    char *rerr = NULL;
    rocksdb_destroy_db(o, dir, &rerr);
    rocksdb_options_destroy(o);
    return rocks_failed(rerr, "destroy", err) ? -1 : 0;
}

/* Point read: the pending batch, then the cache, then RocksDB (whose
 * answer, found or absent, is cached). Returns 1 with *v (borrowed until
 * the next store call), 0 absent, -1 error. */
static int lookup(ct_store *st, const uint8_t *key, size_t key_len, const uint8_t **v, size_t *vn, ct_error *err) {
    bool tomb = false;
    if (ct_kvmap_get(st->pending, key, key_len, v, vn, &tomb) || ct_kvmap_get(st->cache, key, key_len, v, vn, &tomb))
        return tomb ? 0 : 1;
    char *rerr = NULL;
    size_t len = 0;
    char *got = rocksdb_get(st->db, st->ropts, (const char *)key, key_len, &len, &rerr);
    if (rocks_failed(rerr, "get", err)) return -1;
    if (ct_kvmap_bytes(st->cache) > CACHE_BYTES_MAX) ct_kvmap_clear(st->cache);
    int rc = ct_kvmap_put(st->cache, key, key_len, (const uint8_t *)got, got ? len : 0, got == NULL);
    rocksdb_free(got);
    if (rc != 0) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return -1;
    }
    return ct_kvmap_get(st->cache, key, key_len, v, vn, &tomb) && !tomb ? 1 : 0;
}

int ct_store_applied_offset(ct_store *st, int64_t *offset, ct_error *err) {
    char *rerr = NULL;
    size_t len = 0;
    char *v = rocksdb_get(st->db, st->ropts, KEY_OFFSET, KEY_OFFSET_LEN, &len, &rerr);
    if (rocks_failed(rerr, "get offset", err)) return -1;
    if (!v) {
        *offset = -1;
        return 0;
    }
    int ok = len == 8;
    if (ok) *offset = (int64_t)get_be64((const uint8_t *)v);
    rocksdb_free(v);
    if (!ok) {
        CT_ERR(err, CT_ERR_FATAL, "store: applied offset has %zu bytes, not 8", len);
        return -1;
    }
    return 0;
}

static int id_key(const char *record_id, uint8_t *key, size_t *key_len, ct_error *err) {
    size_t n = strlen(record_id);
    if (n == 0 || n > CT_STORE_RECORD_ID_MAX) {
        CT_ERR(err, CT_ERR_PERMANENT, "store: record id of %zu bytes (1..%d)", n, CT_STORE_RECORD_ID_MAX);
        return -1;
    }
    memcpy(key, ID_PREFIX, ID_PREFIX_LEN);
    memcpy(key + ID_PREFIX_LEN, record_id, n);
    *key_len = ID_PREFIX_LEN + n;
    return 0;
}

int ct_store_is_applied(ct_store *st, const char *record_id, bool *applied, ct_error *err) {
    uint8_t key[ID_PREFIX_LEN + CT_STORE_RECORD_ID_MAX];
    size_t key_len;
    if (id_key(record_id, key, &key_len, err) != 0) return -1;
    const uint8_t *v;
    size_t len;
    int rc = lookup(st, key, key_len, &v, &len, err);
    if (rc < 0) return -1;
    *applied = rc == 1;
    return 0;
}

static int port_get(void *ud, const uint8_t *key, size_t key_len, uint8_t *val, size_t val_cap, size_t *val_len,
                    ct_error *err) {
    ct_store *st = ud;
    const uint8_t *v;
    size_t len = 0;
    int rc = lookup(st, key, key_len, &v, &len, err);
    if (rc != 1) return rc;
    if (len > val_cap) {
        CT_ERR(err, CT_ERR_FATAL, "store: value of %zu bytes exceeds the core's %zu", len, val_cap);
        return -1;
    }
    memcpy(val, v, len);
    *val_len = len;
    return 1;
}

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an < bn ? -1 : an > bn);
}

static size_t vkey_len(const uint8_t *vk) {
    uint32_t n;
    memcpy(&n, vk, 4);
    return n;
}

/* First index in the view whose key is >= (k, kn). */
static size_t view_lower_bound(const view *v, const uint8_t *k, size_t kn) {
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (key_cmp(v->keys[mid] + 4, vkey_len(v->keys[mid]), k, kn) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static int view_insert(view *v, const uint8_t *k, size_t kn) {
    size_t at = view_lower_bound(v, k, kn);
    if (at < v->n && key_cmp(v->keys[at] + 4, vkey_len(v->keys[at]), k, kn) == 0) return 0;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        uint8_t **keys = realloc(v->keys, cap * sizeof *keys);
        if (!keys) return -1;
        v->keys = keys;
        v->cap = cap;
    }
    uint8_t *copy = malloc(4 + kn);
    if (!copy) return -1;
    uint32_t n32 = (uint32_t)kn;
    memcpy(copy, &n32, 4);
    memcpy(copy + 4, k, kn);
    memmove(v->keys + at + 1, v->keys + at, (v->n - at) * sizeof *v->keys);
    v->keys[at] = copy;
    v->n++;
    return 0;
}

/* The sorted view of pending keys under prefix, built on first use. */
static view *view_for(ct_store *st, const uint8_t *prefix, size_t pn, ct_error *err) {
    view *free_slot = NULL;
    for (int i = 0; i < VIEWS_MAX; i++) {
        view *v = &st->views[i];
        if (v->built && v->prefix_len == pn && memcmp(v->prefix, prefix, pn) == 0) return v;
        if (!v->built && !free_slot) free_slot = v;
    }
    if (!free_slot || pn > VIEW_PREFIX_MAX) {
        CT_ERR(err, CT_ERR_FATAL, "store: too many or too long ordered-read prefixes");
        return NULL;
    }
    view *v = free_slot;
    memcpy(v->prefix, prefix, pn);
    v->prefix_len = pn;
    v->built = true;
    for (size_t i = 0; i < ct_kvmap_capacity(st->pending); i++) {
        const uint8_t *k, *val;
        size_t kn, vn;
        bool tomb;
        if (ct_kvmap_at(st->pending, i, &k, &kn, &val, &vn, &tomb) && kn >= pn && memcmp(k, prefix, pn) == 0 &&
            view_insert(v, k, kn) != 0) {
            CT_ERR(err, CT_ERR_FATAL, "out of memory");
            return NULL;
        }
    }
    return v;
}

static int copy_out(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, uint8_t *key, size_t key_cap,
                    size_t *key_len, uint8_t *val, size_t val_cap, size_t *val_len, ct_error *err) {
    if (kl > key_cap || vl > val_cap) {
        CT_ERR(err, CT_ERR_FATAL, "store: entry of %zu/%zu bytes exceeds the core's buffers", kl, vl);
        return -1;
    }
    memcpy(key, k, kl);
    memcpy(val, v, vl);
    *key_len = kl;
    *val_len = vl;
    return 1;
}

/* The view's iterator at the first committed key >= from, seeking only
 * when its remembered position does not answer already. */
static rocksdb_iterator_t *view_iter_at(ct_store *st, view *v, const uint8_t *from, size_t from_len) {
    if (!v->iter) {
        v->iter = rocksdb_create_iterator(st->db, st->ropts);
        v->positioned = false;
    }
    bool reuse = v->positioned && key_cmp(from, from_len, v->lo, v->lo_len) >= 0;
    if (reuse && rocksdb_iter_valid(v->iter)) {
        size_t kl = 0;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(v->iter, &kl);
        reuse = key_cmp(k, kl, from, from_len) >= 0;
    }
    if (!reuse) {
        rocksdb_iter_seek(v->iter, (const char *)from, from_len);
        v->positioned = from_len <= sizeof v->lo;
        if (v->positioned) memcpy(v->lo, from, from_len);
        v->lo_len = from_len;
    }
    return v->iter;
}

/* After a next() from committed key k: the iterator stands at the first
 * key >= k's successor (k followed by a zero byte). */
static void view_iter_stepped(view *v, const uint8_t *k, size_t kl) {
    v->positioned = kl + 1 <= sizeof v->lo;
    if (!v->positioned) return;
    memmove(v->lo, k, kl);
    v->lo[kl] = 0;
    v->lo_len = kl + 1;
}

/* Ordered read: the committed keys (a RocksDB iterator) merged with the
 * pending batch (the prefix's sorted view); pending entries win, pending
 * tombstones hide committed keys. */
static int port_seek(void *ud, const uint8_t *prefix, size_t prefix_len, const uint8_t *from, size_t from_len,
                     uint8_t *key, size_t key_cap, size_t *key_len, uint8_t *val, size_t val_cap, size_t *val_len,
                     ct_error *err) {
    ct_store *st = ud;
    view *pv = view_for(st, prefix, prefix_len, err);
    if (!pv) return -1;
    size_t vi = view_lower_bound(pv, from, from_len);
    rocksdb_iterator_t *it = view_iter_at(st, pv, from, from_len);
    int rc = 0;
    for (;;) {
        size_t dkl = 0, dvl = 0;
        const uint8_t *dk = NULL, *dv = NULL;
        if (rocksdb_iter_valid(it)) {
            dk = (const uint8_t *)rocksdb_iter_key(it, &dkl);
            if (dkl < prefix_len || memcmp(dk, prefix, prefix_len) != 0)
                dk = NULL;
            else
                dv = (const uint8_t *)rocksdb_iter_value(it, &dvl);
        }
        const uint8_t *pk = vi < pv->n ? pv->keys[vi] + 4 : NULL;
        size_t pkl = pk ? vkey_len(pv->keys[vi]) : 0;
        if (!dk && !pk) break;
        int c = !pk ? 1 : !dk ? -1 : key_cmp(pk, pkl, dk, dkl);
        if (c <= 0) { /* the pending entry comes first, or replaces the committed one */
            const uint8_t *v;
            size_t vl;
            bool tomb = false;
            ct_kvmap_get(st->pending, pk, pkl, &v, &vl, &tomb);
            vi++;
            if (c == 0) {
                view_iter_stepped(pv, dk, dkl);
                rocksdb_iter_next(it);
            }
            if (tomb) continue;
            rc = copy_out(pk, pkl, v, vl, key, key_cap, key_len, val, val_cap, val_len, err);
            break;
        }
        rc = copy_out(dk, dkl, dv, dvl, key, key_cap, key_len, val, val_cap, val_len, err);
        break;
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    if (rocks_failed(rerr, "seek", err)) rc = -1;
    return rc;
}

ct_kv_port ct_store_port(ct_store *st) {
    ct_kv_port p = {.ud = st, .get = port_get, .seek = port_seek};
    return p;
}

void ct_store_batch_begin(ct_store *st) {
    rocksdb_writebatch_clear(st->batch);
    ct_kvmap_clear(st->pending);
    views_reset(st);
    st->batch_max_offset = -1;
    st->batch_max_logged = 0;
}

/* One write into the pending batch: the readable overlay (one final value
 * per key: a key rewritten by every record, like the clock, costs one
 * RocksDB write per batch) and any sorted view the key falls under. */
static int stage(ct_store *st, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn, bool del, ct_error *err) {
    if (ct_kvmap_put(st->pending, k, kn, v, del ? 0 : vn, del) != 0) goto oom;
    for (int i = 0; i < VIEWS_MAX; i++) {
        view *w = &st->views[i];
        if (w->built && kn >= w->prefix_len && memcmp(k, w->prefix, w->prefix_len) == 0 && view_insert(w, k, kn) != 0)
            goto oom;
    }
    return 0;
oom:
    CT_ERR(err, CT_ERR_FATAL, "out of memory");
    return -1;
}

void ct_store_batch_discard(ct_store *st) { ct_store_batch_begin(st); }

int ct_store_batch_count(ct_store *st) { return (int)ct_kvmap_count(st->pending); }

int ct_store_batch_add(ct_store *st, const ct_effects *fx, ct_error *err) {
    size_t n = ct_effects_mutation_count(fx);
    for (size_t i = 0; i < n; i++) {
        ct_mutation m;
        ct_effects_mutation_at(fx, i, &m);
        if (m.key_len == 0 || m.key[0] == 0) {
            CT_ERR(err, CT_ERR_FATAL, "store: domain key in the store's reserved namespace");
            return -1;
        }
        if (stage(st, m.key, m.key_len, m.val, m.val_len, m.is_delete, err) != 0) return -1;
    }
    return 0;
}

int ct_store_batch_set_offset(ct_store *st, int64_t offset, ct_error *err) {
    if (offset < 0 || offset < st->batch_max_offset) {
        CT_ERR(err, CT_ERR_FATAL, "store: offset %lld goes backwards", (long long)offset);
        return -1;
    }
    uint8_t off[8];
    put_be64(off, (uint64_t)offset);
    if (stage(st, (const uint8_t *)KEY_OFFSET, KEY_OFFSET_LEN, off, 8, false, err) != 0) return -1;
    st->batch_max_offset = offset;
    return 0;
}

/* The retention index's value: a format mark no record id starts with,
 * the log time, the id. */
#define IO_TIMED 0x01
#define IO_TIMED_LEN 9

int ct_store_batch_mark_applied(ct_store *st, const char *record_id, int64_t offset, int64_t logged_ms, ct_error *err) {
    uint8_t key[ID_PREFIX_LEN + CT_STORE_RECORD_ID_MAX], off[8], io[IO_PREFIX_LEN + 8];
    uint8_t ioval[IO_TIMED_LEN + CT_STORE_RECORD_ID_MAX];
    size_t key_len, id_len = strlen(record_id);
    if (id_key(record_id, key, &key_len, err) != 0) return -1;
    if (ct_store_batch_set_offset(st, offset, err) != 0) return -1;
    if (logged_ms < 0) logged_ms = 0;
    if (logged_ms > st->batch_max_logged) st->batch_max_logged = logged_ms;
    put_be64(off, (uint64_t)offset);
    memcpy(io, IO_PREFIX, IO_PREFIX_LEN);
    memcpy(io + IO_PREFIX_LEN, off, 8);
    ioval[0] = IO_TIMED;
    put_be64(ioval + 1, (uint64_t)logged_ms);
    memcpy(ioval + IO_TIMED_LEN, record_id, id_len);
    if (stage(st, key, key_len, off, 8, false, err) != 0 ||
        stage(st, io, sizeof io, ioval, IO_TIMED_LEN + id_len, false, err) != 0)
        return -1;
    return 0;
}

/* Deletes applied ids beyond both retentions, oldest offset first; stops
 * at the first one still kept (log times grow with offsets, so what follows
 * is kept as well, or soon pruned by a later batch). */
static int prune_ids(ct_store *st, int64_t max_offset, int64_t max_logged, ct_error *err) {
    if (max_offset < st->id_window) return 0;
    uint8_t limit[IO_PREFIX_LEN + 8];
    memcpy(limit, IO_PREFIX, IO_PREFIX_LEN);
    put_be64(limit + IO_PREFIX_LEN, (uint64_t)(max_offset - st->id_window));
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->ropts);
    int pruned = 0;
    for (rocksdb_iter_seek(it, IO_PREFIX, IO_PREFIX_LEN); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl != sizeof limit || memcmp(k, limit, sizeof limit) >= 0) break;
        const char *v = rocksdb_iter_value(it, &vl);
        if (vl >= IO_TIMED_LEN && (uint8_t)v[0] == IO_TIMED) {
            int64_t logged = (int64_t)get_be64((const uint8_t *)v + 1);
            bool kept = st->id_keep_ms == 0 ||
                        (st->id_keep_ms > 0 && logged > 0 && (max_logged == 0 || logged > max_logged - st->id_keep_ms));
            if (kept) break;
            v += IO_TIMED_LEN, vl -= IO_TIMED_LEN;
        }
        uint8_t idk[ID_PREFIX_LEN + CT_STORE_RECORD_ID_MAX];
        if (vl == 0 || vl > CT_STORE_RECORD_ID_MAX) break;
        memcpy(idk, ID_PREFIX, ID_PREFIX_LEN);
        memcpy(idk + ID_PREFIX_LEN, v, vl);
        rocksdb_writebatch_delete(wb, (const char *)idk, ID_PREFIX_LEN + vl);
        rocksdb_writebatch_delete(wb, k, kl);
        /* The cache must forget them too. */
        if (ct_kvmap_put(st->cache, idk, ID_PREFIX_LEN + vl, NULL, 0, true) != 0 ||
            ct_kvmap_put(st->cache, (const uint8_t *)k, kl, NULL, 0, true) != 0) {
            CT_ERR(err, CT_ERR_FATAL, "out of memory");
            break;
        }
        pruned++;
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    int rc = rocks_failed(rerr, "prune scan", err) ? -1 : 0;
    if (rc == 0 && pruned) {
        drop_iterator(st);
        rocksdb_write(st->db, st->wopts, wb, &rerr);
        rc = rocks_failed(rerr, "prune", err) ? -1 : 0;
    }
    rocksdb_writebatch_destroy(wb);
    return rc;
}

/* One pending entry, for sorting the batch by key before it is written. */
typedef struct sorted_entry {
    const uint8_t *k, *v;
    size_t kn, vn;
    bool tomb;
} sorted_entry;

static int sorted_entry_cmp(const void *a, const void *b) {
    const sorted_entry *x = a, *y = b;
    return key_cmp(x->k, x->kn, y->k, y->kn);
}

int ct_store_batch_commit(ct_store *st, ct_error *err) {
    char *rerr = NULL;
    rocksdb_writebatch_clear(st->batch);
    /* In key order: the memtable's skiplist then reuses its insertion
     * splice from one key to the next instead of searching from the top
     * (half the restore path's time went to unordered inserts). */
    size_t n = ct_kvmap_count(st->pending);
    if (n > st->sorted_cap) {
        sorted_entry *s = realloc(st->sorted, n * sizeof *s);
        if (!s) {
            CT_ERR(err, CT_ERR_FATAL, "out of memory");
            return -1;
        }
        st->sorted = s;
        st->sorted_cap = n;
    }
    size_t m = 0;
    for (size_t i = 0; i < ct_kvmap_capacity(st->pending) && m < n; i++) {
        sorted_entry *e = &st->sorted[m];
        if (ct_kvmap_at(st->pending, i, &e->k, &e->kn, &e->v, &e->vn, &e->tomb)) m++;
    }
    qsort(st->sorted, m, sizeof *st->sorted, sorted_entry_cmp);
    for (size_t i = 0; i < m; i++) {
        const sorted_entry *e = &st->sorted[i];
        if (e->tomb)
            rocksdb_writebatch_delete(st->batch, (const char *)e->k, e->kn);
        else
            rocksdb_writebatch_put(st->batch, (const char *)e->k, e->kn, (const char *)e->v, e->vn);
    }
    rocksdb_write(st->db, st->wopts, st->batch, &rerr);
    drop_iterator(st); /* it would not see what was just written */
    if (rocks_failed(rerr, "write batch", err)) return -1;
    /* Committed: what the batch wrote is what the database now holds. */
    if (ct_kvmap_bytes(st->cache) + ct_kvmap_bytes(st->pending) > CACHE_BYTES_MAX) ct_kvmap_clear(st->cache);
    /* The pending entries become the cache's, without a copy. */
    if (ct_kvmap_move_all(st->cache, st->pending) != 0)
        ct_kvmap_clear(st->cache); /* a cache is optional: drop it rather than fail */
    int rc = prune_ids(st, st->batch_max_offset, st->batch_max_logged, err);
    ct_store_batch_begin(st);
    return rc;
}

int ct_store_foreach(ct_store *st, ct_store_visit_fn fn, void *ud, ct_error *err) {
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->ropts);
    /* Domain keys start after the 0x00 namespace. */
    for (rocksdb_iter_seek(it, "\x01", 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        if (fn(ud, (const uint8_t *)k, kl, (const uint8_t *)v, vl)) break;
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    return rocks_failed(rerr, "scan", err) ? -1 : 0;
}
