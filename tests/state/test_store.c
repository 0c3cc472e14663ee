/* The RocksDB task store, on real RocksDB in a temporary directory: batch
 * reads see pending writes, nothing is durable before commit, commits
 * survive reopening, applied offsets and ids, their retention, and the
 * domain core driven through the store giving exactly the state and
 * outputs it gives through the in-memory port. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../domain/dom_harness.h"
#include "ct_codec.h"
#include "ct_domain.h"
#include "ct_store.h"

static char dir[64];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/ct-test-store-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void) {
    ct_error err = {0};
    ct_store_wipe(dir, &err);
    rmdir(dir);
}

static ct_store *open_store(void) {
    ct_error err = {0};
    ct_store *st = ct_store_open(dir, &err);
    cr_assert_not_null(st, "%s %s", err.msg, err.detail);
    return st;
}

static int get(ct_store *st, const char *key, char *out, size_t cap) {
    ct_kv_port p = ct_store_port(st);
    ct_error err = {0};
    size_t len = 0;
    int rc = p.get(p.ud, (const uint8_t *)key, strlen(key), (uint8_t *)out, cap - 1, &len, &err);
    cr_assert_geq(rc, 0, "%s", err.msg);
    if (rc == 1) out[len] = '\0';
    return rc;
}

typedef struct collect {
    char buf[1 << 20];
    size_t len;
} collect;

static int collect_fn(void *ud, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len) {
    collect *c = ud;
    if (c->len + key_len + val_len + 16 > sizeof c->buf) return 1;
    c->len += (size_t)snprintf(c->buf + c->len, 16, "%zu:%zu|", key_len, val_len);
    memcpy(c->buf + c->len, key, key_len);
    c->len += key_len;
    memcpy(c->buf + c->len, val, val_len);
    c->len += val_len;
    return 0;
}

Test(store, applied_offset_and_ids_survive_reopen_and_only_after_commit, .init = setup, .fini = teardown) {
    ct_error err = {0};
    ct_store *st = open_store();
    int64_t off = 0;
    bool applied = true;
    cr_assert_eq(ct_store_applied_offset(st, &off, &err), 0);
    cr_assert_eq(off, -1, "empty store has applied nothing");

    ct_store_batch_begin(st);
    cr_assert_eq(ct_store_batch_mark_applied(st, "rec-1", 10, 0, &err), 0);
    cr_assert_eq(ct_store_is_applied(st, "rec-1", &applied, &err), 0);
    cr_assert(applied, "visible within the batch");
    cr_assert_eq(ct_store_applied_offset(st, &off, &err), 0);
    cr_assert_eq(off, -1, "not committed yet");
    ct_store_batch_discard(st);
    cr_assert_eq(ct_store_is_applied(st, "rec-1", &applied, &err), 0);
    cr_assert_not(applied, "discarded");

    ct_store_batch_begin(st);
    cr_assert_eq(ct_store_batch_mark_applied(st, "rec-1", 10, 0, &err), 0);
    cr_assert_eq(ct_store_batch_mark_applied(st, "rec-2", 11, 0, &err), 0);
    cr_assert_eq(ct_store_batch_mark_applied(st, "rec-0", 9, 0, &err), -1, "offsets never go backwards");
    cr_assert_eq(ct_store_batch_commit(st, &err), 0, "%s", err.msg);
    ct_store_close(st);

    st = open_store();
    cr_assert_eq(ct_store_applied_offset(st, &off, &err), 0);
    cr_assert_eq(off, 11);
    cr_assert_eq(ct_store_is_applied(st, "rec-1", &applied, &err), 0);
    cr_assert(applied);
    cr_assert_eq(ct_store_is_applied(st, "rec-3", &applied, &err), 0);
    cr_assert_not(applied);
    cr_assert_eq(ct_store_is_applied(st, "", &applied, &err), -1, "empty id refused");
    ct_store_close(st);
}

Test(store, applied_ids_older_than_the_window_are_forgotten, .init = setup, .fini = teardown) {
    ct_error err = {0};
    ct_store *st = open_store();
    bool applied = false;
    ct_store_batch_begin(st);
    cr_assert_eq(ct_store_batch_mark_applied(st, "old", 5, 0, &err), 0);
    cr_assert_eq(ct_store_batch_mark_applied(st, "edge", 6, 0, &err), 0);
    cr_assert_eq(ct_store_batch_commit(st, &err), 0);
    ct_store_batch_begin(st);
    cr_assert_eq(ct_store_batch_mark_applied(st, "new", 6 + CT_STORE_APPLIED_IDS_WINDOW, 0, &err), 0);
    cr_assert_eq(ct_store_batch_commit(st, &err), 0);
    cr_assert_eq(ct_store_is_applied(st, "old", &applied, &err), 0);
    cr_assert_not(applied, "beyond the window");
    cr_assert_eq(ct_store_is_applied(st, "edge", &applied, &err), 0);
    cr_assert(applied, "exactly at the window's edge is kept");
    cr_assert_eq(ct_store_is_applied(st, "new", &applied, &err), 0);
    cr_assert(applied);
    ct_store_close(st);
}

/* A charge published again after a million other records (the outbox may
 * republish a row for as long as it keeps it): its id is still known while
 * its log time is within the time retention, and forgotten once both the
 * window and the time have passed. */
