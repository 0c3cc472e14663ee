/* The whole pipeline through HTTP only: `concert up` (ingress, relay, both
 * processors, projector as processes) on the test cluster's Kafka and a
 * fresh Postgres database, driven the way a client would, with
 * `Prefer: wait`. One pipeline serves every scenario (starting one costs
 * seconds); each scenario works on a concert of its own, and the read
 * models are checked against DESIGN.md section 11's invariants 1-4 and 6
 * after each (../support/ct_test_invariants.h: scoped to this run's users,
 * concerts and outbox; balances = charged - debited + refunded per user
 * from the wallet events the read models hold).
 *
 *   journey          create, charge, token, hold, pay, see reservation and
 *                    balance; a hold the balance does not cover is 402 and
 *                    changes nothing, and is held and paid after a charge
 *   seat race        200 active users, 10 seats: exactly 10 holds, 190 x 409,
 *                    after payment 10 SOLD
 *   queue            1,000 tokens, max_active 100: exact FIFO positions;
 *                    admission as holders pay and as tokens expire
 *   hold expiry      a short hold_ttl: the seat comes back, paying is 410
 *   walkthrough      docs/walkthrough.md's sh blocks, as written, in bash
 *   poisoned         a charge the wallet cannot decode (put in the outbox
 *                    directly, as a bug or a schema skew would) is
 *                    dead-lettered and still ends: REJECTED, POISON */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/ct_test_eventually.h"
#include "../support/ct_test_pipeline.h"

#define ADMIN_KEY "e2e-admin-key"
#define JSON_CT "Content-Type: application/json"
#define ADMIN_H "Authorization: Bearer " ADMIN_KEY

static ct_test_pipeline pl;

static int64_t now_ms(void) { return ct_test_inv_now_ms(); }

static void setup(void) {
    ct_test_pipeline_prepare(&pl, "e2e", ADMIN_KEY);
    ct_test_pipeline_start(&pl);
}

static void teardown(void) { ct_test_pipeline_finish(&pl); }

/* ---- HTTP with JSON ------------------------------------------------------ */

typedef struct resp {
    long status;
    json_t *body; /* NULL when not JSON */
    char *text;
} resp;

/* Every answer, for the check against ingress/openapi.json at the end. */
static pthread_mutex_t exchanges_mu = PTHREAD_MUTEX_INITIALIZER;

static void record_exchange(const char *method, const char *path, const resp *r) {
    char file[320];
    snprintf(file, sizeof file, "%s/exchanges.jsonl", pl.dir);
    json_t *j = json_pack("{s:s, s:s, s:I, s:O?}", "method", method, "path", path, "status", (json_int_t)r->status,
                          "body", r->body);
    char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    pthread_mutex_lock(&exchanges_mu);
    FILE *f = line ? fopen(file, "a") : NULL;
    if (f) fprintf(f, "%s\n", line), fclose(f);
    pthread_mutex_unlock(&exchanges_mu);
    free(line);
    json_decref(j);
}

static resp call(CURL *c, const char *method, const char *path, const char *const *headers, const char *body) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", pl.base, path);
    ct_http_resp r;
    resp out = {0};
    out.status = ct_http_do(c, method, url, headers, body, &r);
    out.text = r.body;
    out.body = json_loads(r.body, 0, NULL);
    if (out.status > 0) record_exchange(method, path, &out);
    return out;
}

static void resp_free(resp *r) {
    json_decref(r->body);
    free(r->text);
}

static const char *str(const resp *r, const char *field) {
    json_t *v = json_object_get(r->body, field);
    cr_assert(json_is_string(v), "no string %s in %s", field, r->text);
    return json_string_value(v);
}

static json_int_t num(json_t *obj, const char *field) {
    json_t *v = json_object_get(obj, field);
    cr_assert(json_is_integer(v), "no integer %s", field);
    return json_integer_value(v);
}

static const char *error_code(const resp *r) {
    json_t *e = json_object_get(r->body, "error");
    json_t *c = e ? json_object_get(e, "code") : NULL;
    return json_is_string(c) ? json_string_value(c) : "";
}

