/* `concert ingress` as a child process against the real Postgres (a
 * database of the test's own): bad requests get their status and code and
 * leave the outbox unchanged; Idempotency-Key replays; every command kind
 * is written as a payload that schemas/commands.json accepts; command
 * status, admin outbox listing and retry; metrics. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/ct_test_http.h"
#include "../support/ct_test_kafka.h"
#include "../support/ct_test_pg.h"
#include "ct_proc.h"

#define ADMIN "Authorization: Bearer test-admin-key"
#define JSON "Content-Type: application/json"
#define CONCERT "0123456789abcdef01234567"

static ct_config cfg;
static char run[32], dir[96], base[64], log_path[160];
static PGconn *db;
static pid_t ingress;
static CURL *curl;

static void setup(void) {
    ct_test_setup_run(&cfg, "ingress", run, sizeof run, dir, sizeof dir);
    char name[64];
    snprintf(name, sizeof name, "ct_test_ingress_%s", run);
    db = ct_test_pg_database(&cfg, name);
    setenv("CONCERT_ADMIN_KEY", "test-admin-key", 1);
    /* Several writers, so that requests sharing an Idempotency-Key can land
     * in concurrent batches (the unique-violation retry), not only in one. */
    setenv("CONCERT_INGRESS_PG_CONNS", "4", 1);
    snprintf(log_path, sizeof log_path, "%s/ingress.log", dir);
    ingress = ct_test_spawn_http("ingress", "/healthz", 20000, base, sizeof base, log_path);
    curl = curl_easy_init();
}

static void teardown(void) {
    if (curl) curl_easy_cleanup(curl);
    if (ingress > 0) ct_test_stop_clean(ingress, "the ingress", log_path);
    char name[64];
    snprintf(name, sizeof name, "ct_test_ingress_%s", run);
    ct_test_pg_drop(db, &cfg, name);
    ct_test_cleanup_run(dir);
}

static long req(const char *method, const char *path, const char *const *headers, const char *body, ct_http_resp *r) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    return ct_http_do(curl, method, url, headers, body, r);
}

static long outbox_rows(void) { return ct_test_pg_count(db, "SELECT count(*) FROM outbox"); }

typedef struct bad_http {
    const char *method, *path;
    const char *headers[4];
    const char *body;
    long status;
    const char *code;
} bad_http;

