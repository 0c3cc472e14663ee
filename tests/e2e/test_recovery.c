/* docs/recovery.md's steps, each run as written against the whole pipeline
 * (`concert up` on the test cluster and a fresh database), with traffic
 * through HTTP before and after each step and the invariants and the
 * comparison with the topics at the end of each:
 *
 *   compare       `concert replay read-models --into X --compare` says equal;
 *                 a balance changed by hand is found, named, exit 1
 *   processors    `concert replay processor --role wallet|concert` rebuild
 *                 a running instance's stores under `concert up`
 *   disk lost     a processor's stores deleted and the process killed: the
 *                 restarted one rebuilds them from its topic
 *   read models   `--reset` refused while a projector runs; with `concert
 *                 up` stopped it empties them, and the restarted projector
 *                 rebuilds them from the topics */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/ct_test_eventually.h"
#include "../support/ct_test_pipeline.h"

#define ADMIN_KEY "recovery-admin-key"
#define JSON_CT "Content-Type: application/json"
#define ADMIN_H "Authorization: Bearer " ADMIN_KEY

static ct_test_pipeline pl;
static char check_db[80], concert[96];
static int64_t charged[4];
static char start_sql[8192]; /* puts back where this run's projector started */
static int journeys;

static void setup(void) {
    ct_test_pipeline_prepare(&pl, "recovery", ADMIN_KEY);
    snprintf(check_db, sizeof check_db, "ct_test_recovery_check_%s", pl.run);
    ct_test_projector_replay_db(&pl.cfg, pl.db, check_db);
    PGresult *r = PQexec(pl.db, "SELECT string_agg(format('(%L, %s, %s)', topic, partition, next_offset), ', ')"
                                " FROM projector_offsets");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pl.db));
    snprintf(start_sql, sizeof start_sql, "INSERT INTO projector_offsets (topic, partition, next_offset) VALUES %s",
             PQgetvalue(r, 0, 0));
    PQclear(r);
    ct_test_pipeline_start(&pl);
}

static void teardown(void) {
    ct_error err = {0};
    ct_pg_drop_database(&pl.cfg, check_db, &err);
    ct_test_pipeline_finish(&pl);
}

/* ---- traffic ------------------------------------------------------------------ */

static json_t *call(const char *method, const char *path, const char *const *h, const char *body, long want) {
    return ct_test_pipeline_call(&pl, method, path, h, body, want, NULL);
}

static const char *field(json_t *j, const char *k) {
    const char *v = json_string_value(json_object_get(j, k));
    cr_assert(v, "no %s", k);
    return v;
}

static void user_name(int u, char *out, size_t n) { snprintf(out, n, "fan%d-%s", u, pl.run); }

/* Each user charges, queues, holds a seat and pays for it; returns after
 * every step's outcome (Prefer: wait). */
static void traffic(const char *when) {
    const char *wait[] = {JSON_CT, "Prefer: wait=30", NULL};
    for (int u = 0; u < 4; u++) {
        char user[64], path[160], body[384];
        user_name(u, user, sizeof user);
        snprintf(path, sizeof path, "/v1/users/%s/balance/charge", user);
        json_decref(call("POST", path, wait, "{\"amount\":1500}", 200));
        charged[u] += 1500;
        snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"concert_id\":\"%s\"}", user, concert);
        json_t *t = call("POST", "/v1/queue/tokens", wait, body, 201);
        char token[128], qt[160];
        snprintf(token, sizeof token, "%s", field(t, "token"));
        json_decref(t);
        snprintf(path, sizeof path, "/v1/queue/tokens/%s", token);
        const char *lp[] = {"Prefer: wait=10", NULL};
        for (int i = 0; i < 30; i++) {
            json_t *s = call("GET", path, lp, NULL, 200);
            bool active = strcmp(field(s, "status"), "ACTIVE") == 0;
            json_decref(s);
            if (active) break;
        }
        snprintf(qt, sizeof qt, "X-Queue-Token: %s", token);
        const char *hh[] = {JSON_CT, "Prefer: wait=30", qt, NULL};
        snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"concert_id\":\"%s\",\"schedule_id\":\"1\",\"seat_no\":%d}",
                 user, concert, ++journeys);
        json_t *h = call("POST", "/v1/reservations", hh, body, 201);
        snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"reservation_id\":\"%s\"}", user, field(h, "reservation_id"));
        json_decref(h);
        json_decref(call("POST", "/v1/payments", hh, body, 200));
        charged[u] -= 1000;
    }
    /* What the pipeline says each user has is what they were charged less
     * what they paid: state from before the step carried over. */
    for (int u = 0; u < 4; u++) {
        char user[64], path[160];
        user_name(u, user, sizeof user);
        snprintf(path, sizeof path, "/v1/users/%s/balance", user);
        json_t *b = call("GET", path, NULL, NULL, 200);
        cr_assert_eq(json_integer_value(json_object_get(b, "balance")), charged[u], "%s: %s's balance", when, user);
        json_decref(b);
    }
}

static void check(const char *when) {
    traffic(when);
    ct_test_inv_check(&pl.inv, when);
    char out[320];
    snprintf(out, sizeof out, "%s/compare.log", pl.dir);
    int rc = ct_test_replay_compare(check_db, out);
    if (rc != 0) ct_test_print_log_tail(out, 5);
    cr_assert_eq(rc, 0, "%s: the read models differ from the topics (exit %d)", when, rc);
}

