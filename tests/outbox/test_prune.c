/* Outbox retention (ct_outbox_prune_slice) against the real Postgres, in a
 * database of the test's own: only SENT rows sent before the cutoff go, with
 * the Idempotency-Keys naming them; PENDING, FAILED, young SENT rows and
 * rows at or above the relay's frontier stay; a pass walks the outbox in
 * slices of ids, skips old gaps and stops at the first row still kept;
 * `concert outbox prune` runs a pass on demand. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "../support/ct_test_kafka.h"
#include "../support/ct_test_pg.h"
#include "ct_outbox.h"

static ct_config cfg;
static char run[32], dbname[64];
static PGconn *db;

static void setup(void) {
    ct_test_load_config(&cfg);
    ct_test_run_id(run, sizeof run);
    snprintf(dbname, sizeof dbname, "ct_test_prune_%s", run);
    db = ct_test_pg_database(&cfg, dbname);
}

static void teardown(void) { ct_test_pg_drop(db, &cfg, dbname); }

static void exec(const char *sql) { ct_test_pg_exec(db, sql); }

static long count(const char *sql) { return ct_test_pg_count(db, sql); }

/* n rows of one state; their partition_key names it (`what`-i), sent
 * `age_s` ago for SENT ones. */
static void rows(int n, const char *what, const char *status, int age_s) {
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO outbox (command_id, topic, partition_key, type, payload, status, sent_at, retry_at)"
             " SELECT gen_random_uuid(), 'wallet.commands', '%s-' || g, 'ChargeBalance', '{}', '%s',"
             "  CASE WHEN '%s' = 'SENT' THEN now() - make_interval(secs => %d) END,"
             "  CASE WHEN '%s' = 'FAILED' THEN 'infinity'::timestamptz END"
             " FROM generate_series(1, %d) g ORDER BY g",
             what, status, status, age_s, status, n);
    exec(sql);
}

/* Every row so far is below the frontier (the relay has passed them). */
static void frontier_past_all(void) {
    exec("UPDATE outbox_frontier SET next_id = (SELECT coalesce(max(id), 0) + 1 FROM outbox)");
}

/* A whole pass; returns the rows deleted and counts its slices. */
static int64_t pass(int window, int retention_s, int *slices) {
    int64_t total = 0, deleted = 0, from = 0;
    *slices = 0;
    do {
        ct_error err = {0};
        cr_assert_eq(ct_outbox_prune_slice(db, from, window, retention_s, &deleted, &from, &err), 0, "%s %s", err.msg,
                     err.detail);
        total += deleted, (*slices)++;
        cr_assert_lt(*slices, 1000, "a pass must end");
    } while (from != 0);
    return total;
}

Test(outbox_prune, only_old_SENT_rows_go_with_their_idempotency_keys, .init = setup, .fini = teardown) {
    rows(30, "old", "SENT", 7200);
    rows(3, "failed", "FAILED", 0);
    rows(2, "pending", "PENDING", 0);
    exec(
        "INSERT INTO idempotency_keys (key, command_id, fingerprint, response)"
        " SELECT 'k-' || partition_key, command_id, 'f', '{}' FROM outbox WHERE partition_key IN ('old-1', 'failed-1')");
    rows(5, "young", "SENT", 10);
    frontier_past_all();
    rows(4, "beyond", "SENT", 7200); /* above the frontier: not the relay's yet */
    int slices = 0;
    cr_assert_eq(pass(7, 3600, &slices), 30);
    cr_assert_geq(slices, 5, "30 old rows in windows of 7 take several slices, got %d", slices);
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE partition_key LIKE 'old-%'"), 0);
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE status = 'FAILED'"), 3);
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE status = 'PENDING'"), 2);
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE partition_key LIKE 'young-%'"), 5);
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE partition_key LIKE 'beyond-%'"), 4);
    cr_assert_eq(count("SELECT count(*) FROM idempotency_keys WHERE key = 'k-old-1'"), 0, "its key went with it");
    cr_assert_eq(count("SELECT count(*) FROM idempotency_keys WHERE key = 'k-failed-1'"), 1);
    cr_assert_eq(pass(7, 3600, &slices), 0, "a second pass finds nothing");
}