static long sql_long(const char *sql) { return ct_test_pg_count(pl.db, sql); }

/* ---- steps a client takes ----------------------------------------------- */

static char *create_concert(CURL *c, int seats, int64_t price, int max_active, int active_ttl_ms, int hold_ttl_ms) {
    char body[512];
    snprintf(body, sizeof body,
             "{\"title\":\"e2e %s\",\"max_active\":%d,\"active_ttl_ms\":%d,\"hold_ttl_ms\":%d,"
             "\"schedules\":[{\"starts_at\":1893456000000,\"seats\":%d,\"price\":%lld}]}",
             pl.run, max_active, active_ttl_ms, hold_ttl_ms, seats, (long long)price);
    const char *h[] = {JSON_CT, ADMIN_H, "Prefer: wait=20", NULL};
    resp r = call(c, "POST", "/v1/admin/concerts", h, body);
    cr_assert_eq(r.status, 201, "create concert: %ld %s", r.status, r.text);
    char *id = strdup(str(&r, "concert_id"));
    resp_free(&r);
    return id;
}

static void charge(CURL *c, const char *user, int64_t amount) {
    char path[128], body[64];
    snprintf(path, sizeof path, "/v1/users/%s/balance/charge", user);
    snprintf(body, sizeof body, "{\"amount\":%lld}", (long long)amount);
    const char *h[] = {JSON_CT, "Prefer: wait=20", NULL};
    resp r = call(c, "POST", path, h, body);
    cr_assert_eq(r.status, 200, "charge %s: %ld %s", user, r.status, r.text);
    resp_free(&r);
}

static int64_t balance(CURL *c, const char *user) {
    char path[128];
    snprintf(path, sizeof path, "/v1/users/%s/balance", user);
    resp r = call(c, "GET", path, NULL, NULL);
    cr_assert_eq(r.status, 200, "balance %s: %ld %s", user, r.status, r.text);
    int64_t b = num(r.body, "balance");
    resp_free(&r);
    return b;
}

/* Issues a token; wait > 0 waits for the outcome. Returns the token. */
static char *issue_token(CURL *c, const char *user, const char *concert, int wait) {
    char body[256], prefer[32];
    snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"concert_id\":\"%s\"}", user, concert);
    snprintf(prefer, sizeof prefer, "Prefer: wait=%d", wait);
    const char *h[] = {JSON_CT, wait > 0 ? prefer : NULL, NULL};
    resp r = call(c, "POST", "/v1/queue/tokens", h, body);
    cr_assert_eq(r.status, wait > 0 ? 201 : 202, "token for %s: %ld %s", user, r.status, r.text);
    char *t = strdup(str(&r, "token"));
    resp_free(&r);
    return t;
}

static resp token_status(CURL *c, const char *token) {
    char path[128];
    snprintf(path, sizeof path, "/v1/queue/tokens/%s", token);
    return call(c, "GET", path, NULL, NULL);
}

/* Whether answer r is a 200 whose "status" is `status`; frees r, and
 * leaves status code and text in last[0..last_bytes) for a failure
 * message. */
static bool status_is(resp r, const char *status, char *last, size_t last_bytes) {
    json_t *s = r.status == 200 ? json_object_get(r.body, "status") : NULL;
    bool is = json_is_string(s) && strcmp(json_string_value(s), status) == 0;
    snprintf(last, last_bytes, "%ld %s", r.status, r.text);
    resp_free(&r);
    return is;
}

/* Waits until the token reads `status`. */
static void await_token(CURL *c, const char *token, const char *status, int timeout_ms) {
    char last[512] = "";
    ct_test_eventually(timeout_ms, status_is(token_status(c, token), status, last, sizeof last),
                       "token %s never %s within %d ms; last: %s", token, status, timeout_ms, last);
}

static resp hold(CURL *c, const char *user, const char *token, const char *concert, const char *schedule, int seat) {
    char body[256], qt[128];
    snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"concert_id\":\"%s\",\"schedule_id\":\"%s\",\"seat_no\":%d}",
             user, concert, schedule, seat);
    snprintf(qt, sizeof qt, "X-Queue-Token: %s", token);
    const char *h[] = {JSON_CT, qt, "Prefer: wait=20", NULL};
    return call(c, "POST", "/v1/reservations", h, body);
}

