/* The read API and Prefer: wait against the real Postgres, no Kafka:
 * `concert ingress` runs as a child on a database of the test's own; the
 * test writes read-model rows and `commands` outcomes as the projector
 * would (and NOTIFYs command_done), then checks every GET endpoint's JSON,
 * pages, 404s and 400s, the queue position and estimated wait (and that
 * the token read's kept plans, made on an empty or short queue, still probe
 * indexes, and only the queue's ends, once it is full; and that tokens read
 * in one set answer as each read alone), and that a waiting write is answered with its
 * outcome's status as soon as the outcome is committed: through the
 * NOTIFY, through the check made when the wait begins (outcome already
 * there), after a listener reconnect, or with 202 when N runs out; and that
 * a token read with Prefer: wait is held while the token waits and answered
 * when it is admitted (the NOTIFY carries the token; fans admitted together
 * each get their own token back), when the admission came first, or when N
 * runs out. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/ct_test_eventually.h"
#include "../support/ct_test_http.h"
#include "../support/ct_test_kafka.h"
#include "../support/ct_test_pg.h"
#include "ct_proc.h"

#define ADMIN "Authorization: Bearer test-admin-key"
#define JSON "Content-Type: application/json"
#define C1 "0000000000000000000000c1"
#define C2 "0000000000000000000000c2"
#define C3 "0000000000000000000000c3"
#define TK(n) "TOKEN" n "AAAAAAAAAAAAAAAA" /* 22 chars with n of one char */
#define RES(n) C1 "_RESERVATION" n "AAAAAAAAAA"

static ct_config cfg;
static char run[32], dir[96], base[64], log_path[160];
static PGconn *db;
static pid_t ingress;
static CURL *curl;

static void setup(void) {
    ct_test_setup_run(&cfg, "read_api", run, sizeof run, dir, sizeof dir);
    char name[64];
    snprintf(name, sizeof name, "ct_test_read_api_%s", run);
    db = ct_test_pg_database(&cfg, name);
    setenv("CONCERT_ADMIN_KEY", "test-admin-key", 1);
    snprintf(log_path, sizeof log_path, "%s/ingress.log", dir);
    ingress = ct_test_spawn_http("ingress", "/healthz", 20000, base, sizeof base, log_path);
    curl = curl_easy_init();
}

static void setup_no_waiters(void) {
    setenv("CONCERT_INGRESS_WAITERS_MAX", "0", 1);
    setup();
    unsetenv("CONCERT_INGRESS_WAITERS_MAX");
}

static void teardown(void) {
    if (curl) curl_easy_cleanup(curl);
    if (ingress > 0) ct_test_stop_clean(ingress, "the ingress", log_path);
    char name[64];
    snprintf(name, sizeof name, "ct_test_read_api_%s", run);
    ct_test_pg_drop(db, &cfg, name);
    ct_test_cleanup_run(dir);
}

static long get(const char *path, ct_http_resp *r) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    return ct_http_do(curl, "GET", url, NULL, NULL, r);
}

/* Whether GET /metrics shows `text`. */
static bool metrics_show(const char *text) {
    ct_http_resp r;
    cr_assert_eq(get("/metrics", &r), 200);
    bool shown = strstr(r.body, text) != NULL;
    ct_http_free(&r);
    return shown;
}

static void sql(const char *q) { ct_test_pg_exec(db, q); }

static void sqlp(const char *q, int n, const char *const *p) {
    PGresult *r = PQexecParams(db, q, n, NULL, p, NULL, NULL, 0);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", q,
              PQresultErrorMessage(r));
    PQclear(r);
}

static json_t *get_json(const char *path, long want) {
    ct_http_resp r;
    long st = get(path, &r);
    cr_assert_eq(st, want, "GET %s: %ld %s", path, st, r.body);
    json_error_t e;
    json_t *j = json_loads(r.body, 0, &e);
    cr_assert_not_null(j, "GET %s: not JSON: %s", path, r.body);
    ct_http_free(&r);
    return j;
}

static void expect_error(const char *path, long status, const char *code) {
    json_t *j = get_json(path, status);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")), code, "GET %s", path);
    json_decref(j);
}

#define JI(j, k) json_integer_value(json_object_get((j), (k)))
#define JS(j, k) json_string_value(json_object_get((j), (k)))

static void seed(void) {
    sql("INSERT INTO concerts VALUES"
        " ('" C1 "', 'One', 3, 600000, 300000, 2, 1000),"
        " ('" C2 "', 'Two', 100, 600000, 300000, 1, 2000),"
        " ('" C3 "', 'Three', 100, 600000, 300000, 1, 3000)");
    sql("INSERT INTO schedules VALUES ('" C1 "', '1', 1900000000000, 10, 50000), ('" C1
        "', '2', 1900000100000, 3, 70000),"
        " ('" C2 "', '1', 1900000000000, 5, 1000), ('" C3 "', '1', 1900000000000, 5, 1000)");
    /* clang-format off */
    sql("INSERT INTO seats VALUES ('" C1 "', '1', 2, 'HELD', '" RES("1") "', 'alice', 400000),"
        " ('" C1 "', '1', 5, 'SOLD', '" RES("2") "', 'alice', NULL),"
        " ('" C1 "', '1', 7, 'PAYMENT_PENDING', '" RES("3") "', 'bob', NULL)");
    sql("INSERT INTO reservations VALUES"
        " ('" RES("1") "', '" C1 "', '1', 2, 'alice', '" TK("1") "', 'HELD', 50000, 400000, NULL, 100000, 100000),"
        " ('" RES("2") "', '" C1 "', '1', 5, 'alice', '" TK("1") "', 'CONFIRMED', 50000, 400000, 'PAY2', 90000, 95000),"
        " ('" RES("4") "', '" C1 "', '1', 9, 'alice', '" TK("1") "', 'EXPIRED', 50000, 80000, NULL, 20000, 80000),"
        " ('" RES("3") "', '" C1 "', '1', 7, 'bob', '" TK("2") "', 'PAYMENT_PENDING', 50000, 400000, 'PAY3', 90000, 96000)");
    sql("INSERT INTO payments VALUES ('PAY2', '" RES("2") "', 'alice', '" C1 "', 50000, 'SUCCEEDED', NULL, 95000),"
        " ('PAY3', '" RES("3") "', 'bob', '" C1 "', 50000, 'PENDING', NULL, 96000)");
    sql("INSERT INTO balances VALUES ('alice', 5000, 95000)");
    /* Concert 1's queue at logical time 100000: three admissions in the last
     * minute (50000, 80000, 100000), one long before (10000), three waiting. */
    sql("INSERT INTO queue_tokens VALUES"
        " ('" TK("1") "', '" C1 "', 'alice', 1, 'ACTIVE', 40000, 50000, 650000, NULL),"
        " ('" TK("2") "', '" C1 "', 'bob', 2, 'ACTIVE', 41000, 80000, 680000, NULL),"
        " ('" TK("3") "', '" C1 "', 'carol', 3, 'ACTIVE', 42000, 100000, 700000, NULL),"
        " ('" TK("0") "', '" C1 "', 'dave', 0, 'EXPIRED', 5000, 10000, 610000, 610000),"
        " ('" TK("5") "', '" C1 "', 'erin', 4, 'WAITING', 90000, NULL, NULL, NULL),"
        " ('" TK("6") "', '" C1 "', 'frank', 5, 'WAITING', 95000, NULL, NULL, NULL),"
        " ('" TK("7") "', '" C1 "', 'grace', 6, 'WAITING', 99000, NULL, NULL, NULL),"
        " ('" TK("8") "', '" C2 "', 'heidi', 1, 'WAITING', 99000, NULL, NULL, NULL)");
    /* clang-format on */
}