Test(store, applied_ids_are_kept_for_the_time_retention_past_the_window, .init = setup, .fini = teardown) {
    ct_error err = {0};
    ct_store *st = open_store();
    const int64_t t0 = INT64_C(1800000000000), hour = 3600 * 1000;
    ct_store_set_id_retention(st, 10, 24 * hour);
    bool applied = false;
    ct_store_batch_begin(st);
    cr_assert_eq(ct_store_batch_mark_applied(st, "charge-1", 5, t0, &err), 0);
    cr_assert_eq(ct_store_batch_commit(st, &err), 0);
    /* Far past the window of 10 offsets, an hour later: kept. */
    ct_store_batch_begin(st);
    cr_assert_eq(ct_store_batch_mark_applied(st, "later", 5 + 1000000, t0 + hour, &err), 0);
    cr_assert_eq(ct_store_batch_commit(st, &err), 0);
    cr_assert_eq(ct_store_is_applied(st, "charge-1", &applied, &err), 0);
    cr_assert(applied, "forgotten after the window although its time is kept");
    /* A day and a minute later: gone. */
    ct_store_batch_begin(st);
    cr_assert_eq(ct_store_batch_mark_applied(st, "much-later", 5 + 2000000, t0 + 24 * hour + 60000, &err), 0);
    cr_assert_eq(ct_store_batch_commit(st, &err), 0);
    cr_assert_eq(ct_store_is_applied(st, "charge-1", &applied, &err), 0);
    cr_assert_not(applied, "kept past both retentions");
    cr_assert_eq(ct_store_is_applied(st, "later", &applied, &err), 0);
    cr_assert(applied, "an hour old: within the day");
    /* Time 0 (forever): never forgotten. */
    ct_store_set_id_retention(st, 10, 0);
    ct_store_batch_begin(st);
    cr_assert_eq(ct_store_batch_mark_applied(st, "last", 5 + 9000000, t0 + 1000 * 24 * hour, &err), 0);
    cr_assert_eq(ct_store_batch_commit(st, &err), 0);
    cr_assert_eq(ct_store_is_applied(st, "later", &applied, &err), 0);
    cr_assert(applied, "forever");
    ct_store_close(st);
}

/* Drives the concert core through the store (several records per batch,
 * so later records read earlier ones' pending writes) and through the
 * in-memory port, and compares state and encoded outputs byte for byte. */