static resp pay(CURL *c, const char *user, const char *token, const char *reservation) {
    char body[256], qt[128];
    snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"reservation_id\":\"%s\"}", user, reservation);
    snprintf(qt, sizeof qt, "X-Queue-Token: %s", token);
    const char *h[] = {JSON_CT, qt, "Prefer: wait=20", NULL};
    return call(c, "POST", "/v1/payments", h, body);
}

/* ---- scenarios ------------------------------------------------------------ */

static void journey(CURL *c) {
    char *concert = create_concert(c, 20, 50000, 10, 60000, 60000);
    /* The schedule is in the catalog with all its seats left. */
    char path[256];
    snprintf(path, sizeof path, "/v1/concerts/%s/schedules", concert);
    resp s = call(c, "GET", path, NULL, NULL);
    cr_assert_eq(s.status, 200, "%s", s.text);
    cr_assert(strstr(s.text, "\"seats_left\":20") || strstr(s.text, "\"seats_left\": 20"), "%s", s.text);
    resp_free(&s);

    char user[64];
    snprintf(user, sizeof user, "alice-%s", pl.run);
    charge(c, user, 30000);
    char *token = issue_token(c, user, concert, 20);
    await_token(c, token, "ACTIVE", 20000);

    /* 30,000 won for a 50,000 seat: the hold is 402, nothing changes. */
    resp h = hold(c, user, token, concert, "1", 7);
    cr_assert_eq(h.status, 402, "hold short: %ld %s", h.status, h.text);
    cr_assert_str_eq(error_code(&h), "INSUFFICIENT_BALANCE");
    resp_free(&h);
    cr_assert_eq(balance(c, user), 30000);
    snprintf(path, sizeof path, "/v1/concerts/%s/schedules", concert);
    resp rv = call(c, "GET", path, NULL, NULL);
    cr_assert(strstr(rv.text, "\"seats_left\":20") || strstr(rv.text, "\"seats_left\": 20"), "%s", rv.text);
    resp_free(&rv);

    charge(c, user, 25000);
    h = hold(c, user, token, concert, "1", 7);
    cr_assert_eq(h.status, 201, "hold: %ld %s", h.status, h.text);
    char *reservation = strdup(str(&h, "reservation_id"));
    resp_free(&h);
    snprintf(path, sizeof path, "/v1/reservations/%s", reservation);
    resp p = pay(c, user, token, reservation);
    cr_assert_eq(p.status, 200, "pay: %ld %s", p.status, p.text);
    resp_free(&p);
    cr_assert_eq(balance(c, user), 5000);
    rv = call(c, "GET", path, NULL, NULL);
    cr_assert_str_eq(str(&rv, "status"), "CONFIRMED", "%s", rv.text);
    resp_free(&rv);
    snprintf(path, sizeof path, "/v1/users/%s/reservations", user);
    rv = call(c, "GET", path, NULL, NULL);
    cr_assert_eq(rv.status, 200, "%s", rv.text);
    cr_assert(strstr(rv.text, reservation), "%s", rv.text);
    resp_free(&rv);
    /* Paid: the token is done and the seat sold. */
    await_token(c, token, "DONE", 10000);
    snprintf(path, sizeof path, "/v1/concerts/%s/schedules/1/seats", concert);
    rv = call(c, "GET", path, NULL, NULL);
    cr_assert_eq(rv.status, 200, "%s", rv.text);
    resp_free(&rv);
    char q[512];
    snprintf(q, sizeof q, "SELECT count(*) FROM seats WHERE concert_id = '%s' AND seat_no = 7 AND status = 'SOLD'",
             concert);
    cr_assert_eq(sql_long(q), 1);
    free(reservation), free(token), free(concert);
}

typedef struct racer {
    const char *concert;
    char user[64];
    char *token;
    int seat;
    long status;
    char reservation[128];
} racer;