Test(read_api, a_hot_queue_counts_every_admission_of_the_minute, .init = setup, .fini = teardown) {
    /* 250 admissions long before, then 300 in the last half second, pairs
     * of them in the same millisecond (at both ends of the window), and one
     * fan waiting. Every one of the 300 counts: a count capped at 200 and
     * extrapolated from the latest 200 said 30,000. */
    sql("INSERT INTO queue_tokens (token, concert_id, user_id, seq, status, issued_ts, activated_ts, active_until)"
        " SELECT 'Q' || lpad(g::text, 21, '0'), '0000000000000000000000c3', 'u' || g, g, 'DONE', 9000,"
        "  CASE WHEN g <= 250 THEN 10000 + (g + 1) / 2 ELSE 99000 + (g - 251) / 2 END, 700000"
        " FROM generate_series(1, 550) g");
    sql("INSERT INTO queue_tokens (token, concert_id, user_id, seq, status, issued_ts)"
        " VALUES ('Q' || lpad('551', 21, '0'), '0000000000000000000000c3', 'u551', 551, 'WAITING', 99500)");
    json_t *j = get_json("/v1/queue/tokens/Q000000000000000000551", 200);
    cr_expect_str_eq(JS(j, "status"), "WAITING");
    cr_expect_eq(JI(j, "as_of_ts"), 99500);
    cr_expect_eq(JI(j, "admitted_last_minute"), 300, "every admission in (39500, 99500]");
    cr_expect_eq(JI(j, "position"), 1);
    cr_expect_eq(JI(j, "estimated_wait_ms"), 200, "one place at 300 a minute");
    json_decref(j);
}

/* The value of `column` of queue_tokens in this session's statistics not
 * yet reported (this transaction's and maybe some before it). */
static long token_scans(const char *column) {
    char q[160];
    snprintf(q, sizeof q, "SELECT coalesce(sum(%s), 0) FROM pg_stat_xact_user_tables WHERE relname = 'queue_tokens'",
             column);
    return ct_test_pg_count(db, q);
}

/* Seqs from..to of a queue whose first 30,000 were admitted a second
 * apart and the next 30,000 wait, issued with the last admission. */
static void fill_queue(int from, int to) {
    char q[1024];
    snprintf(q, sizeof q,
             "INSERT INTO queue_tokens (token, concert_id, user_id, seq, status, issued_ts, activated_ts, active_until)"
             " SELECT 'P' || lpad(g::text, 21, '0'), '0000000000000000000000c3', 'u' || g, g,"
             "  CASE WHEN g <= 30000 THEN 'DONE' ELSE 'WAITING' END, least(g, 30000) * 1000,"
             "  CASE WHEN g <= 30000 THEN g * 1000 END, CASE WHEN g <= 30000 THEN g * 1000 + 600000 END"
             " FROM generate_series(%d, %d) g",
             from, to);
    sql(q);
}

/* Entries of the waiting index read by this session's statements so far
 * (Postgres 15 keeps no per-transaction index counters: the session's are
 * flushed, then read in a transaction of their own). */
static long waiting_entries_read(void) {
    sql("SELECT pg_stat_force_next_flush()");
    return ct_test_pg_count(db, "SELECT coalesce(sum(idx_tup_read), 0) FROM pg_stat_user_indexes"
                                " WHERE indexrelname = 'queue_tokens_waiting'");
}

/* Reads a waiting token of fill_queue's queue: its position, the minute's
 * 60 admissions, "now" at the latest activation. */
static void expect_queue_read(const char *token, long position) {
    char q[256];
    snprintf(q, sizeof q, "SELECT queue_position, admitted, as_of_ts FROM concert_token_read_many(ARRAY['%s'], 60000)",
             token);
    PGresult *r = PQexec(db, q);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    cr_assert_eq(PQntuples(r), 1);
    cr_expect_eq(atol(PQgetvalue(r, 0, 0)), position, "%s's place in line", token);
    cr_expect_eq(atol(PQgetvalue(r, 0, 1)), 60, "one admission a second");
    cr_expect_eq(atol(PQgetvalue(r, 0, 2)), 30000000, "the latest activation");
    PQclear(r);
}

Test(read_api, a_token_read_probes_the_head_of_the_queue_instead_of_walking_it, .init = setup, .fini = teardown) {
    /* The session plans the head's probe while the statistics show a short
     * queue (as when a hot concert opens); then 30,000 fans queue up. */
    sql("ALTER TABLE queue_tokens SET (autovacuum_enabled = false)");
    fill_queue(1, 30001);
    sql("ANALYZE queue_tokens");
    sql("SELECT * FROM concert_token_read_many(ARRAY['P000000000000000030001'], 60000)");
    fill_queue(30002, 60000);
    long before = waiting_entries_read();
    expect_queue_read("P000000000000000060000", 30000);
    long read = waiting_entries_read() - before;
    /* the head, the tail, and nothing in between */
    cr_expect_leq(read, 10, "the read walked %ld waiting entries of 30,000", read);
}