Test(ingress, bad_requests_get_their_status_and_code_and_change_nothing, .init = setup, .fini = teardown) {
    static char big[20000];
    memset(big, 'x', sizeof big - 1);
    static char long_header[40000];
    snprintf(long_header, sizeof long_header, "X-Filler: ");
    memset(long_header + 10, 'y', sizeof long_header - 11);
    const bad_http cases[] = {
        {"GET", "/v1/nowhere", {NULL}, NULL, 404, "NOT_FOUND"},
        {"GET", "/v1/queue/tokens", {NULL}, NULL, 405, "METHOD_NOT_ALLOWED"},
        {"POST", "/v1/queue/tokens", {"Content-Type: text/plain"}, "{}", 415, "UNSUPPORTED_MEDIA_TYPE"},
        {"POST", "/v1/queue/tokens", {NULL}, "{}", 415, "UNSUPPORTED_MEDIA_TYPE"},
        {"POST", "/v1/queue/tokens", {JSON}, big, 413, "BODY_TOO_LARGE"},
        {"POST", "/v1/queue/tokens", {JSON}, "{\"user_id\":", 400, "BAD_JSON"},
        {"POST",
         "/v1/queue/tokens",
         {JSON},
         "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\",\"x\":1}",
         422,
         "UNKNOWN_FIELD"},
        {"POST", "/v1/queue/tokens", {JSON}, "{\"user_id\":\"u1\"}", 422, "MISSING_FIELD"},
        {"POST",
         "/v1/queue/tokens",
         {JSON, "Idempotency-Key: has space"},
         "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\"}",
         400,
         "INVALID_IDEMPOTENCY_KEY"},
        {"POST",
         "/v1/reservations",
         {JSON},
         "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"1\",\"seat_no\":2}",
         400,
         "MISSING_QUEUE_TOKEN"},
        {"POST",
         "/v1/reservations",
         {JSON, "X-Queue-Token: nope"},
         "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"1\",\"seat_no\":2}",
         400,
         "INVALID_QUEUE_TOKEN"},
        {"POST",
         "/v1/payments",
         {JSON, "X-Queue-Token: AAAAAAAAAAAAAAAAAAAAAA"},
         "{\"user_id\":\"u1\",\"reservation_id\":\"zzz\"}",
         422,
         "INVALID_FIELD"},
        {"POST", "/v1/users/u1/balance/charge", {JSON}, "{\"amount\":\"100\"}", 422, "INVALID_FIELD"},
        {"POST", "/v1/users/u1/balance/charge", {JSON}, "{\"amount\":0}", 422, "INVALID_FIELD"},
        {"POST",
         "/v1/admin/concerts",
         {JSON},
         "{\"title\":\"t\",\"schedules\":[{\"starts_at\":1,\"seats\":1,\"price\":1}]}",
         401,
         "UNAUTHORIZED"},
        {"POST",
         "/v1/admin/concerts",
         {JSON, "Authorization: Bearer wrong"},
         "{\"title\":\"t\",\"schedules\":[{\"starts_at\":1,\"seats\":1,\"price\":1}]}",
         401,
         "UNAUTHORIZED"},
        {"POST",
         "/v1/admin/concerts",
         {JSON, ADMIN},
         "{\"title\":\"t\",\"schedules\":[{\"starts_at\":1,\"seats\":0,\"price\":1}]}",
         422,
         "INVALID_FIELD"},
        {"GET", "/v1/admin/outbox", {"Authorization:"}, NULL, 401, "UNAUTHORIZED"},
        {"GET", "/v1/admin/outbox?status=LOST", {ADMIN}, NULL, 400, "INVALID_QUERY"},
        {"POST", "/v1/admin/outbox/abc/retry", {ADMIN}, NULL, 400, "INVALID_ID"},
        {"POST", "/v1/admin/outbox/999999/retry", {ADMIN}, NULL, 404, "NOT_FOUND"},
        {"GET", "/v1/commands/not-a-uuid", {NULL}, NULL, 400, "INVALID_ID"},
        {"GET", "/v1/commands/00000000-0000-4000-8000-000000000000", {NULL}, NULL, 404, "NOT_FOUND"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_http_resp r;
        long st = req(cases[i].method, cases[i].path, cases[i].headers, cases[i].body, &r);
        cr_expect_eq(st, cases[i].status, "case %zu %s %s: %ld %s", i, cases[i].method, cases[i].path, st, r.body);
        char code[96];
        snprintf(code, sizeof code, "\"code\":\"%s\"", cases[i].code);
        cr_expect(strstr(r.body, code) != NULL, "case %zu %s %s: body %s lacks %s", i, cases[i].method, cases[i].path,
                  r.body, code);
        ct_http_free(&r);
    }
    /* Headers larger than the connection's memory: refused by MHD. */
    ct_http_resp r;
    const char *huge[] = {JSON, long_header, NULL};
    long st = req("POST", "/v1/users/u1/balance/charge", huge, "{\"amount\":5}", &r);
    cr_expect(st == 431 || st == 413 || st == 400, "oversized headers answered %ld", st);
    ct_http_free(&r);
    cr_assert_eq(outbox_rows(), 0, "a bad request reached the outbox");
    cr_assert_eq(ct_test_pg_count(db, "SELECT count(*) FROM idempotency_keys"), 0);
}

Test(ingress, an_idempotency_key_returns_the_first_answer_and_writes_one_row, .init = setup, .fini = teardown) {
    const char *k1[] = {JSON, "Idempotency-Key: key-1", NULL}, *k2[] = {JSON, "Idempotency-Key: key-2", NULL};
    const char *body = "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\"}";
    ct_http_resp a, b, c, d;
    cr_assert_eq(req("POST", "/v1/queue/tokens", k1, body, &a), 202, "%s", a.body);
    cr_assert_eq(req("POST", "/v1/queue/tokens", k1, body, &b), 202, "%s", b.body);
    cr_assert_str_eq(a.body, b.body, "the replay answers the first command_id and token");
    cr_assert_eq(outbox_rows(), 1);
    cr_assert_eq(req("POST", "/v1/queue/tokens", k2, body, &c), 202, "%s", c.body);
    cr_assert_str_neq(a.body, c.body);
    cr_assert_eq(outbox_rows(), 2);
    const char *changed = "{\"concert_id\":\"" CONCERT "\",\"user_id\":\"u1\"}"; /* same fields, other bytes */
    cr_assert_eq(req("POST", "/v1/queue/tokens", k1, changed, &d), 422, "%s", d.body);
    cr_assert(strstr(d.body, "IDEMPOTENCY_KEY_REUSED"), "%s", d.body);
    cr_assert_eq(outbox_rows(), 2);
    ct_http_free(&d);
    /* Keys are the caller's own: u2's key-1 is another request, answered
     * on its own, and u1's replay still gets u1's first answer. */
    const char *other = "{\"user_id\":\"u2\",\"concert_id\":\"" CONCERT "\"}";
    cr_assert_eq(req("POST", "/v1/queue/tokens", k1, other, &d), 202, "%s", d.body);
    cr_assert_str_neq(a.body, d.body, "u2 got u1's token");
    cr_assert_eq(outbox_rows(), 3);
    ct_http_free(&d);
    cr_assert_eq(req("POST", "/v1/queue/tokens", k1, body, &d), 202, "%s", d.body);
    cr_assert_str_eq(a.body, d.body);
    cr_assert_eq(outbox_rows(), 3);
    ct_http_free(&a), ct_http_free(&b), ct_http_free(&c), ct_http_free(&d);
}

/* Concurrent requests with one key: one row, one answer for all. */
typedef struct racer {
    const char *base;
    char body[512];
} racer;

static void *race(void *arg) {
    racer *r = arg;
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "%s/v1/users/u7/balance/charge", r->base);
    const char *h[] = {JSON, "Idempotency-Key: same-key", NULL};
    ct_http_resp resp;
    ct_http_do(c, "POST", url, h, "{\"amount\":100}", &resp);
    snprintf(r->body, sizeof r->body, "%ld %s", resp.status, resp.body);
    ct_http_free(&resp);
    curl_easy_cleanup(c);
    return NULL;
}