static void *race_hold(void *arg) {
    racer *r = arg;
    CURL *c = curl_easy_init();
    resp h = hold(c, r->user, r->token, r->concert, "1", r->seat);
    r->status = h.status;
    if (h.status == 201) snprintf(r->reservation, sizeof r->reservation, "%s", str(&h, "reservation_id"));
    resp_free(&h);
    curl_easy_cleanup(c);
    return NULL;
}

static void seat_race(CURL *c) {
    enum { USERS = 200, SEATS = 10 };
    char *concert = create_concert(c, SEATS, 10000, USERS, 120000, 60000);
    static racer rs[USERS];
    for (int i = 0; i < USERS; i++) {
        rs[i] = (racer){.concert = concert, .seat = i % SEATS + 1};
        snprintf(rs[i].user, sizeof rs[i].user, "racer%d-%s", i, pl.run);
        rs[i].token = issue_token(c, rs[i].user, concert, 0);
        /* A hold needs a balance covering the seat: charged now, all at once. */
        char path[128];
        snprintf(path, sizeof path, "/v1/users/%s/balance/charge", rs[i].user);
        const char *h[] = {JSON_CT, NULL};
        resp r = call(c, "POST", path, h, "{\"amount\":10000}");
        cr_assert_eq(r.status, 202, "charge %d: %s", i, r.text);
        resp_free(&r);
    }
    for (int i = 0; i < USERS; i++) await_token(c, rs[i].token, "ACTIVE", 30000);
    char q[256];
    snprintf(q, sizeof q, "SELECT count(*) FROM balances WHERE user_id LIKE 'racer%%-%s' AND balance = 10000", pl.run);
    ct_test_eventually(30000, sql_long(q) == USERS, "%ld of %d racers' charges projected within 30 s", sql_long(q),
                       USERS);
    pthread_t t[USERS];
    for (int i = 0; i < USERS; i++) cr_assert_eq(pthread_create(&t[i], NULL, race_hold, &rs[i]), 0);
    for (int i = 0; i < USERS; i++) pthread_join(t[i], NULL);
    int held = 0, taken = 0, per_seat[SEATS + 1] = {0};
    for (int i = 0; i < USERS; i++) {
        if (rs[i].status == 201)
            held++, per_seat[rs[i].seat]++;
        else if (rs[i].status == 409)
            taken++;
        else
            cr_assert_fail("racer %d: status %ld", i, rs[i].status);
    }
    cr_assert_eq(held, SEATS, "%d holds succeeded", held);
    cr_assert_eq(taken, USERS - SEATS);
    for (int s = 1; s <= SEATS; s++) cr_assert_eq(per_seat[s], 1, "seat %d held %d times", s, per_seat[s]);
    for (int i = 0; i < USERS; i++) {
        if (rs[i].status != 201) continue;
        resp p = pay(c, rs[i].user, rs[i].token, rs[i].reservation);
        cr_assert_eq(p.status, 200, "pay %d: %ld %s", i, p.status, p.text);
        resp_free(&p);
    }
    char path[256];
    snprintf(path, sizeof path, "/v1/concerts/%s/schedules/1/seats", concert);
    resp m = call(c, "GET", path, NULL, NULL);
    cr_assert_eq(m.status, 200, "%s", m.text);
    int sold = 0;
    for (const char *p = m.text; (p = strstr(p, "SOLD")); p++) sold++;
    cr_assert_eq(sold, SEATS, "seat map: %s", m.text);
    resp_free(&m);
    for (int i = 0; i < USERS; i++) free(rs[i].token);
    free(concert);
}

/* A fan's event stream (GET /v1/queue/tokens/{t}/events), read on a
 * thread of its own while others pay. */
typedef struct stream_read {
    const char *token;
    resp r;
    int64_t ms;
} stream_read;

static void *read_events(void *arg) {
    stream_read *s = arg;
    CURL *c = curl_easy_init();
    char path[160];
    snprintf(path, sizeof path, "/v1/queue/tokens/%s/events", s->token);
    int64_t t0 = now_ms();
    s->r = call(c, "GET", path, NULL, NULL);
    s->ms = now_ms() - t0;
    curl_easy_cleanup(c);
    return NULL;
}

