/* Retention of what the projector keeps (ct_retention) against the real
 * Postgres, in a database of the test's own: only event ids, outcomes and
 * notifications delivered or last due longer ago than the retention go,
 * oldest first, at most a slice's rows per table; undelivered notifications
 * a sender still retries stay; bad arguments change nothing; `concert
 * projector` runs a pass when it starts. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/ct_test_eventually.h"
#include "../support/ct_test_kafka.h"
#include "../support/ct_test_pg.h"
#include "../support/ct_test_projector.h"
#include "ct_log.h"
#include "ct_retention.h"

static ct_config cfg;
static char run[32], dir[256], dbname[64];
static PGconn *db;

static void setup(void) {
    ct_test_setup_run(&cfg, "retention", run, sizeof run, dir, sizeof dir);
    snprintf(dbname, sizeof dbname, "ct_test_retention_%s", run);
    db = ct_test_pg_database(&cfg, dbname);
}

static void teardown(void) {
    ct_test_pg_drop(db, &cfg, dbname);
    ct_test_cleanup_run(dir);
}

static void exec(const char *sql) { ct_test_pg_exec(db, sql); }

static long count(const char *sql) { return ct_test_pg_count(db, sql); }

/* n rows of each table written age_s ago, named `what`-i; notifications
 * delivered then too unless `unsent` (then due since, never tried). */
static void rows(int n, const char *what, int age_s, bool unsent) {
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO projected_events (id, applied_at)"
             " SELECT '%s-' || g, now() - make_interval(secs => %d) FROM generate_series(1, %d) g",
             what, age_s, n);
    exec(sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO commands (command_id, type, status, result, event_id, completed_at)"
             " SELECT '%s-' || g, 'BalanceCharged', 'SUCCEEDED', '{}', 'e-%s-' || g,"
             "  now() - make_interval(secs => %d) FROM generate_series(1, %d) g",
             what, what, age_s, n);
    exec(sql);
    snprintf(sql, sizeof sql,
             "INSERT INTO slack_notifications (kind, text, created_at, next_attempt_at, sent_at)"
             " SELECT 'test', '%s-' || g, now() - make_interval(secs => %d), now() - make_interval(secs => %d),"
             "  CASE WHEN %d = 0 THEN now() - make_interval(secs => %d) END FROM generate_series(1, %d) g",
             what, age_s, age_s, unsent ? 1 : 0, age_s, n);
    exec(sql);
}

static long left(const char *what) {
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM projected_events WHERE id LIKE '%s-%%')"
             " + (SELECT count(*) FROM commands WHERE command_id LIKE '%s-%%')"
             " + (SELECT count(*) FROM slack_notifications WHERE text LIKE '%s-%%')",
             what, what, what);
    return count(sql);
}

/* One slice with a retention of an hour, which must succeed. */
static void slice(int limit, ct_retention_counts *d, bool *more) {
    ct_error err = {0};
    cr_assert_eq(ct_retention_prune_slice(db, 3600, limit, d, more, &err), 0, "%s %s", err.msg, err.detail);
}

Test(retention, only_rows_older_than_the_retention_go_and_retried_notifications_stay, .init = setup, .fini = teardown) {
    rows(12, "old", 7200, false);
    rows(5, "young", 60, false);
    rows(4, "unsent", 7200, true);
    rows(3, "waiting", 60, true);
    /* written as long ago, but a sender retries them (next try ahead) */
    exec("INSERT INTO slack_notifications (kind, text, created_at, attempts, next_attempt_at)"
         " SELECT 'test', 'retried-' || g, now() - interval '2 hours', 9, now() + interval '1 minute'"
         " FROM generate_series(1, 2) g");
    ct_retention_counts d = {0};
    bool more = true;
    slice(1000, &d, &more);
    cr_expect_eq(d.events, 12 + 4);
    cr_expect_eq(d.commands, 12 + 4);
    cr_expect_eq(d.notifications, 12 + 4, "delivered and never-tried notifications past the retention go");
    cr_expect(!more);
    cr_expect_eq(left("old"), 0);
    cr_expect_eq(left("unsent"), 0);
    cr_expect_eq(left("young"), 3 * 5);
    cr_expect_eq(left("waiting"), 3 * 3);
    cr_expect_eq(count("SELECT count(*) FROM slack_notifications WHERE text LIKE 'retried-%' AND sent_at IS NULL"), 2,
                 "a notification its sender still retries stays");
    d = (ct_retention_counts){0};
    slice(1000, &d, &more);
    cr_expect_eq(d.events + d.commands + d.notifications, 0, "a second slice found more");
}