Test(ingress, concurrent_requests_with_one_key_write_one_row, .init = setup, .fini = teardown) {
    enum { N = 16 };
    racer rs[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) rs[i].base = base, pthread_create(&t[i], NULL, race, &rs[i]);
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    for (int i = 1; i < N; i++) cr_assert_str_eq(rs[i].body, rs[0].body, "answer %d differs", i);
    cr_assert_eq(strncmp(rs[0].body, "202 ", 4), 0, "%s", rs[0].body);
    cr_assert_eq(outbox_rows(), 1);
}

Test(ingress, every_command_kind_is_stored_as_its_schema_says, .init = setup, .fini = teardown) {
    ct_http_resp r;
    const char *admin[] = {JSON, ADMIN, NULL}, *json[] = {JSON, NULL};
    cr_assert_eq(req("POST", "/v1/admin/concerts", admin,
                     "{\"title\":\"Hot night\",\"max_active\":50,\"hold_ttl_ms\":60000,\"schedules\":["
                     "{\"starts_at\":1900000000000,\"seats\":100,\"price\":50000}]}",
                     &r),
                 202, "%s", r.body);
    char concert[32] = {0};
    const char *cid = strstr(r.body, "\"concert_id\":\"");
    cr_assert_not_null(cid, "%s", r.body);
    memcpy(concert, cid + 14, 24);
    ct_http_free(&r);
    char body[512];
    snprintf(body, sizeof body, "{\"user_id\":\"alice\",\"concert_id\":\"%s\"}", concert);
    cr_assert_eq(req("POST", "/v1/queue/tokens", json, body, &r), 202, "%s", r.body);
    char token[32] = {0};
    const char *tk = strstr(r.body, "\"token\":\"");
    cr_assert_not_null(tk);
    memcpy(token, tk + 9, 22);
    ct_http_free(&r);
    char th[64];
    snprintf(th, sizeof th, "X-Queue-Token: %s", token);
    const char *with_token[] = {JSON, th, NULL};
    snprintf(body, sizeof body, "{\"user_id\":\"alice\",\"concert_id\":\"%s\",\"schedule_id\":\"1\",\"seat_no\":7}",
             concert);
    cr_assert_eq(req("POST", "/v1/reservations", with_token, body, &r), 202, "%s", r.body);
    char rid[64] = {0};
    const char *rp = strstr(r.body, "\"reservation_id\":\"");
    cr_assert_not_null(rp);
    memcpy(rid, rp + 18, 47);
    ct_http_free(&r);
    snprintf(body, sizeof body, "{\"user_id\":\"alice\",\"reservation_id\":\"%s\"}", rid);
    cr_assert_eq(req("POST", "/v1/payments", with_token, body, &r), 202, "%s", r.body);
    ct_http_free(&r);
    cr_assert_eq(req("POST", "/v1/users/alice/balance/charge", json, "{\"amount\":100000}", &r), 202, "%s", r.body);
    char status_url[128] = {0};
    const char *su = strstr(r.body, "\"status_url\":\"");
    cr_assert_not_null(su);
    memcpy(status_url, su + 14, strcspn(su + 14, "\""));
    ct_http_free(&r);

    /* The status of a stored, unpublished command. */
    cr_assert_eq(req("GET", status_url, NULL, NULL, &r), 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"status\":\"ACCEPTED\"") && strstr(r.body, "\"type\":\"ChargeBalance\""), "%s", r.body);
    ct_http_free(&r);

    /* The payloads, validated against schemas/commands.json. */
    PGresult *res = PQexec(db, "SELECT payload::text, topic, partition_key FROM outbox ORDER BY id");
    cr_assert_eq(PQntuples(res), 5);
    char path[160];
    snprintf(path, sizeof path, "%s/commands.jsonl", dir);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < PQntuples(res); i++) fprintf(f, "%s\n", PQgetvalue(res, i, 0));
    fclose(f);
    cr_assert_str_eq(PQgetvalue(res, 4, 1), "wallet.commands");
    cr_assert_str_eq(PQgetvalue(res, 4, 2), "alice");
    for (int i = 0; i < 4; i++) cr_assert_str_eq(PQgetvalue(res, i, 2), concert, "row %d keyed by the concert", i);
    PQclear(res);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 %s/schemas/validate.py %s/schemas/commands.json %s --require-types "
             "CreateConcert,IssueToken,HoldSeat,RequestPayment,ChargeBalance > %s.report 2>&1",
             CT_SOURCE_DIR, CT_SOURCE_DIR, path, path);
    int rc = system(cmd);
    if (rc != 0) ct_test_print_log_tail(strcat(path, ".report"), 20);
    cr_assert_eq(rc, 0, "schema validation failed");
}

