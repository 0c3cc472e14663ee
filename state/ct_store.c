/* ct_store: see ct_store.h. */
#include "ct_store.h"

#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>

struct ct_store {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_writebatch_wi_t *batch;
    int64_t batch_max_offset; /* highest offset marked in this batch, -1 none */
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
    char *rerr = NULL;
    st->db = rocksdb_open(st->opts, dir, &rerr);
    if (rocks_failed(rerr, "open", err)) {
        ct_error_detail(err, "%s: %s", dir, err->detail);
        ct_store_close(st);
        return NULL;
    }
    st->ropts = rocksdb_readoptions_create();
    st->wopts = rocksdb_writeoptions_create();
    /* The Kafka transaction is committed before this write; a lost write
     * is replayed in restore mode, so fsync is about bounding that replay,
     * and cheap at one commit per batch. */
    rocksdb_writeoptions_set_sync(st->wopts, 1);
    st->batch = rocksdb_writebatch_wi_create(0, 1);
    st->batch_max_offset = -1;
    return st;
}

void ct_store_close(ct_store *st) {
    if (!st) return;
    if (st->batch) rocksdb_writebatch_wi_destroy(st->batch);
    if (st->wopts) rocksdb_writeoptions_destroy(st->wopts);
    if (st->ropts) rocksdb_readoptions_destroy(st->ropts);
    if (st->db) rocksdb_close(st->db);
    if (st->opts) rocksdb_options_destroy(st->opts);
    free(st);
}

int ct_store_wipe(const char *dir, ct_error *err) {
    rocksdb_options_t *o = rocksdb_options_create();
    char *rerr = NULL;
    rocksdb_destroy_db(o, dir, &rerr);
    rocksdb_options_destroy(o);
    return rocks_failed(rerr, "destroy", err) ? -1 : 0;
}

/* Point read through batch and database; *val malloc'd (rocksdb_free). */
static int read_merged(ct_store *st, const uint8_t *key, size_t key_len, char **val, size_t *val_len, ct_error *err) {
    char *rerr = NULL;
    *val = rocksdb_writebatch_wi_get_from_batch_and_db(st->batch, st->db, st->ropts, (const char *)key, key_len,
                                                        val_len, &rerr);
    return rocks_failed(rerr, "get", err) ? -1 : 0;
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
    char *v = NULL;
    size_t len;
    if (read_merged(st, key, key_len, &v, &len, err) != 0) return -1;
    *applied = v != NULL;
    rocksdb_free(v);
    return 0;
}

static int port_get(void *ud, const uint8_t *key, size_t key_len, uint8_t *val, size_t val_cap, size_t *val_len,
                    ct_error *err) {
    ct_store *st = ud;
    char *v = NULL;
    size_t len = 0;
    if (read_merged(st, key, key_len, &v, &len, err) != 0) return -1;
    if (!v) return 0;
    if (len > val_cap) {
        rocksdb_free(v);
        CT_ERR(err, CT_ERR_FATAL, "store: value of %zu bytes exceeds the core's %zu", len, val_cap);
        return -1;
    }
    memcpy(val, v, len);
    *val_len = len;
    rocksdb_free(v);
    return 1;
}