static void queue_fifo(CURL *c) {
    enum { TOKENS = 1000, MAX_ACTIVE = 100, PAYERS = 5 };
    /* active_ttl long enough to pay, short enough to watch expiry. */
    char *concert = create_concert(c, 50, 1000, MAX_ACTIVE, 20000, 60000);
    static char *tokens[TOKENS];
    static char users[TOKENS][64];
    for (int i = 0; i < TOKENS; i++) {
        snprintf(users[i], sizeof users[i], "q%d-%s", i, pl.run);
        /* One connection, one after another: commit order is issue order. */
        tokens[i] = issue_token(c, users[i], concert, 0);
    }
    await_token(c, tokens[TOKENS - 1], "WAITING", 30000);
    for (int i = 0; i < TOKENS; i++) {
        resp r = token_status(c, tokens[i]);
        cr_assert_eq(r.status, 200, "%s", r.text);
        if (i < MAX_ACTIVE) {
            cr_assert_str_eq(str(&r, "status"), "ACTIVE", "token %d: %s", i, r.text);
        } else {
            cr_assert_str_eq(str(&r, "status"), "WAITING", "token %d: %s", i, r.text);
            cr_assert_eq(num(r.body, "position"), i - MAX_ACTIVE + 1, "token %d: %s", i, r.text);
        }
        resp_free(&r);
    }
    /* The first waiting fan listens to its event stream: it is pushed the
     * admission when a slot frees, not after its 15 s wait. */
    stream_read sr = {.token = tokens[MAX_ACTIVE]};
    pthread_t listener;
    cr_assert_eq(pthread_create(&listener, NULL, read_events, &sr), 0);
    usleep(300 * 1000);
    /* Five holders pay: their slots go to the next five, in order. */
    for (int i = 0; i < PAYERS; i++) {
        charge(c, users[i], 1000);
        resp h = hold(c, users[i], tokens[i], concert, "1", i + 1);
        cr_assert_eq(h.status, 201, "hold %d: %s", i, h.text);
        resp p = pay(c, users[i], tokens[i], str(&h, "reservation_id"));
        cr_assert_eq(p.status, 200, "pay %d: %s", i, p.text);
        resp_free(&p), resp_free(&h);
    }
    for (int i = MAX_ACTIVE; i < MAX_ACTIVE + PAYERS; i++) await_token(c, tokens[i], "ACTIVE", 10000);
    pthread_join(listener, NULL);
    cr_assert_eq(sr.r.status, 200, "%s", sr.r.text);
    cr_assert(strstr(sr.r.text, "id: ACTIVE:0\nevent: active\ndata: {"), "the stream's event: %s", sr.r.text);
    cr_assert_lt(sr.ms, 14000, "admission pushed, not found at the end of the wait (%lld ms)", (long long)sr.ms);
    resp_free(&sr.r);
    char path[160], last[64] = "Last-Event-ID: ACTIVE:0";
    snprintf(path, sizeof path, "/v1/queue/tokens/%s/events", tokens[MAX_ACTIVE]);
    const char *lh[] = {last, NULL};
    resp end = call(c, "GET", path, lh, NULL);
    cr_assert_eq(end.status, 204, "after its final state the stream ends: %ld %s", end.status, end.text);
    resp_free(&end);
    for (int i = MAX_ACTIVE + PAYERS; i < TOKENS; i += 97) {
        resp r = token_status(c, tokens[i]);
        cr_assert_str_eq(str(&r, "status"), "WAITING", "token %d: %s", i, r.text);
        cr_assert_eq(num(r.body, "position"), i - MAX_ACTIVE - PAYERS + 1, "token %d: %s", i, r.text);
        resp_free(&r);
    }
    /* The first window expires: the next hundred are admitted, FIFO. */
    await_token(c, tokens[PAYERS], "EXPIRED", 40000);
    await_token(c, tokens[2 * MAX_ACTIVE + PAYERS - 1], "ACTIVE", 20000);
    char q[512];
    snprintf(q, sizeof q,
             "SELECT count(*) FROM queue_tokens a JOIN queue_tokens w ON w.concert_id = a.concert_id"
             " WHERE a.concert_id = '%s' AND a.status <> 'WAITING' AND w.status = 'WAITING' AND a.seq > w.seq",
             concert);
    cr_assert_eq(sql_long(q), 0, "a token admitted before one that waited longer");
    for (int i = 0; i < TOKENS; i++) free(tokens[i]);
    free(concert);
}