Test(read_api, a_token_read_planned_on_an_empty_queue_still_probes_indexes_once_it_fills, .init = setup,
     .fini = teardown) {
    /* A session keeps the token read's plans (migrations 0014, 0015). They are
     * made here while the statistics say the table is empty, and no
     * analyze may replan them once it fills. */
    sql("ALTER TABLE queue_tokens SET (autovacuum_enabled = false)");
    sql("ANALYZE queue_tokens");
    sql("SELECT * FROM concert_token_read_many(ARRAY['nobody'], 60000)");
    fill_queue(1, 60000);
    sql("BEGIN");
    long seq_before = token_scans("seq_scan"), idx_before = token_scans("idx_scan");
    expect_queue_read("P000000000000000030002", 2);
    long seq_scans = token_scans("seq_scan") - seq_before, idx_scans = token_scans("idx_scan") - idx_before;
    sql("COMMIT");
    cr_expect_eq(seq_scans, 0, "the kept plans scan the table whole");
    cr_expect_geq(idx_scans, 5, "the token and the queue's ends are index probes");
}

Test(read_api, catalog_schedules_and_seat_maps_page_through_the_read_models, .init = setup, .fini = teardown) {
    seed();
    json_t *j = get_json("/v1/concerts?limit=2", 200);
    json_t *cs = json_object_get(j, "concerts");
    cr_assert_eq(json_array_size(cs), 2);
    cr_expect_str_eq(JS(json_array_get(cs, 0), "concert_id"), C1);
    cr_expect_str_eq(JS(json_array_get(cs, 0), "title"), "One");
    cr_expect_eq(JI(json_array_get(cs, 0), "max_active"), 3);
    cr_expect_str_eq(JS(j, "next_after"), C2);
    json_decref(j);
    j = get_json("/v1/concerts?limit=2&after=" C2, 200);
    cr_assert_eq(json_array_size(json_object_get(j, "concerts")), 1);
    cr_expect_str_eq(JS(json_array_get(json_object_get(j, "concerts"), 0), "concert_id"), C3);
    cr_expect(json_is_null(json_object_get(j, "next_after")));
    json_decref(j);
    j = get_json("/v1/concerts", 200);
    cr_expect_eq(json_array_size(json_object_get(j, "concerts")), 3);
    json_decref(j);

    j = get_json("/v1/concerts/" C1 "/schedules", 200);
    json_t *ss = json_object_get(j, "schedules");
    cr_assert_eq(json_array_size(ss), 2);
    cr_expect_str_eq(JS(j, "title"), "One");
    cr_expect_str_eq(JS(json_array_get(ss, 0), "schedule_id"), "1");
    cr_expect_eq(JI(json_array_get(ss, 0), "seats"), 10);
    cr_expect_eq(JI(json_array_get(ss, 0), "seats_left"), 7);
    cr_expect_eq(JI(json_array_get(ss, 0), "price"), 50000);
    cr_expect_eq(JI(json_array_get(ss, 0), "starts_at"), 1900000000000LL);
    cr_expect_eq(JI(json_array_get(ss, 1), "seats_left"), 3);
    json_decref(j);

    j = get_json("/v1/concerts/" C1 "/schedules/1/seats", 200);
    json_t *map = json_object_get(j, "seat_map");
    cr_assert_eq(json_array_size(map), 10);
    cr_expect_eq(JI(j, "seats"), 10);
    cr_expect_eq(JI(j, "seats_left"), 7);
    const char *want[] = {"AVAILABLE",       "HELD",      "AVAILABLE", "AVAILABLE", "SOLD", "AVAILABLE",
                          "PAYMENT_PENDING", "AVAILABLE", "AVAILABLE", "AVAILABLE"};
    for (int i = 0; i < 10; i++) {
        cr_expect_eq(JI(json_array_get(map, i), "seat_no"), i + 1);
        cr_expect_str_eq(JS(json_array_get(map, i), "status"), want[i], "seat %d", i + 1);
    }
    cr_expect(json_is_null(json_object_get(j, "next_after")));
    json_decref(j);
    j = get_json("/v1/concerts/" C1 "/schedules/1/seats?limit=4", 200);
    cr_expect_eq(json_array_size(json_object_get(j, "seat_map")), 4);
    cr_expect_eq(JI(j, "next_after"), 4);
    json_decref(j);
    j = get_json("/v1/concerts/" C1 "/schedules/1/seats?limit=4&after=8", 200);
    map = json_object_get(j, "seat_map");
    cr_assert_eq(json_array_size(map), 2);
    cr_expect_eq(JI(json_array_get(map, 0), "seat_no"), 9);
    cr_expect(json_is_null(json_object_get(j, "next_after")));
    json_decref(j);
    j = get_json("/v1/concerts/" C1 "/schedules/1/seats?after=10", 200);
    cr_expect_eq(json_array_size(json_object_get(j, "seat_map")), 0);
    json_decref(j);

    expect_error("/v1/concerts/" C1 "/schedules/9/seats", 404, "NOT_FOUND");
    expect_error("/v1/concerts/00000000000000000000dead/schedules", 404, "NOT_FOUND");
    expect_error("/v1/concerts/not-hex/schedules", 400, "INVALID_ID");
    expect_error("/v1/concerts/" C1 "/schedules/a.b/seats", 400, "INVALID_ID");
    expect_error("/v1/concerts?limit=0", 400, "INVALID_QUERY");
    expect_error("/v1/concerts?limit=201", 400, "INVALID_QUERY");
    expect_error("/v1/concerts?after=zzz", 400, "INVALID_QUERY");
    expect_error("/v1/concerts/" C1 "/schedules/1/seats?after=-1", 400, "INVALID_QUERY");
}