Test(retention, a_slice_takes_at_most_its_limit_oldest_first, .init = setup, .fini = teardown) {
    rows(10, "older", 9000, false);
    rows(15, "old", 7200, false);
    ct_retention_counts d = {0};
    bool more = false;
    slice(10, &d, &more);
    cr_expect_eq(d.events, 10);
    cr_expect_eq(d.commands, 10);
    cr_expect_eq(d.notifications, 10);
    cr_expect(more, "a full slice must say more may be due");
    cr_expect_eq(left("older"), 0, "the oldest rows go first");
    cr_expect_eq(left("old"), 3 * 15);
    slice(10, &d, &more);
    cr_expect(more);
    slice(10, &d, &more);
    cr_expect(!more);
    cr_expect_eq(d.events, 25, "the counts add up over slices");
    cr_expect_eq(left("old"), 0);
}

Test(retention, bad_arguments_change_nothing, .init = setup, .fini = teardown) {
    rows(3, "old", 7200, false);
    ct_retention_counts d = {0};
    bool more = true;
    ct_error err = {0};
    cr_expect_eq(ct_retention_prune_slice(db, 3600, 0, &d, &more, &err), -1);
    cr_expect(strstr(err.msg, "out of range"), "%s", err.msg);
    cr_expect_eq(ct_retention_prune_slice(db, 0, 10, &d, &more, &err), -1);
    cr_expect_eq(ct_retention_prune_slice(db, 3600, 100001, &d, &more, &err), -1);
    cr_expect(!more);
    cr_expect_eq(d.events + d.commands + d.notifications, 0);
    cr_expect_eq(left("old"), 3 * 3);
}

Test(retention, the_projector_deletes_what_is_past_the_retention_when_it_starts, .init = setup, .fini = teardown,
     .timeout = 120) {
    ct_test_projector_start_at_ends(&cfg, db);
    rows(50, "old", 7200, false);
    rows(7, "young", 60, false);
    setenv("CONCERT_PROJECTOR_RETENTION_S", "3600", 1);
    setenv("CONCERT_OUTBOX_RETENTION_S", "3600", 1);
    char group[64], log_path[320];
    snprintf(group, sizeof group, "ct-test-retention-%s", run);
    snprintf(log_path, sizeof log_path, "%s/projector.log", dir);
    setenv("CONCERT_LOG_LEVEL", "info", 1);
    pid_t pj = ct_test_projector_spawn(group, run, log_path);
    long old = -1;
    ct_test_eventually(60000, (old = left("old")) == 0, "%ld old rows left after 60 s", old);
    ct_test_stop_clean(pj, "projector", log_path);
    unsetenv("CONCERT_PROJECTOR_RETENTION_S");
    unsetenv("CONCERT_OUTBOX_RETENTION_S");
    cr_expect_eq(left("young"), 3 * 7);
    FILE *f = fopen(log_path, "r");
    cr_assert(f);
    char line[1024];
    bool logged = false;
    while (fgets(line, sizeof line, f))
        logged |= strstr(line, "retention: deleted 50 event ids, 50 command outcomes, 50 sent notifications") != NULL;
    fclose(f);
    cr_expect(logged, "the pass was not logged with its counts");
}