static void hold_expiry(CURL *c) {
    char *concert = create_concert(c, 5, 1000, 10, 60000, 2000);
    char user[64];
    snprintf(user, sizeof user, "late-%s", pl.run);
    charge(c, user, 5000);
    char *token = issue_token(c, user, concert, 20);
    await_token(c, token, "ACTIVE", 20000);
    resp h = hold(c, user, token, concert, "1", 3);
    cr_assert_eq(h.status, 201, "%s", h.text);
    char *reservation = strdup(str(&h, "reservation_id"));
    resp_free(&h);
    char path[256];
    snprintf(path, sizeof path, "/v1/reservations/%s", reservation);
    char last[512] = "";
    ct_test_eventually(20000, status_is(call(c, "GET", path, NULL, NULL), "EXPIRED", last, sizeof last),
                       "the hold never expired within 20 s; last: %s", last);
    char q[512];
    snprintf(q, sizeof q, "SELECT count(*) FROM seats WHERE concert_id = '%s'", concert);
    cr_assert_eq(sql_long(q), 0, "the seat did not come back");
    resp p = pay(c, user, token, reservation);
    cr_assert_eq(p.status, 410, "pay after expiry: %ld %s", p.status, p.text);
    resp_free(&p);
    cr_assert_eq(balance(c, user), 5000);
    /* The seat can be held again. */
    h = hold(c, user, token, concert, "1", 3);
    cr_assert_eq(h.status, 201, "%s", h.text);
    resp_free(&h);
    free(reservation), free(token), free(concert);
}

/* Every ```sh block of docs/walkthrough.md, in order, in one bash. */
static void walkthrough(CURL *c) {
    (void)c;
    char path[512], script[512], out[512];
    snprintf(path, sizeof path, "%s/docs/walkthrough.md", CT_SOURCE_DIR);
    snprintf(script, sizeof script, "%s/walkthrough.sh", pl.dir);
    snprintf(out, sizeof out, "%s/walkthrough.out", pl.dir);
    FILE *in = fopen(path, "r"), *sh = fopen(script, "w");
    cr_assert(in && sh, "cannot read %s or write %s", path, script);
    fprintf(sh, "set -euo pipefail\n");
    char line[4096];
    bool inside = false;
    int blocks = 0;
    while (fgets(line, sizeof line, in)) {
        if (!inside && strncmp(line, "```sh", 5) == 0)
            inside = true, blocks++;
        else if (inside && strncmp(line, "```", 3) == 0)
            inside = false;
        else if (inside)
            fputs(line, sh);
    }
    fclose(in), fclose(sh);
    cr_assert_geq(blocks, 5, "only %d sh blocks in %s", blocks, path);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "API=%s CONCERT_ADMIN_KEY=%s CONCERT_BIN=%s FAN=walker-%s bash %s > %s 2>&1", pl.base,
             ADMIN_KEY, CT_CONCERT_BIN, pl.run, script, out);
    int rc = system(cmd);
    if (rc != 0) ct_test_print_log_tail(out, 60);
    cr_assert_eq(rc, 0, "docs/walkthrough.md failed as written (output above)");
}