Test(read_api, reservations_balances_and_their_pages, .init = setup, .fini = teardown) {
    seed();
    json_t *j = get_json("/v1/reservations/" RES("2"), 200);
    cr_expect_str_eq(JS(j, "status"), "CONFIRMED");
    cr_expect_str_eq(JS(j, "user_id"), "alice");
    cr_expect_eq(JI(j, "seat_no"), 5);
    cr_expect_eq(JI(j, "price"), 50000);
    cr_expect_str_eq(JS(json_object_get(j, "payment"), "status"), "SUCCEEDED");
    cr_expect_null(json_object_get(j, "token"), "the queue token is not shown");
    json_decref(j);
    j = get_json("/v1/reservations/" RES("1"), 200);
    cr_expect_str_eq(JS(j, "status"), "HELD");
    cr_expect_eq(JI(j, "hold_until"), 400000);
    cr_expect(json_is_null(json_object_get(j, "payment")));
    json_decref(j);
    expect_error("/v1/reservations/" C1 "_RESERVATION9AAAAAAAAAA", 404, "NOT_FOUND");
    expect_error("/v1/reservations/nope", 400, "INVALID_ID");

    j = get_json("/v1/users/alice/reservations?limit=2", 200);
    json_t *rs = json_object_get(j, "reservations");
    cr_assert_eq(json_array_size(rs), 2);
    cr_expect_str_eq(JS(json_array_get(rs, 0), "reservation_id"), RES("1"));
    cr_expect_str_eq(JS(json_array_get(rs, 1), "reservation_id"), RES("2"));
    cr_expect_str_eq(JS(j, "next_after"), RES("2"));
    json_decref(j);
    j = get_json("/v1/users/alice/reservations?limit=2&after=" RES("2"), 200);
    rs = json_object_get(j, "reservations");
    cr_assert_eq(json_array_size(rs), 1);
    cr_expect_str_eq(JS(json_array_get(rs, 0), "reservation_id"), RES("4"));
    cr_expect(json_is_null(json_object_get(j, "next_after")));
    json_decref(j);
    j = get_json("/v1/users/nobody/reservations", 200);
    cr_expect_eq(json_array_size(json_object_get(j, "reservations")), 0);
    json_decref(j);
    expect_error("/v1/users/al.ice/reservations", 400, "INVALID_ID");
    expect_error("/v1/users/alice/reservations?after=nope", 400, "INVALID_QUERY");

    j = get_json("/v1/users/alice/balance", 200);
    cr_expect_eq(JI(j, "balance"), 5000);
    cr_expect_eq(JI(j, "updated_ts"), 95000);
    json_decref(j);
    j = get_json("/v1/users/nobody/balance", 200);
    cr_expect_eq(JI(j, "balance"), 0, "no row: a balance of 0");
    cr_expect(json_is_integer(json_object_get(j, "balance")));
    json_decref(j);
    expect_error("/v1/users/al%20ice/balance", 400, "INVALID_ID");
}

Test(read_api, queue_position_and_wait_follow_the_observed_admission_rate, .init = setup, .fini = teardown) {
    seed();
    /* Window (40000, 100000]: 3 admissions a minute, so each place ahead
     * is 20 s. */
    json_t *j = get_json("/v1/queue/tokens/" TK("5"), 200);
    cr_expect_str_eq(JS(j, "status"), "WAITING");
    cr_expect_eq(JI(j, "position"), 1);
    cr_expect_eq(JI(j, "estimated_wait_ms"), 20000);
    cr_expect(json_is_null(json_object_get(j, "active_until")));
    json_decref(j);
    j = get_json("/v1/queue/tokens/" TK("7"), 200);
    cr_expect_eq(JI(j, "position"), 3);
    cr_expect_eq(JI(j, "estimated_wait_ms"), 60000);
    cr_expect_eq(JI(j, "admitted_last_minute"), 3);
    json_decref(j);
    j = get_json("/v1/queue/tokens/" TK("3"), 200);
    cr_expect_str_eq(JS(j, "status"), "ACTIVE");
    cr_expect_eq(JI(j, "active_until"), 700000);
    cr_expect_eq(JI(j, "position"), 0);
    json_decref(j);
    j = get_json("/v1/queue/tokens/" TK("0"), 200);
    cr_expect_str_eq(JS(j, "status"), "EXPIRED");
    cr_expect(json_is_null(json_object_get(j, "position")));
    json_decref(j);
    /* No admission seen yet: no rate, no estimate. */
    j = get_json("/v1/queue/tokens/" TK("8"), 200);
    cr_expect_eq(JI(j, "position"), 1);
    cr_expect(json_is_null(json_object_get(j, "estimated_wait_ms")), "no rate known yet");
    json_decref(j);
    /* The head is admitted: everybody moves up. */
    sql("UPDATE queue_tokens SET status = 'ACTIVE', activated_ts = 101000, active_until = 701000 WHERE token = '" TK(
        "5") "'");
    j = get_json("/v1/queue/tokens/" TK("7"), 200);
    cr_expect_eq(JI(j, "position"), 2);
    cr_expect_eq(JI(j, "admitted_last_minute"), 4);
    cr_expect_eq(JI(j, "estimated_wait_ms"), 30000);
    json_decref(j);
    expect_error("/v1/queue/tokens/" TK("9"), 404, "NOT_FOUND");
    expect_error("/v1/queue/tokens/short", 400, "INVALID_ID");
}

/* One token's row of concert_token_read_many over `tokens` (an array
 * literal), as text, or "" when it has none. */