Test(store, domain_through_store_matches_the_in_memory_port, .init = setup, .fini = teardown) {
    dom d;
    dom_init(&d);
    ct_store *st = open_store();
    ct_effects *fx = ct_effects_new();
    ct_kv_port port = ct_store_port(st);
    ct_error err = {0};
    ct_cmd cmds[400];
    size_t n = 0;
    int64_t t = 1700000000000;
    cmds[n++] = dom_create(&d, t, "c1", 2, 20, 5000, 5, 60000, 10000);
    for (int u = 0; u < 30; u++) {
        char tok[16], user[16];
        snprintf(tok, sizeof tok, "t%d", u);
        snprintf(user, sizeof user, "u%d", u);
        cmds[n++] = dom_issue(&d, t += 10, tok, user, "c1");
    }
    for (int u = 0; u < 30; u++) {
        char tok[16], user[16], res[16];
        snprintf(tok, sizeof tok, "t%d", u);
        snprintf(user, sizeof user, "u%d", u);
        snprintf(res, sizeof res, "r%d", u);
        /* Seats collide on purpose (SEAT_TAKEN), tokens beyond max_active
         * are not active yet (TOKEN_NOT_ACTIVE), holds expire with time. */
        cmds[n++] = dom_hold(&d, t += 700, res, tok, user, "c1", u % 2 ? "2" : "1", (uint32_t)(u % 7) + 1);
        if (u % 3 == 0) cmds[n++] = dom_tick(&d, t += 4000);
    }
    cmds[n++] = dom_tick(&d, t += 120000);
    cr_assert_lt(n, sizeof cmds / sizeof cmds[0]);

    char a[8192], b[8192];
    size_t outputs = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 7 == 0) ct_store_batch_begin(st);
        /* The store's run first (its reads must not see this record), then
         * the in-memory one; d.fx stays valid until the next dom_apply. */
        cr_assert_eq(ct_concert_apply(&port, &cmds[i], fx, &err), 0, "record %zu: %s", i, err.msg);
        const ct_effects *mem = dom_apply(&d, &cmds[i]);
        cr_assert_eq(ct_effects_output_count(fx), ct_effects_output_count(mem), "record %zu", i);
        for (size_t o = 0; o < ct_effects_output_count(mem); o++) {
            size_t la = 0, lb = 0;
            cr_assert_eq(ct_codec_encode_effect(mem, o, a, sizeof a, &la, &err), 0);
            cr_assert_eq(ct_codec_encode_effect(fx, o, b, sizeof b, &lb, &err), 0);
            cr_assert(la == lb && memcmp(a, b, la) == 0, "record %zu output %zu differs:\n%.*s\n%.*s", i, o, (int)la, a,
                      (int)lb, b);
            outputs++;
        }
        cr_assert_eq(ct_store_batch_add(st, fx, &err), 0);
        cr_assert_eq(ct_store_batch_mark_applied(st, cmds[i].id, (int64_t)i, 0, &err), 0, "%s", err.msg);
        if (i % 7 == 6 || i + 1 == n) cr_assert_eq(ct_store_batch_commit(st, &err), 0, "%s", err.msg);
    }
    static collect from_store, from_mem;
    from_store.len = from_mem.len = 0;
    cr_assert_eq(ct_store_foreach(st, collect_fn, &from_store, &err), 0);
    ct_memkv_foreach(d.concert, collect_fn, &from_mem);
    cr_assert_gt(from_mem.len, 100, "the scenario built real state");
    cr_assert_gt(outputs, n, "the scenario produced outputs");
    cr_assert_eq(from_store.len, from_mem.len, "state sizes differ");
    cr_assert(memcmp(from_store.buf, from_mem.buf, from_mem.len) == 0, "state differs");
    ct_effects_destroy(fx);
    ct_store_close(st);
    dom_fini(&d);
}

Test(store, batch_reads_see_pending_writes_and_discard_drops_them, .init = setup, .fini = teardown) {
    /* Through the core: create a concert in a batch, read it back through
     * the port before commit, discard, and it is gone. */
    dom d;
    dom_init(&d);
    ct_store *st = open_store();
    ct_effects *fx = ct_effects_new();
    ct_kv_port port = ct_store_port(st);
    ct_error err = {0};
    ct_cmd create = dom_create(&d, 1000, "c9", 1, 10, 100, 2, 60000, 10000);
    ct_cmd issue = dom_issue(&d, 1001, "tok", "alice", "c9");
    ct_store_batch_begin(st);
    cr_assert_eq(ct_concert_apply(&port, &create, fx, &err), 0);
    cr_assert_eq(ct_store_batch_add(st, fx, &err), 0);
    cr_assert_eq(ct_concert_apply(&port, &issue, fx, &err), 0);
    cr_assert_eq(ct_effects_output_count(fx) >= 1, 1);
    cr_assert_eq(ct_effects_output_at(fx, 0)->type == CT_OUT_COMMAND_REJECTED, 0,
                 "the issue saw the concert created earlier in the same batch");
    ct_store_batch_discard(st);
    cr_assert_eq(ct_concert_apply(&port, &issue, fx, &err), 0);
    cr_assert_eq(ct_effects_output_at(fx, 0)->type, CT_OUT_COMMAND_REJECTED, "discarded: the concert is unknown");
    char val[64];
    cr_assert_eq(get(st, "C/c9", val, sizeof val), 0, "nothing reached the database");
    ct_effects_destroy(fx);
    ct_store_close(st);
    dom_fini(&d);
}