static void poisoned(CURL *c) {
    char sql[1024], path[128];
    snprintf(sql, sizeof sql,
             "INSERT INTO outbox (command_id, topic, partition_key, type, payload)"
             " SELECT u, '" CT_TOPIC_WALLET_COMMANDS "', 'poison-%s', 'ChargeBalance',"
             "  jsonb_build_object('id', u::text, 'type', 'ChargeBalance', 'v', 1,"
             "   'ts', (extract(epoch FROM now()) * 1000)::bigint, 'command_id', u::text, 'key', 'poison-%s',"
             "   'data', jsonb_build_object('user_id', 'poison-%s', 'amount', 'lots'))"
             " FROM gen_random_uuid() u RETURNING command_id",
             pl.run, pl.run, pl.run);
    PGresult *res = PQexec(pl.db, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "%s", PQerrorMessage(pl.db));
    snprintf(path, sizeof path, "/v1/commands/%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    PQclear(PQexec(pl.db, "NOTIFY outbox"));
    char last[512] = "";
    for (int64_t until = now_ms() + 60000; now_ms() < until; usleep(100 * 1000)) {
        resp r = call(c, "GET", path, NULL, NULL);
        cr_assert_eq(r.status, 200, "%s: %ld %s", path, r.status, r.text);
        snprintf(last, sizeof last, "%s", r.text);
        bool ended = strcmp(str(&r, "status"), "ACCEPTED") && strcmp(str(&r, "status"), "PUBLISHED");
        if (ended) {
            cr_assert_str_eq(str(&r, "status"), "REJECTED", "%s", r.text);
            cr_assert_str_eq(str(&r, "reason"), "POISON", "%s", r.text);
            cr_assert_str_eq(str(&r, "event"), "CommandRejected", "%s", r.text);
            resp_free(&r);
            return;
        }
        resp_free(&r);
    }
    cr_assert_fail("the poisoned command never ended: %s", last);
}

/* A new processor rebuilds its stores from the command topics before it
 * answers, and the test cluster keeps every earlier run's records: wait
 * until both roles answer a command (a charge, a concert) before timing
 * any scenario's steps. */
static void wait_until_both_roles_answer(CURL *c) {
    int64_t t0 = now_ms();
    bool wallet = false, concert = false;
    char path[128], body[256];
    snprintf(path, sizeof path, "/v1/users/warmup-%s/balance/charge", pl.run);
    snprintf(body, sizeof body,
             "{\"title\":\"e2e %s warm-up\",\"schedules\":[{\"starts_at\":1893456000000,\"seats\":1,\"price\":1}]}",
             pl.run);
    while ((!wallet || !concert) && now_ms() - t0 < 240000) {
        if (!wallet) {
            const char *h[] = {JSON_CT, "Prefer: wait=30", NULL};
            resp r = call(c, "POST", path, h, "{\"amount\":1}");
            wallet = r.status == 200;
            resp_free(&r);
        }
        if (!concert) {
            const char *h[] = {JSON_CT, ADMIN_H, "Prefer: wait=30", NULL};
            resp r = call(c, "POST", "/v1/admin/concerts", h, body);
            concert = r.status == 201;
            resp_free(&r);
        }
    }
    cr_assert(wallet && concert, "the processors did not answer within 240 s (wallet %d, concert %d)", wallet, concert);
    fprintf(stderr, "e2e: both roles answered after %lld ms\n", (long long)(now_ms() - t0));
}

/* The first sample whose line starts with `prefix` (a name and the start
 * of its labels): its value, or -1 when there is none. */
static double metric(const char *text, const char *prefix) {
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, prefix, strlen(prefix)) != 0) continue;
        const char *sp = strchr(l, ' ');
        return sp ? strtod(sp + 1, NULL) : -1;
    }
    return -1;
}

/* GET /metrics (admin key) shows every component: the ingress's own
 * figures and those the relay, both processors and the projector write to
 * the data directory, in the text format (every sample line a name, maybe
 * labels, and a number). */