Test(ingress, admin_outbox_list_and_retry, .init = setup, .fini = teardown) {
    ct_http_resp r;
    const char *json[] = {JSON, NULL}, *admin[] = {ADMIN, NULL};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(req("POST", "/v1/users/bob/balance/charge", json, "{\"amount\":10}", &r), 202);
        ct_http_free(&r);
    }
    PGresult *res = PQexec(
        db, "UPDATE outbox SET status = 'FAILED', attempts = 10, last_error = 'test', retry_at = 'infinity' WHERE id = "
            "(SELECT min(id) FROM outbox) RETURNING id");
    cr_assert_eq(PQntuples(res), 1);
    char path[96];
    snprintf(path, sizeof path, "/v1/admin/outbox/%s/retry", PQgetvalue(res, 0, 0));
    PQclear(res);
    cr_assert_eq(req("GET", "/v1/admin/outbox?status=FAILED", admin, NULL, &r), 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"status\":\"FAILED\"") && !strstr(r.body, "\"status\":\"PENDING\""), "%s", r.body);
    ct_http_free(&r);
    cr_assert_eq(req("GET", "/v1/admin/outbox?limit=2", admin, NULL, &r), 200, "%s", r.body);
    cr_assert(strstr(r.body, "next_after_id"), "a full page says where the next starts: %s", r.body);
    ct_http_free(&r);
    cr_assert_eq(req("POST", path, admin, NULL, &r), 200, "%s", r.body);
    ct_http_free(&r);
    cr_assert_eq(ct_test_pg_count(db, "SELECT count(*) FROM outbox WHERE status = 'PENDING' AND attempts = 0"), 3);
    cr_assert_eq(req("POST", path, admin, NULL, &r), 409, "a PENDING row cannot be retried: %s", r.body);
    ct_http_free(&r);
    cr_assert_eq(req("GET", "/metrics", NULL, NULL, &r), 200);
    cr_assert(strstr(r.body, "concert_ingress_commands_accepted_total 3"), "%s", r.body);
    cr_assert(strstr(r.body, "concert_ingress_write_seconds_count 3"), "%s", r.body);
    ct_http_free(&r);
}