static void token_row(const char *tokens, const char *token, char *out, size_t n) {
    const char *p[2] = {tokens, token};
    PGresult *r = PQexecParams(db,
                               "SELECT row(status, concert_id, user_id, seq, issued_ts, activated_ts, active_until,"
                               " queue_position, admitted, as_of_ts)::text"
                               " FROM concert_token_read_many($1::text[], 60000) WHERE token = $2",
                               2, NULL, p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    cr_assert_leq(PQntuples(r), 1, "one row per token");
    snprintf(out, n, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
}

Test(read_api, tokens_read_together_answer_as_each_read_alone, .init = setup, .fini = teardown) {
    seed();
    /* A concert whose queue is empty, with a token issued after its last
     * admission (its "now" is that token's issue), and one whose queue has
     * nothing at all. */
    sql("INSERT INTO queue_tokens VALUES"
        " ('" TK(
            "a") "', '" C3 "', 'ivan', 1, 'DONE', 1000, 2000, 602000, 3000),"
                 " ('" TK(
                     "b") "', '" C3 "', 'judy', 2, 'EXPIRED', 150000, NULL, NULL, 160000),"
                          " ('" TK(
                              "c") "', '0000000000000000000000c4', 'mallory', 1, 'EXPIRED', 7000, NULL, NULL, 9000)");
    static const char *const tokens[] = {TK("0"), TK("1"), TK("2"), TK("3"), TK("5"), TK("6"),
                                         TK("7"), TK("8"), TK("a"), TK("b"), TK("c")};
    const char *all = "{" TK("7") "," TK("0") "," TK("1") "," TK("2") "," TK("3") "," TK("5") "," TK("6") "," TK(
        "8") "," TK("a") "," TK("b") "," TK("c") "," TK("7") ",nobody}";
    cr_expect_eq(ct_test_pg_count(db, "SELECT count(*) FROM concert_token_read_many('{" TK("7") "," TK("5") "," TK(
                                          "7") ",nobody}', 60000)"),
                 2, "one row per token found, duplicates once");
    for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
        char alone_arr[64], alone[256], together[256];
        snprintf(alone_arr, sizeof alone_arr, "{%s}", tokens[i]);
        token_row(alone_arr, tokens[i], alone, sizeof alone);
        token_row(all, tokens[i], together, sizeof together);
        cr_expect_neq(alone[0], '\0', "%s is found", tokens[i]);
        cr_expect_str_eq(together, alone, "%s read with ten others", tokens[i]);
    }
    /* What they share is each concert's own. */
    char row[256];
    token_row(all, TK("7"), row, sizeof row);
    cr_expect_str_eq(row, "(WAITING," C1 ",grace,6,99000,,,3,3,100000)");
    token_row(all, TK("8"), row, sizeof row);
    cr_expect_str_eq(row, "(WAITING," C2 ",heidi,1,99000,,,1,0,99000)");
    token_row(all, TK("a"), row, sizeof row);
    cr_expect_str_eq(row, "(DONE," C3 ",ivan,1,1000,2000,602000,,1,2000)");
    token_row(all, TK("b"), row, sizeof row);
    cr_expect_str_eq(row, "(EXPIRED," C3 ",judy,2,150000,,,,0,150000)", "its own issue is its queue's now");
    token_row(all, TK("c"), row, sizeof row);
    cr_expect_str_eq(row, "(EXPIRED,0000000000000000000000c4,mallory,1,7000,,,,0,7000)");
}

/* ---- command status and Prefer: wait -------------------------------------- */

static void complete(const char *command_id, const char *status, const char *reason, const char *result, bool notify) {
    const char *p[4] = {command_id, status, reason, result};
    sql("BEGIN");
    sqlp("INSERT INTO commands (command_id, type, status, reason, result, event_id)"
         " VALUES ($1, CASE WHEN $2 = 'SUCCEEDED' THEN 'Done' ELSE 'Rejected' END, $2, $3, $4::jsonb, $1 || ':0')",
         4, p);
    if (notify) {
        /* Other ids in the same payload, as a projector batch would send. */
        const char *np[1] = {command_id};
        sqlp("SELECT pg_notify('command_done', '00000000-0000-4000-8000-00000000ffff,' || $1 || ',x')", 1, np);
    }
    sql("COMMIT");
}

/* POSTs a charge of 700 to alice; returns the 202 body ({command_id, status_url}). */
static json_t *charge_alice_700(void) {
    ct_http_resp r;
    char url[128];
    snprintf(url, sizeof url, "%s/v1/users/alice/balance/charge", base);
    const char *h[] = {JSON, NULL};
    cr_assert_eq(ct_http_do(curl, "POST", url, h, "{\"amount\":700}", &r), 202, "%s", r.body);
    json_t *a = json_loads(r.body, 0, NULL);
    ct_http_free(&r);
    cr_assert(a, "202 body is JSON");
    return a;
}

Test(read_api, command_status_shows_the_outcome_once_recorded, .init = setup, .fini = teardown) {
    json_t *a = charge_alice_700();
    char path[96];
    snprintf(path, sizeof path, "/v1/commands/%s", JS(a, "command_id"));
    json_t *j = get_json(path, 200);
    cr_expect_str_eq(JS(j, "status"), "ACCEPTED");
    cr_expect_str_eq(JS(j, "type"), "ChargeBalance");
    json_decref(j);
    complete(JS(a, "command_id"), "SUCCEEDED", NULL, "{\"user_id\":\"alice\",\"balance\":700}", false);
    j = get_json(path, 200);
    cr_expect_str_eq(JS(j, "status"), "SUCCEEDED");
    cr_expect_str_eq(JS(j, "type"), "ChargeBalance");
    cr_expect_eq(JI(json_object_get(j, "result"), "balance"), 700);
    cr_expect(json_is_null(json_object_get(j, "reason")));
    json_decref(j);
    /* An outcome whose outbox row is gone (or never was here) still shows. */
    complete("00000000-0000-4000-8000-000000000042", "REJECTED", "SEAT_TAKEN", "{\"seat_no\":3}", false);
    j = get_json("/v1/commands/00000000-0000-4000-8000-000000000042", 200);
    cr_expect_str_eq(JS(j, "status"), "REJECTED");
    cr_expect_str_eq(JS(j, "reason"), "SEAT_TAKEN");
    json_decref(j);
    expect_error("/v1/commands/00000000-0000-4000-8000-000000000043", 404, "NOT_FOUND");
    expect_error("/v1/commands/nope", 400, "INVALID_ID");
    json_decref(a);
}

Test(read_api, a_command_the_relay_gave_up_on_reads_as_failed, .init = setup, .fini = teardown) {
    json_t *a = charge_alice_700();
    const char *id = JS(a, "command_id");
    char q[320], path[96];
    /* What the relay writes after its last attempt. */
    snprintf(q, sizeof q,
             "UPDATE outbox SET status = 'FAILED', attempts = 10, last_error = 'broker down', retry_at = 'infinity'"
             " WHERE command_id = '%s'",
             id);
    sql(q);
    snprintf(path, sizeof path, "/v1/commands/%s", id);
    json_t *j = get_json(path, 200);
    cr_expect_str_eq(JS(j, "status"), "FAILED", "a FAILED row has no outcome coming: not ACCEPTED");
    cr_expect_str_eq(JS(j, "outbox_status"), "FAILED");
    cr_expect_str_eq(JS(j, "last_error"), "broker down");
    cr_expect_eq(JI(j, "attempts"), 10);
    json_decref(j);
    /* Retried and published, then decided: the outcome wins. */
    snprintf(q, sizeof q, "UPDATE outbox SET status = 'SENT', sent_at = now(), retry_at = NULL WHERE command_id = '%s'",
             id);
    sql(q);
    complete(id, "SUCCEEDED", NULL, "{\"user_id\":\"alice\",\"balance\":700}", false);
    j = get_json(path, 200);
    cr_expect_str_eq(JS(j, "status"), "SUCCEEDED");
    json_decref(j);
    json_decref(a);
}

typedef struct poster {
    char url[256];
    const char *headers[6];
    const char *method; /* NULL: POST */
    const char *body;
    long status;
    char *resp;
    double seconds;
} poster;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *post_thread(void *arg) {
    poster *p = arg;
    CURL *c = curl_easy_init();
    ct_http_resp r;
    double t0 = now_s();
    p->status = ct_http_do(c, p->method ? p->method : "POST", p->url, p->headers, p->body, &r);
    p->seconds = now_s() - t0;
    p->resp = r.body;
    curl_easy_cleanup(c);
    return NULL;
}

/* Whether the request with Idempotency-Key key is committed; if so, its
 * command id into out. */
static bool command_found(const char *key, char out[64]) {
    const char *p[1] = {key};
    /* Keys are stored in their caller's scope: <user>/<key>. */
    PGresult *r = PQexecParams(db, "SELECT command_id::text FROM idempotency_keys WHERE key LIKE '%/' || $1", 1, NULL,
                               p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    bool found = PQntuples(r) == 1;
    if (found) snprintf(out, 64, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return found;
}

/* The command id of the request with Idempotency-Key key, once committed. */
static void command_of_key(const char *key, char out[64]) {
    ct_test_eventually(3000, command_found(key, out), "no command for key %s within 3 s", key);
}

typedef struct wait_case {
    const char *path, *token_header, *body, *outcome, *reason;
    long want;
    const char *want_field;
} wait_case;

Test(read_api, a_waiting_write_is_answered_with_its_outcome_when_notified, .init = setup, .fini = teardown) {
    const wait_case cases[] = {
        {"/v1/queue/tokens", NULL, "{\"user_id\":\"u1\",\"concert_id\":\"" C1 "\"}", "SUCCEEDED", NULL, 201, "token"},
        {"/v1/reservations", "X-Queue-Token: " TK("1"),
         "{\"user_id\":\"u1\",\"concert_id\":\"" C1 "\",\"schedule_id\":\"1\",\"seat_no\":2}", "REJECTED", "SEAT_TAKEN",
         409, NULL},
        {"/v1/payments", "X-Queue-Token: " TK("1"), "{\"user_id\":\"u1\",\"reservation_id\":\"" RES("1") "\"}",
         "REJECTED", "INSUFFICIENT_BALANCE", 402, NULL},
        {"/v1/reservations", "X-Queue-Token: " TK("1"),
         "{\"user_id\":\"u1\",\"concert_id\":\"" C1 "\",\"schedule_id\":\"1\",\"seat_no\":3}", "REJECTED",
         "TOKEN_NOT_ACTIVE", 403, NULL},
        {"/v1/users/u1/balance/charge", NULL, "{\"amount\":500}", "SUCCEEDED", NULL, 200, "command_id"},
        {"/v1/admin/concerts", ADMIN, "{\"title\":\"t\",\"schedules\":[{\"starts_at\":1,\"seats\":3,\"price\":1}]}",
         "SUCCEEDED", NULL, 201, "concert_id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const wait_case *c = &cases[i];
        char key[64], keyh[96], id[64];
        snprintf(key, sizeof key, "wait-%zu", i);
        snprintf(keyh, sizeof keyh, "Idempotency-Key: %s", key);
        poster p = {.headers = {JSON, "Prefer: wait=5", keyh, c->token_header, NULL}, .body = c->body};
        snprintf(p.url, sizeof p.url, "%s%s", base, c->path);
        pthread_t t;
        pthread_create(&t, NULL, post_thread, &p);
        command_of_key(key, id);
        usleep(300 * 1000); /* past the check made when the wait begins: the NOTIFY must do it */
        complete(id, c->outcome, c->reason, "{\"ok\":true}", true);
        pthread_join(t, NULL);
        cr_expect_eq(p.status, c->want, "case %zu %s: %ld %s", i, c->path, p.status, p.resp);
        cr_expect_lt(p.seconds, 2.5, "case %zu: answered after %.2f s, not at once", i, p.seconds);
        json_t *j = json_loads(p.resp, 0, NULL);
        cr_assert_not_null(j, "case %zu: %s", i, p.resp);
        if (c->want_field) {
            cr_expect_str_eq(JS(j, "status"), "SUCCEEDED", "case %zu", i);
            cr_expect_not_null(json_object_get(j, c->want_field), "case %zu: %s", i, p.resp);
            cr_expect_str_eq(JS(j, "command_id"), id, "case %zu", i);
            cr_expect(json_is_true(json_object_get(json_object_get(j, "result"), "ok")), "case %zu: %s", i, p.resp);
        } else {
            cr_expect_str_eq(JS(json_object_get(j, "error"), "code"), c->reason, "case %zu: %s", i, p.resp);
            cr_expect_str_eq(JS(j, "command_id"), id, "case %zu", i);
        }
        json_decref(j);
        free(p.resp);
    }
    ct_http_resp r;
    cr_assert_eq(get("/metrics", &r), 200);
    cr_expect(strstr(r.body, "concert_ingress_waiters 0\n"), "%s", r.body);
    cr_expect(strstr(r.body, "concert_ingress_wait_outcomes_total 6\n"), "%s", r.body);
    ct_http_free(&r);
}

/* Admits a waiting token as the projector would: the row, then the token in
 * a command_done NOTIFY of the same transaction (notify: false leaves the
 * NOTIFY out, as if it went by before anybody listened). */
static void admit(const char *token, bool notify) {
    const char *p[1] = {token};
    sql("BEGIN");
    sqlp("UPDATE queue_tokens SET status = 'ACTIVE', activated_ts = 102000, active_until = 702000 WHERE token = $1", 1,
         p);
    if (notify) sqlp("SELECT pg_notify('command_done', '00000000-0000-4000-8000-00000000ffff,' || $1)", 1, p);
    sql("COMMIT");
}

/* A read of token with the Prefer header prefer, for post_thread. */
static poster token_read(const char *token, const char *prefer) {
    poster p = {.headers = {prefer, NULL}, .method = "GET"};
    snprintf(p.url, sizeof p.url, "%s/v1/queue/tokens/%s", base, token);
    return p;
}

Test(read_api, a_waiting_token_read_is_answered_when_the_token_is_admitted, .init = setup, .fini = teardown) {
    seed();
    poster p = token_read(TK("6"), "Prefer: wait=5");
    pthread_t t;
    pthread_create(&t, NULL, post_thread, &p);
    usleep(400 * 1000); /* past the first read and the check made when the wait begins */
    cr_expect_eq(ct_test_pg_count(db, "SELECT count(*) FROM queue_tokens WHERE status = 'WAITING'"), 4);
    admit(TK("6"), true);
    pthread_join(t, NULL);
    cr_expect_eq(p.status, 200, "%s", p.resp);
    cr_expect(p.seconds >= 0.3 && p.seconds < 2.5, "answered after %.2f s: held, then answered at the NOTIFY",
              p.seconds);
    json_t *j = json_loads(p.resp, 0, NULL);
    cr_assert_not_null(j, "%s", p.resp);
    cr_expect_str_eq(JS(j, "status"), "ACTIVE", "%s", p.resp);
    cr_expect_eq(JI(j, "active_until"), 702000);
    json_decref(j);
    free(p.resp);
    /* Admitted with no NOTIFY heard: the read answers at once when the token
     * is no longer WAITING, and a wait that runs out answers WAITING. */
    admit(TK("7"), false);
    poster q = token_read(TK("7"), "Prefer: wait=5");
    post_thread(&q);
    cr_expect_eq(q.status, 200, "%s", q.resp);
    cr_expect_lt(q.seconds, 1.0, "answered after %.2f s", q.seconds);
    cr_expect(strstr(q.resp, "\"status\":\"ACTIVE\""), "%s", q.resp);
    free(q.resp);
    poster w = token_read(TK("8"), "Prefer: wait=1");
    post_thread(&w);
    cr_expect_eq(w.status, 200, "%s", w.resp);
    cr_expect(w.seconds >= 0.9 && w.seconds < 2.5, "answered after %.2f s", w.seconds);
    cr_expect(strstr(w.resp, "\"status\":\"WAITING\""), "%s", w.resp);
    free(w.resp);
    ct_http_resp r;
    cr_assert_eq(get("/metrics", &r), 200);
    cr_expect(strstr(r.body, "concert_ingress_waiters 0\n"), "%s", r.body);
    ct_http_free(&r);
    /* A bad Prefer on a token read is refused. */
    char url[160];
    snprintf(url, sizeof url, "%s/v1/queue/tokens/" TK("8"), base);
    const char *h[] = {"Prefer: wait=31", NULL};
    cr_expect_eq(ct_http_do(curl, "GET", url, h, NULL, &r), 400, "%s", r.body);
    ct_http_free(&r);
}

Test(read_api, fans_admitted_together_each_get_their_own_token, .init = setup, .fini = teardown) {
    /* 24 fans wait on concert 3; one transaction admits them all and one
     * NOTIFY names them all, so their second reads queue together and are
     * read in sets: each answer must still be its own token's. */
    enum { FANS = 24 };
    char tok[FANS][32], user[FANS][16];
    poster p[FANS];
    pthread_t t[FANS];
    for (int i = 0; i < FANS; i++) {
        snprintf(tok[i], sizeof tok[i], "FAN%02dAAAAAAAAAAAAAAAAA", i);
        snprintf(user[i], sizeof user[i], "fan%02d", i);
        char seq[16], issued[16];
        snprintf(seq, sizeof seq, "%d", i + 1);
        snprintf(issued, sizeof issued, "%d", 1000 + i);
        const char *v[4] = {tok[i], user[i], seq, issued};
        sqlp("INSERT INTO queue_tokens VALUES ($1, '" C3 "', $2, $3::bigint, 'WAITING', $4::bigint, NULL, NULL, NULL)",
             4, v);
        p[i] = token_read(tok[i], "Prefer: wait=10");
        pthread_create(&t[i], NULL, post_thread, &p[i]);
    }
    usleep(600 * 1000); /* past the first reads and the checks made when the waits begin */
    sql("BEGIN");
    sql("UPDATE queue_tokens SET status = 'ACTIVE', activated_ts = 5000 + seq, active_until = 700000 + seq"
        " WHERE concert_id = '" C3 "'");
    char payload[FANS * 24 + 8] = "";
    for (int i = 0; i < FANS; i++) {
        strcat(payload, i ? "," : "");
        strcat(payload, tok[i]);
    }
    const char *np[1] = {payload};
    sqlp("SELECT pg_notify('command_done', $1)", 1, np);
    sql("COMMIT");
    for (int i = 0; i < FANS; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(p[i].status, 200, "%s", p[i].resp);
        cr_expect_lt(p[i].seconds, 5.0, "fan %d answered after %.2f s: at the NOTIFY", i, p[i].seconds);
        json_t *j = json_loads(p[i].resp, 0, NULL);
        cr_assert_not_null(j, "%s", p[i].resp);
        cr_expect_str_eq(JS(j, "token"), tok[i]);
        cr_expect_str_eq(JS(j, "user_id"), user[i]);
        cr_expect_str_eq(JS(j, "status"), "ACTIVE", "%s", p[i].resp);
        cr_expect_eq(JI(j, "active_until"), 700000 + i + 1, "%s", p[i].resp);
        cr_expect_eq(JI(j, "admitted_last_minute"), FANS, "%s", p[i].resp);
        json_decref(j);
        free(p[i].resp);
    }
    /* Each fan read twice (WAITING, then ACTIVE); how many statements that
     * took depends on how the reads met in the queue, never more. */
    ct_http_resp r;
    cr_assert_eq(get("/metrics", &r), 200);
    cr_expect(strstr(r.body, "concert_ingress_token_reads_total 48\n"), "%s", r.body);
    const char *sets = strstr(r.body, "\nconcert_ingress_token_read_sets_total "); /* the sample, not its HELP */
    cr_assert_not_null(sets, "%s", r.body);
    long n_sets = atol(sets + strlen("\nconcert_ingress_token_read_sets_total "));
    cr_expect(n_sets >= 2 && n_sets <= 48, "%ld statements for 48 reads", n_sets);
    ct_http_free(&r);
}

Test(read_api, a_wait_that_runs_out_answers_202, .init = setup, .fini = teardown) {
    poster p = {.headers = {JSON, "Prefer: wait=1", NULL}, .body = "{\"amount\":500}"};
    snprintf(p.url, sizeof p.url, "%s/v1/users/u2/balance/charge", base);
    post_thread(&p);
    cr_expect_eq(p.status, 202, "%s", p.resp);
    cr_expect(p.seconds >= 0.9 && p.seconds < 2.5, "answered after %.2f s", p.seconds);
    cr_expect(strstr(p.resp, "\"status_url\""), "%s", p.resp);
    free(p.resp);
    ct_http_resp r;
    cr_assert_eq(get("/metrics", &r), 200);
    cr_expect(strstr(r.body, "concert_ingress_wait_timeouts_total 1\n"), "%s", r.body);
    ct_http_free(&r);
    /* A bad Prefer is refused before anything is stored. */
    const char *bad[] = {"Prefer: wait=31", "Prefer: wait=0", "Prefer: wait=soon", NULL};
    for (int i = 0; bad[i]; i++) {
        char url[128];
        snprintf(url, sizeof url, "%s/v1/users/u2/balance/charge", base);
        const char *h[] = {JSON, bad[i], NULL};
        cr_expect_eq(ct_http_do(curl, "POST", url, h, "{\"amount\":5}", &r), 400, "%s: %s", bad[i], r.body);
        cr_expect(strstr(r.body, "INVALID_PREFER"), "%s", r.body);
        ct_http_free(&r);
    }
    cr_expect_eq(ct_test_pg_count(db, "SELECT count(*) FROM outbox"), 1);
}

Test(read_api, an_outcome_recorded_before_the_wait_is_found_by_the_first_check, .init = setup, .fini = teardown) {
    /* The first request stores the command; its outcome is recorded with no
     * NOTIFY; the replay with the same key waits for the first command's id
     * and finds the outcome at once. */
    char url[128];
    snprintf(url, sizeof url, "%s/v1/queue/tokens", base);
    const char *h[] = {JSON, "Idempotency-Key: early", NULL};
    const char *body = "{\"user_id\":\"u1\",\"concert_id\":\"" C1 "\"}";
    ct_http_resp r;
    cr_assert_eq(ct_http_do(curl, "POST", url, h, body, &r), 202, "%s", r.body);
    json_t *first = json_loads(r.body, 0, NULL);
    ct_http_free(&r);
    complete(JS(first, "command_id"), "SUCCEEDED", NULL, "{\"status\":\"ACTIVE\"}", false);
    poster p = {.headers = {JSON, "Idempotency-Key: early", "Prefer: wait=5", NULL}, .body = body};
    snprintf(p.url, sizeof p.url, "%s", url);
    post_thread(&p);
    cr_expect_eq(p.status, 201, "%s", p.resp);
    cr_expect_lt(p.seconds, 2.0, "answered after %.2f s", p.seconds);
    json_t *j = json_loads(p.resp, 0, NULL);
    cr_expect_str_eq(JS(j, "command_id"), JS(first, "command_id"));
    cr_expect_str_eq(JS(j, "token"), JS(first, "token"), "the replay keeps the first answer's fields");
    cr_expect_str_eq(JS(json_object_get(j, "result"), "status"), "ACTIVE");
    json_decref(j), json_decref(first);
    free(p.resp);
}

Test(read_api, the_listener_reconnects_and_rechecks_its_waiters, .init = setup, .fini = teardown) {
    poster p = {.headers = {JSON, "Prefer: wait=10", "Idempotency-Key: reconnect", NULL}, .body = "{\"amount\":9}"};
    snprintf(p.url, sizeof p.url, "%s/v1/users/u3/balance/charge", base);
    pthread_t t;
    pthread_create(&t, NULL, post_thread, &p);
    char id[64];
    command_of_key("reconnect", id);
    usleep(300 * 1000);
    /* Record the outcome with no NOTIFY (after the first check), then cut
     * the listener off: only the re-check after reconnecting can see it. */
    complete(id, "SUCCEEDED", NULL, "{\"balance\":9}", false);
    PGresult *res = PQexec(db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                               " WHERE datname = current_database() AND application_name = 'concert-ingress-listener'");
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(res));
    cr_assert_eq(atoi(PQgetvalue(res, 0, 0)), 1, "one listener connection");
    PQclear(res);
    pthread_join(t, NULL);
    cr_expect_eq(p.status, 200, "%s", p.resp);
    cr_expect_lt(p.seconds, 5.0, "answered after %.2f s", p.seconds);
    free(p.resp);
    ct_http_resp r;
    cr_assert_eq(get("/metrics", &r), 200);
    cr_expect(strstr(r.body, "concert_ingress_listener_reconnects_total 1\n"), "%s", r.body);
    ct_http_free(&r);
}

Test(read_api, a_full_waiter_table_answers_202_at_once, .init = setup_no_waiters, .fini = teardown) {
    poster p = {.headers = {JSON, "Prefer: wait=5", NULL}, .body = "{\"amount\":500}"};
    snprintf(p.url, sizeof p.url, "%s/v1/users/u2/balance/charge", base);
    post_thread(&p);
    cr_expect_eq(p.status, 202, "%s", p.resp);
    cr_expect_lt(p.seconds, 1.0, "answered after %.2f s", p.seconds);
    free(p.resp);
    ct_http_resp r;
    cr_assert_eq(get("/metrics", &r), 200);
    cr_expect(strstr(r.body, "concert_ingress_wait_refused_total 1\n"), "%s", r.body);
    ct_http_free(&r);
}

Test(read_api, stopping_answers_waiting_writes_202_and_exits_cleanly, .init = setup, .fini = teardown) {
    poster p = {.headers = {JSON, "Prefer: wait=30", "Idempotency-Key: stop", NULL}, .body = "{\"amount\":9}"};
    snprintf(p.url, sizeof p.url, "%s/v1/users/u4/balance/charge", base);
    pthread_t t;
    pthread_create(&t, NULL, post_thread, &p);
    char id[64];
    command_of_key("stop", id);
    /* Stop only once the write is held as a waiter (the row exists a moment
     * before the waiter does; on a loaded machine, more than a moment). */
    ct_test_eventually(10000, metrics_show("\nconcert_ingress_waiters 1\n"),
                       "the write did not become a waiter within 10 s");
    ct_test_stop_clean(ingress, "the ingress", log_path);
    ingress = 0;
    pthread_join(t, NULL);
    cr_expect_eq(p.status, 202, "%s", p.resp);
    cr_expect_lt(p.seconds, 10.0, "answered after %.2f s", p.seconds);
    free(p.resp);
}