/* The pid of `concert up`'s child `concert processor --role role`. */
static pid_t processor_pid(const char *role) {
    char path[512];
    snprintf(path, sizeof path, "%s/processors/%s-0/pid", pl.dir, role);
    pid_t p = 0;
    ct_test_eventually(30000, (p = ct_proc_read_pidfile(path)) > 0, "no running %s processor within 30 s (%s)", role,
                       path);
    return p;
}

static bool log_has(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    char line[2048];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f)) found = strstr(line, needle) != NULL;
    if (f) fclose(f);
    return found;
}

Test(recovery, the_runbook_steps_rebuild_what_they_say, .init = setup, .fini = teardown, .timeout = 900) {
    char body[512], out[320];
    snprintf(body, sizeof body,
             "{\"title\":\"recovery %s\",\"max_active\":50,\"schedules\":[{\"starts_at\":1893456000000,"
             "\"seats\":200,\"price\":1000}]}",
             pl.run);
    const char *h[] = {JSON_CT, ADMIN_H, "Prefer: wait=30", NULL};
    json_t *c = NULL;
    for (int i = 0; i < 8 && !c; i++) { /* the processors' first assignment may take a while */
        char url[256];
        snprintf(url, sizeof url, "%s/v1/admin/concerts", pl.base);
        CURL *cu = curl_easy_init();
        ct_http_resp r;
        if (ct_http_do(cu, "POST", url, h, body, &r) == 201) c = json_loads(r.body, 0, NULL);
        ct_http_free(&r);
        curl_easy_cleanup(cu);
    }
    cr_assert(c, "no concert");
    snprintf(concert, sizeof concert, "%s", field(c, "concert_id"));
    json_decref(c);

    /* Compare: equal; a hand edit is found. */
    check("before any step");
    char user[64], sql[512];
    user_name(0, user, sizeof user);
    snprintf(sql, sizeof sql, "UPDATE balances SET balance = balance + 7 WHERE user_id = '%s'", user);
    ct_test_pg_exec(pl.db, sql);
    snprintf(out, sizeof out, "%s/compare-edited.log", pl.dir);
    cr_assert_eq(ct_test_replay_compare(check_db, out), 1, "a balance changed by hand is a difference");
    cr_assert(log_has(out, "DIFFERENT") && log_has(out, "balances:") && log_has(out, user),
              "the difference names the table and the row");
    snprintf(sql, sizeof sql, "UPDATE balances SET balance = balance - 7 WHERE user_id = '%s'", user);
    ct_test_pg_exec(pl.db, sql);

    /* A running processor of each role rebuilds its stores. */
    const char *roles[] = {"wallet", "concert"};
    for (int i = 0; i < 2; i++) {
        pid_t before = processor_pid(roles[i]);
        snprintf(out, sizeof out, "%s/rebuild-%s.log", pl.dir, roles[i]);
        const char *argv[] = {CT_CONCERT_BIN, "replay", "processor", "--role", roles[i], "--timeout-s", "120", NULL};
        cr_assert_eq(ct_test_run(argv, out, 150000), 0, "replay processor --role %s", roles[i]);
        cr_assert(log_has(out, "rebuilt "), "the command says it rebuilt the %s stores", roles[i]);
        cr_assert_eq(processor_pid(roles[i]), before, "the %s processor rebuilt in place, not by a restart", roles[i]);
    }
    check("after rebuilding the running processors");

    /* Disk lost: the wallet's stores deleted under it, then the process
     * killed; its restart rebuilds them. */
    pid_t wallet = processor_pid("wallet");
    snprintf(sql, sizeof sql, "rm -rf %s/processors/wallet-0/p*", pl.dir);
    cr_assert_eq(system(sql), 0);
    kill(wallet, SIGKILL);
    ct_test_eventually(30000, processor_pid("wallet") != wallet, "the wallet processor was not restarted within 30 s");
    check("after losing the wallet's disk");

    /* Read models: reset refused while the projector runs; with the
     * pipeline stopped, emptied, and rebuilt by the restarted projector. */
    snprintf(out, sizeof out, "%s/reset.log", pl.dir);
    const char *reset[] = {CT_CONCERT_BIN, "replay", "read-models", "--reset", NULL};
    cr_assert_eq(ct_test_run(reset, out, 60000), 2, "reset while a projector is connected is refused");
    cr_assert(log_has(out, "stop them first"));
    cr_assert_gt(ct_test_pg_count(pl.db, "SELECT count(*) FROM reservations"), 0);
    ct_test_stop_clean(pl.up, "concert up", pl.log_path);
    pl.up = 0;
    cr_assert_eq(ct_test_run(reset, out, 60000), 0, "reset with the pipeline stopped");
    cr_assert_eq(ct_test_pg_count(pl.db, "SELECT count(*) FROM reservations"), 0);
    cr_assert_eq(ct_test_pg_count(pl.db, "SELECT count(*) FROM projector_offsets"), 0);
    /* The test cluster's topics hold every earlier run: the projector
     * starts where this run's did, as it would at a fresh cluster's start. */
    ct_test_pg_exec(pl.db, start_sql);
    ct_test_pipeline_start(&pl);
    ct_test_eventually(60000, ct_test_pg_count(pl.db, "SELECT count(*) FROM reservations") >= journeys,
                       "the projector rebuilt %ld of %d reservations within 60 s",
                       ct_test_pg_count(pl.db, "SELECT count(*) FROM reservations"), journeys);
    cr_assert_eq(ct_test_pg_count(pl.db, "SELECT count(*) FROM reservations"), journeys,
                 "more reservations after the rebuild than the %d made", journeys);
    check("after rebuilding the read models");
}