/* The outbox writers' connections are cut while commands stream in: every
 * 202 names a row that is stored, a 503 saying nothing was stored names
 * none, and the ingress writes again once it has reconnected. This is the
 * guarantee of the pipelined writer, which sends a transaction before the
 * previous one's result is read. */
typedef struct streamer {
    const char *base;
    int n, accepted, unavailable, unknown, other;
    char (*ids)[40]; /* command ids answered 202 */
} streamer;

static void *stream(void *arg) {
    streamer *s = arg;
    CURL *c = curl_easy_init();
    char url[128];
    const char *h[] = {JSON, NULL};
    for (int i = 0; i < s->n; i++) {
        snprintf(url, sizeof url, "%s/v1/users/cut%d/balance/charge", s->base, i % 50);
        ct_http_resp r;
        long st = ct_http_do(c, "POST", url, h, "{\"amount\":5}", &r);
        const char *id = r.body ? strstr(r.body, "\"command_id\":\"") : NULL;
        if (st == 202 && id)
            snprintf(s->ids[s->accepted++], 40, "%.36s", id + 14);
        else if (st == 503 && strstr(r.body, "STORE_UNAVAILABLE"))
            s->unavailable++;
        else if (st == 503 && strstr(r.body, "OUTCOME_UNKNOWN"))
            s->unknown++;
        else
            s->other++;
        ct_http_free(&r);
    }
    curl_easy_cleanup(c);
    return NULL;
}

Test(ingress, cutting_the_writers_connections_loses_no_acknowledged_command, .init = setup, .fini = teardown,
     .timeout = 120) {
    enum { THREADS = 8, EACH = 250, CUTS = 6 };
    streamer ss[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ss[i] = (streamer){.base = base, .n = EACH, .ids = calloc(EACH, 40)};
        pthread_create(&t[i], NULL, stream, &ss[i]);
    }
    int cut = 0;
    for (int k = 0; k < CUTS; k++) {
        usleep(150 * 1000);
        /* The writers' connections are the ones whose statements touch the
         * outbox lock or insert (the prepared statements' text). */
        cut += (int)ct_test_pg_count(
            db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND (query LIKE 'INSERT INTO outbox%' OR query LIKE 'SELECT pg_advisory_xact_lock%')");
    }
    int accepted = 0, unavailable = 0, unknown = 0, other = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        accepted += ss[i].accepted, unavailable += ss[i].unavailable, unknown += ss[i].unknown;
        other += ss[i].other;
    }
    cr_log_info("accepted=%d unavailable=%d unknown=%d other=%d connections cut=%d", accepted, unavailable, unknown,
                other, cut);
    cr_expect_geq(cut, CUTS, "every cut hit a writer connection");
    cr_expect_eq(other, 0, "only 202 and 503 answers");
    cr_expect_eq(accepted + unavailable + unknown, THREADS * EACH);
    /* Every acknowledged command is stored, once. */
    long missing = 0;
    for (int i = 0; i < THREADS; i++) {
        for (int j = 0; j < ss[i].accepted; j++) {
            char sql[160];
            snprintf(sql, sizeof sql, "SELECT 1 - count(*) FROM outbox WHERE command_id = '%s'", ss[i].ids[j]);
            missing += ct_test_pg_count(db, sql);
        }
        free(ss[i].ids);
    }
    cr_expect_eq(missing, 0, "%ld acknowledged commands are not in the outbox", missing);
    /* Rows beyond the acknowledged ones can only come from OUTCOME_UNKNOWN. */
    long rows = outbox_rows();
    cr_expect(rows >= accepted && rows <= accepted + unknown, "rows=%ld accepted=%d unknown=%d", rows, accepted,
              unknown);
    /* And it writes again. */
    ct_http_resp r;
    const char *h[] = {JSON, NULL};
    long st = 0;
    for (int i = 0; i < 50 && st != 202; i++) {
        st = req("POST", "/v1/users/after/balance/charge", h, "{\"amount\":1}", &r);
        ct_http_free(&r);
        if (st != 202) usleep(100 * 1000);
    }
    cr_expect_eq(st, 202, "a write after the cuts is accepted");
}