static void metrics_of_every_component(CURL *c) {
    const char *h[] = {ADMIN_H, NULL};
    static const char *const want[] = {
        "concert_http_responses_total{class=\"2xx\"}",
        "concert_relay_sent_total{",
        "concert_relay_publish_seconds_count{",
        "concert_outbox_rows{status=\"pending\"}",
        "concert_outbox_oldest_pending_seconds",
        "concert_processor_records_total{role=\"concert\"",
        "concert_processor_records_total{role=\"wallet\"",
        "concert_processor_transaction_seconds_count{role=\"wallet\"",
        "concert_processor_lag_records{role=\"concert\"",
        "concert_processor_restore_remaining_records{role=\"wallet\"",
        "concert_projector_events_total{",
        "concert_projector_batch_seconds_count{",
        "concert_projector_lag_records{",
        "concert_slack_pending_notifications",
    };
    char missing[256] = "";
    for (int64_t until = now_ms() + 20000;; usleep(500 * 1000)) {
        resp r = call(c, "GET", "/metrics", h, NULL);
        cr_assert_eq(r.status, 200, "%s", r.text);
        missing[0] = '\0';
        for (size_t i = 0; i < sizeof want / sizeof want[0] && !missing[0]; i++)
            if (metric(r.text, want[i]) < 0) snprintf(missing, sizeof missing, "%s", want[i]);
        bool counted = !missing[0] && metric(r.text, "concert_processor_records_total{role=\"wallet\"") > 0 &&
                       metric(r.text, "concert_processor_records_total{role=\"concert\"") > 0 &&
                       metric(r.text, "concert_projector_events_total{") > 0 &&
                       metric(r.text, "concert_relay_sent_total{") > 0;
        if (counted) {
            for (const char *l = r.text, *eol; *l; l = eol + 1) {
                eol = strchr(l, '\n');
                cr_assert_not_null(eol, "the text ends without a newline: %.80s", l);
                if (*l == '#') continue;
                const char *sp = eol;
                while (sp > l && *sp != ' ') sp--;
                char *end = NULL;
                cr_assert(sp > l, "no value: %.*s", (int)(eol - l), l);
                strtod(sp + 1, &end);
                cr_assert(end == eol, "not a number: %.*s", (int)(eol - l), l);
            }
            resp_free(&r);
            return;
        }
        resp_free(&r);
        cr_assert_lt(now_ms(), until, "/metrics lacks %s (or counted nothing) after 20 s",
                     missing[0] ? missing : "counts");
    }
}

/* GET /openapi.json serves ingress/openapi.json, and every answer this
 * test received is documented there and validates against its schema. */
static void answers_match_the_openapi_document(CURL *c) {
    resp r = call(c, "GET", "/openapi.json", NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.text);
    json_t *file = json_load_file(CT_SOURCE_DIR "/ingress/openapi.json", 0, NULL);
    cr_assert(file && json_equal(file, r.body), "/openapi.json is not ingress/openapi.json");
    json_decref(file);
    resp_free(&r);
    char cmd[1024], out[320];
    snprintf(out, sizeof out, "%s/openapi_check.out", pl.dir);
    snprintf(cmd, sizeof cmd,
             "python3 %s/schemas/openapi_check.py %s/ingress/openapi.json %s/exchanges.jsonl > %s 2>&1", CT_SOURCE_DIR,
             CT_SOURCE_DIR, pl.dir, out);
    int rc = system(cmd);
    FILE *f = fopen(out, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (rc != 0 || strstr(line, "answers checked")) fprintf(stderr, "openapi: %s", line);
    if (f) fclose(f);
    cr_assert_eq(rc, 0, "answers that ingress/openapi.json does not document or describe (above)");
}

Test(e2e, journeys_through_http_keep_the_invariants, .init = setup, .fini = teardown, .timeout = 600) {
    CURL *c = curl_easy_init();
    wait_until_both_roles_answer(c);
    struct {
        const char *name;
        void (*fn)(CURL *);
    } scenarios[] = {{"journey", journey},         {"seat race", seat_race},     {"queue", queue_fifo},
                     {"hold expiry", hold_expiry}, {"walkthrough", walkthrough}, {"poisoned", poisoned}};
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        int64_t t0 = now_ms();
        scenarios[i].fn(c);
        ct_test_inv_check(&pl.inv, scenarios[i].name);
        fprintf(stderr, "e2e: %s passed in %lld ms\n", scenarios[i].name, (long long)(now_ms() - t0));
    }
    metrics_of_every_component(c);
    answers_match_the_openapi_document(c);
    curl_easy_cleanup(c);
}