static int port_seek(void *ud, const uint8_t *prefix, size_t prefix_len, const uint8_t *from, size_t from_len,
                     uint8_t *key, size_t key_cap, size_t *key_len, uint8_t *val, size_t val_cap, size_t *val_len,
                     ct_error *err) {
    ct_store *st = ud;
    /* The merged view of database and pending batch, as of now. */
    rocksdb_iterator_t *base = rocksdb_create_iterator(st->db, st->ropts);
    rocksdb_iterator_t *it = rocksdb_writebatch_wi_create_iterator_with_base(st->batch, base);
    rocksdb_iter_seek(it, (const char *)from, from_len);
    int rc = 0;
    if (rocksdb_iter_valid(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        if (kl >= prefix_len && memcmp(k, prefix, prefix_len) == 0) {
            if (kl > key_cap || vl > val_cap) {
                CT_ERR(err, CT_ERR_FATAL, "store: entry of %zu/%zu bytes exceeds the core's buffers", kl, vl);
                rc = -1;
            } else {
                memcpy(key, k, kl);
                memcpy(val, v, vl);
                *key_len = kl;
                *val_len = vl;
                rc = 1;
            }
        }
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    if (rocks_failed(rerr, "seek", err)) rc = -1;
    rocksdb_iter_destroy(it); /* owns base */
    return rc;
}

ct_kv_port ct_store_port(ct_store *st) {
    ct_kv_port p = {.ud = st, .get = port_get, .seek = port_seek};
    return p;
}

void ct_store_batch_begin(ct_store *st) {
    rocksdb_writebatch_wi_clear(st->batch);
    st->batch_max_offset = -1;
}

void ct_store_batch_discard(ct_store *st) { ct_store_batch_begin(st); }

int ct_store_batch_count(ct_store *st) { return rocksdb_writebatch_wi_count(st->batch); }

int ct_store_batch_add(ct_store *st, const ct_effects *fx, ct_error *err) {
    size_t n = ct_effects_mutation_count(fx);
    for (size_t i = 0; i < n; i++) {
        ct_mutation m;
        ct_effects_mutation_at(fx, i, &m);
        if (m.key_len == 0 || m.key[0] == 0) {
            CT_ERR(err, CT_ERR_FATAL, "store: domain key in the store's reserved namespace");
            return -1;
        }
        if (m.is_delete) rocksdb_writebatch_wi_delete(st->batch, (const char *)m.key, m.key_len);
        else rocksdb_writebatch_wi_put(st->batch, (const char *)m.key, m.key_len, (const char *)m.val, m.val_len);
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
    rocksdb_writebatch_wi_put(st->batch, KEY_OFFSET, KEY_OFFSET_LEN, (const char *)off, 8);
    st->batch_max_offset = offset;
    return 0;
}

int ct_store_batch_mark_applied(ct_store *st, const char *record_id, int64_t offset, ct_error *err) {
    uint8_t key[ID_PREFIX_LEN + CT_STORE_RECORD_ID_MAX], off[8], io[IO_PREFIX_LEN + 8];
    size_t key_len;
    if (id_key(record_id, key, &key_len, err) != 0) return -1;
    if (ct_store_batch_set_offset(st, offset, err) != 0) return -1;
    put_be64(off, (uint64_t)offset);
    memcpy(io, IO_PREFIX, IO_PREFIX_LEN);
    memcpy(io + IO_PREFIX_LEN, off, 8);
    rocksdb_writebatch_wi_put(st->batch, (const char *)key, key_len, (const char *)off, 8);
    rocksdb_writebatch_wi_put(st->batch, (const char *)io, sizeof io, record_id, strlen(record_id));
    return 0;
}

/* Deletes applied ids older than the retention window, oldest first. */
static int prune_ids(ct_store *st, ct_error *err) {
    if (st->batch_max_offset < CT_STORE_APPLIED_IDS_WINDOW) return 0;
    uint8_t limit[IO_PREFIX_LEN + 8];
    memcpy(limit, IO_PREFIX, IO_PREFIX_LEN);
    put_be64(limit + IO_PREFIX_LEN, (uint64_t)(st->batch_max_offset - CT_STORE_APPLIED_IDS_WINDOW));
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator(st->db, st->ropts);
    int pruned = 0;
    for (rocksdb_iter_seek(it, IO_PREFIX, IO_PREFIX_LEN); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        if (kl != sizeof limit || memcmp(k, limit, sizeof limit) >= 0) break;
        const char *v = rocksdb_iter_value(it, &vl);
        uint8_t idk[ID_PREFIX_LEN + CT_STORE_RECORD_ID_MAX];
        if (vl == 0 || vl > CT_STORE_RECORD_ID_MAX) break;
        memcpy(idk, ID_PREFIX, ID_PREFIX_LEN);
        memcpy(idk + ID_PREFIX_LEN, v, vl);
        rocksdb_writebatch_delete(wb, (const char *)idk, ID_PREFIX_LEN + vl);
        rocksdb_writebatch_delete(wb, k, kl);
        pruned++;
    }
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    rocksdb_iter_destroy(it);
    int rc = rocks_failed(rerr, "prune scan", err) ? -1 : 0;
    if (rc == 0 && pruned) {
        rocksdb_write(st->db, st->wopts, wb, &rerr);
        rc = rocks_failed(rerr, "prune", err) ? -1 : 0;
    }
    rocksdb_writebatch_destroy(wb);
    return rc;
}

int ct_store_batch_commit(ct_store *st, ct_error *err) {
    char *rerr = NULL;
    rocksdb_write_writebatch_wi(st->db, st->wopts, st->batch, &rerr);
    if (rocks_failed(rerr, "write batch", err)) return -1;
    int rc = prune_ids(st, err);
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