Test(outbox_prune, a_pass_ends_with_the_window_holding_a_row_still_kept, .init = setup, .fini = teardown) {
    rows(10, "old", "SENT", 7200);
    rows(1, "young", "SENT", 10);    /* id 11 */
    rows(19, "later", "SENT", 7200); /* a retried row may be sent late: the pass ends before most of these */
    frontier_past_all();
    int slices = 0;
    /* Windows of 5: [1,6) [6,11) [11,16), where id 11 is kept (ids 12-15,
     * old, go with their window); not on through the other 15. */
    cr_assert_eq(pass(5, 3600, &slices), 14);
    cr_assert_eq(slices, 3);
    cr_assert_eq(count("SELECT count(*) FROM outbox"), 16);
    cr_assert_eq(pass(5, 3600, &slices), 0, "the next pass stops there again");
    cr_assert_eq(slices, 1);
    cr_assert_eq(pass(5, 5, &slices), 16, "once that row is old too, the rest follows");
}

Test(outbox_prune, a_pass_skips_the_gap_left_by_earlier_ones, .init = setup, .fini = teardown) {
    rows(1, "failed", "FAILED", 0); /* the smallest id, kept forever */
    rows(5000, "old", "SENT", 7200);
    frontier_past_all();
    int slices = 0;
    cr_assert_eq(pass(1000, 3600, &slices), 5000);
    rows(3, "new", "SENT", 7200);
    frontier_past_all();
    cr_assert_eq(pass(1000, 3600, &slices), 3);
    cr_assert_leq(slices, 2, "from the FAILED row straight to the new ones, not through 5 empty windows: %d", slices);
}

Test(outbox_prune, bad_arguments_change_nothing, .init = setup, .fini = teardown) {
    rows(3, "old", "SENT", 7200);
    frontier_past_all();
    int64_t deleted = -1, next = -1;
    ct_error err = {0};
    cr_assert_eq(ct_outbox_prune_slice(db, 0, 0, 3600, &deleted, &next, &err), -1);
    cr_assert(strstr(err.msg, "out of range"), "%s", err.msg);
    cr_assert_eq(ct_outbox_prune_slice(db, 0, 10, 0, &deleted, &next, &err), -1);
    cr_assert_eq(count("SELECT count(*) FROM outbox"), 3);
}

/* `concert outbox prune` (the binary, on the test's database through
 * CONCERT_PG_URL): its exit status, and its output in out. */
static int concert_prune(const char *args, char *out, size_t n) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s outbox prune %s 2>&1", CT_CONCERT_BIN, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t len = fread(out, 1, n - 1, p);
    out[len] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(outbox_prune, the_cli_runs_a_pass_and_refuses_a_bad_age, .init = setup, .fini = teardown) {
    rows(25, "old", "SENT", 7200);
    rows(5, "young", "SENT", 10);
    frontier_past_all();
    char out[1024];
    cr_assert_eq(concert_prune("--older-than 0", out, sizeof out), 2, "%s", out);
    cr_assert_eq(concert_prune("--older-than soon", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "usage:"), "%s", out);
    cr_assert_eq(count("SELECT count(*) FROM outbox"), 30, "a refused prune deletes nothing");
    cr_assert_eq(concert_prune("", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "pruned: 0 SENT row(s) sent more than 604800 s ago"), "the default is 7 days: %s", out);
    cr_assert_eq(concert_prune("--older-than 3600", out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "pruned: 25 SENT row(s) sent more than 3600 s ago"), "%s", out);
    cr_assert_eq(count("SELECT count(*) FROM outbox"), 5);
}