/* Identity over HTTP: users' endpoints need the user's own token; the
 * admin key reads any user's data but acts as no one; nothing refused
 * reaches the outbox. */
Test(ingress, users_act_and_read_only_as_themselves, .init = setup, .fini = teardown) {
    char u1[CT_AUTH_TOKEN_BYTES_MAX + 32], u2[CT_AUTH_TOKEN_BYTES_MAX + 32], expired[CT_AUTH_TOKEN_BYTES_MAX + 32];
    ct_test_auth_header("u1", u1, sizeof u1);
    ct_test_auth_header("u2", u2, sizeof u2);
    char tok[CT_AUTH_TOKEN_BYTES_MAX];
    ct_error err = {0};
    cr_assert_eq(ct_auth_token_new(CT_TEST_AUTH_KEY, "u1", (int64_t)time(NULL) - 7200, 60, tok, sizeof tok, &err), 0);
    snprintf(expired, sizeof expired, "Authorization: Bearer %s", tok);
    const char *charge = "{\"amount\":100}", *issue = "{\"concert_id\":\"" CONCERT "\"}";
    const struct {
        const char *method, *path, *auth, *body;
        long status;
        const char *code;
    } cases[] = {
        {"POST", "/v1/users/u1/balance/charge", "Authorization:", charge, 401, "UNAUTHORIZED"},
        {"POST", "/v1/users/u1/balance/charge", "Authorization: Bearer not.a.token", charge, 401, "INVALID_TOKEN"},
        {"POST", "/v1/users/u1/balance/charge", expired, charge, 401, "TOKEN_EXPIRED"},
        {"POST", "/v1/users/u1/balance/charge", u2, charge, 403, "FORBIDDEN"},
        {"POST", "/v1/users/u1/balance/charge", ADMIN, charge, 401, "INVALID_TOKEN"},
        {"POST", "/v1/queue/tokens", "Authorization:", issue, 401, "UNAUTHORIZED"},
        {"POST", "/v1/queue/tokens", u2, "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\"}", 403, "FORBIDDEN"},
        {"GET", "/v1/users/u1/balance", u2, NULL, 403, "FORBIDDEN"},
        {"GET", "/v1/users/u1/reservations", "Authorization:", NULL, 401, "UNAUTHORIZED"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *h[] = {JSON, cases[i].auth, NULL};
        ct_http_resp r;
        char want[64];
        snprintf(want, sizeof want, "\"code\":\"%s\"", cases[i].code);
        cr_expect_eq(req(cases[i].method, cases[i].path, h, cases[i].body, &r), cases[i].status, "case %zu: %ld %s", i,
                     r.status, r.body);
        cr_expect(strstr(r.body, want), "case %zu: %s lacks %s", i, r.body, want);
        ct_http_free(&r);
    }
    cr_assert_eq(outbox_rows(), 0, "a refused request reached the outbox");

    /* u1's own charge, then reads of its command: u1 and the admin may. */
    const char *h1[] = {JSON, u1, NULL}, *h2[] = {u2, NULL}, *ha[] = {ADMIN, NULL}, *hu1[] = {u1, NULL};
    ct_http_resp r;
    cr_assert_eq(req("POST", "/v1/users/u1/balance/charge", h1, charge, &r), 202, "%s", r.body);
    char path[128];
    const char *id = strstr(r.body, "\"command_id\":\"");
    cr_assert_not_null(id);
    snprintf(path, sizeof path, "/v1/commands/%.36s", id + strlen("\"command_id\":\""));
    ct_http_free(&r);
    cr_assert_eq(req("GET", path, hu1, NULL, &r), 200, "%s", r.body);
    ct_http_free(&r);
    cr_assert_eq(req("GET", path, ha, NULL, &r), 200, "%s", r.body);
    ct_http_free(&r);
    cr_assert_eq(req("GET", path, h2, NULL, &r), 403, "%s", r.body);
    ct_http_free(&r);
    cr_assert_eq(req("GET", "/v1/users/u1/balance", ha, NULL, &r), 200, "the admin reads it: %s", r.body);
    ct_http_free(&r);
    cr_assert_eq(outbox_rows(), 1);
}

/* A seat is held only by a fan whose balance (the read model's) covers its
 * price: below it the hold is 402 and nothing is written, its
 * Idempotency-Key not recorded; at or above it, or on a schedule the read
 * models do not know yet, the hold is accepted. */
Test(ingress, a_hold_needs_a_balance_that_covers_the_price, .init = setup, .fini = teardown) {
    ct_test_pg_exec(db, "INSERT INTO schedules (concert_id, schedule_id, starts_at, seats, price)"
                        " VALUES ('" CONCERT "', '1', 1893456000000, 10, 5000)");
    ct_test_pg_exec(db,
                    "INSERT INTO balances (user_id, balance, updated_ts) VALUES ('poor', 4999, 1), ('rich', 5000, 1)");
    const char *h[] = {JSON, "X-Queue-Token: AAAAAAAAAAAAAAAAAAAAAA", "Idempotency-Key: hold-1", NULL};
    const char *h2[] = {JSON, "X-Queue-Token: AAAAAAAAAAAAAAAAAAAAAA", NULL};
    ct_http_resp r;
    const char *poor = "{\"user_id\":\"poor\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"1\",\"seat_no\":1}";
    cr_assert_eq(req("POST", "/v1/reservations", h, poor, &r), 402, "%s", r.body);
    cr_assert(strstr(r.body, "INSUFFICIENT_BALANCE"), "%s", r.body);
    ct_http_free(&r);
    cr_assert_eq(outbox_rows(), 0);
    cr_assert_eq(ct_test_pg_count(db, "SELECT count(*) FROM idempotency_keys"), 0);
    /* No balance row is a balance of 0. */
    const char *nobody = "{\"user_id\":\"nobody\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"1\",\"seat_no\":2}";
    cr_assert_eq(req("POST", "/v1/reservations", h2, nobody, &r), 402, "no balance at all: %s", r.body);
    ct_http_free(&r);
    const char *rich = "{\"user_id\":\"rich\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"1\",\"seat_no\":1}";
    cr_assert_eq(req("POST", "/v1/reservations", h2, rich, &r), 202, "%s", r.body);
    ct_http_free(&r);
    const char *unknown = "{\"user_id\":\"poor\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"9\",\"seat_no\":1}";
    cr_assert_eq(req("POST", "/v1/reservations", h2, unknown, &r), 202, "the processor decides: %s", r.body);
    ct_http_free(&r);
    cr_assert_eq(outbox_rows(), 2);
    /* The same key once the balance covers it: a new request, accepted. */
    ct_test_pg_exec(db, "UPDATE balances SET balance = 5000 WHERE user_id = 'poor'");
    cr_assert_eq(req("POST", "/v1/reservations", h, poor, &r), 202, "%s", r.body);
    ct_http_free(&r);
    cr_assert_eq(outbox_rows(), 3);
}
