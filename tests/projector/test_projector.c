/* `concert projector` against the real Postgres and the test cluster: a
 * generated stream of processor events (3,000 users across 10 concerts:
 * charges, tokens, holds, payments that succeed, fail or expire), with a
 * duplicated event, a malformed record and a dead letter in it.
 *
 *   read_models_follow_the_events   one uninterrupted projector: every
 *       table holds exactly what the events say (counts and values from the
 *       generator, not from the projector), the duplicate changed nothing,
 *       the malformed record and the dead letter became Slack rows, every
 *       terminal command was NOTIFYed; stopped and started again, it
 *       resumes from the stored offsets and changes nothing
 *   sigkill_leaves_the_read_models_equal   the same stream into a second
 *       database, the projector killed with SIGKILL again and again while
 *       the stream is written (small batches, so kills land mid-batch),
 *       restarted each time, and in between its Postgres connections cut
 *       (pg_terminate_backend) four times, which it must survive: the read
 *       models equal the uninterrupted run's, row for row.
 * Both end with DESIGN.md section 11's invariants 1-4 and 6 on every
 * database's read models (../support/ct_test_invariants.h), as far as a
 * stream without an outbox allows: the run's concerts, users and command
 * ids, against the events the projector applied. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/ct_test_eventually.h"
#include "../support/ct_test_invariants.h"
#include "../support/ct_test_kafka.h"
#include "../support/ct_test_pg.h"
#include "../support/ct_test_projector.h"

enum { CONCERTS = 10, USERS = 300, PRICE = 4000, CHARGE = 10000 };

static ct_config cfg;
static char run[32], dir[256];

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the stream -------------------------------------------------------------- */

/* What a user does: most pay; every 5th lets the hold expire; every 7th
 * (not 5th) has the payment fail and keeps the hold. */
typedef enum fate { PAYS, EXPIRES, FAILS } fate;
static fate fate_of(int u) { return u % 5 == 0 ? EXPIRES : u % 7 == 0 ? FAILS : PAYS; }

typedef struct expect {
    long events, terminal, confirmed, expired, failed;
} expect;

static rd_kafka_t *producer;
static int64_t produced;

static void send_raw(const char *topic, const char *key, const char *value, rd_kafka_headers_t *h) {
    rd_kafka_resp_err_t e;
    for (;;) {
        if (h)
            e = rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                  RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        else
            e = rd_kafka_producev(producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                                  RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) break;
        rd_kafka_poll(producer, 50);
    }
    cr_assert_eq(e, 0, "produce: %s", rd_kafka_err2str(e));
    produced++;
}

/* One event envelope, id "<run>-<name>", to its topic. */
static void event(const char *topic, const char *name, const char *type, int64_t ts, const char *cmd, const char *key,
                  const char *data) {
    char buf[2048];
    snprintf(buf, sizeof buf,
             "{\"id\":\"%s-%s\",\"type\":\"%s\",\"v\":1,\"ts\":%" PRId64 ",\"command_id\":\"%s-%s\",\"key\":\"%s\","
             "\"data\":%s}",
             run, name, type, ts, run, cmd, key, data);
    send_raw(topic, key, buf, NULL);
}

/* between(c), when not NULL, runs after concert c's events are written. */
static void produce_stream(expect *x, void (*between)(int c)) {
    memset(x, 0, sizeof *x);
    produced = 0;
    ct_error err = {0};
    ct_kafka_producer_opts po = {.client_id = "ct-test-projector", .linger_ms = 5};
    producer = ct_kafka_producer_new(&cfg, &po, &err);
    cr_assert(producer, "%s", err.msg);
    char d[768], name[96], cmd[96], key[64], user[64], res[96], pay[96], tok[96];
    const char *CE = CT_TOPIC_CONCERT_EVENTS, *WE = CT_TOPIC_WALLET_EVENTS;
    for (int c = 0; c < CONCERTS; c++) {
        snprintf(key, sizeof key, "%s-c%d", run, c);
        snprintf(name, sizeof name, "cc%d", c);
        snprintf(d, sizeof d,
                 "{\"concert_id\":\"%s\",\"title\":\"Concert %d\",\"max_active\":%d,\"active_ttl_ms\":60000,"
                 "\"hold_ttl_ms\":30000,\"schedule_count\":1,\"terminal\":true}",
                 key, c, USERS);
        event(CE, name, "ConcertCreated", 1000, name, key, d), x->events++, x->terminal++;
        snprintf(name, sizeof name, "cs%d", c);
        snprintf(d, sizeof d,
                 "{\"concert_id\":\"%s\",\"schedule_id\":\"s1\",\"starts_at\":99000,\"seats\":%d,\"price\":%d,"
                 "\"terminal\":false}",
                 key, USERS, PRICE);
        event(CE, name, "ScheduleCreated", 1000, "cc0", key, d), x->events++;
        for (int u = 0; u < USERS; u++) {
            int64_t ts = 2000 + u * 10;
            snprintf(user, sizeof user, "%s-u%d-%d", run, c, u);
            snprintf(res, sizeof res, "%s-r%d-%d", run, c, u);
            snprintf(pay, sizeof pay, "%s-p%d-%d", run, c, u);
            snprintf(tok, sizeof tok, "%s-t%d-%d", run, c, u);
            snprintf(name, sizeof name, "ch%d-%d", c, u);
            snprintf(d, sizeof d, "{\"user_id\":\"%s\",\"amount\":%d,\"balance\":%d,\"terminal\":true}", user,
                     fate_of(u) == FAILS ? PRICE / 2 : CHARGE, fate_of(u) == FAILS ? PRICE / 2 : CHARGE);
            event(WE, name, "BalanceCharged", ts, name, user, d), x->events++, x->terminal++;
            snprintf(name, sizeof name, "ti%d-%d", c, u);
            snprintf(d, sizeof d,
                     "{\"token\":\"%s\",\"user_id\":\"%s\",\"concert_id\":\"%s\",\"seq\":%d,\"status\":\"ACTIVE\","
                     "\"position\":0,\"active_until\":%" PRId64 ",\"terminal\":true}",
                     tok, user, key, u + 1, ts + 60000);
            event(CE, name, "TokenIssued", ts, name, key, d), x->events++, x->terminal++;
            snprintf(name, sizeof name, "sh%d-%d", c, u);
            snprintf(cmd, sizeof cmd, "sh%d-%d", c, u);
            snprintf(d, sizeof d,
                     "{\"reservation_id\":\"%s\",\"concert_id\":\"%s\",\"schedule_id\":\"s1\",\"seat_no\":%d,"
                     "\"user_id\":\"%s\",\"token\":\"%s\",\"hold_until\":%" PRId64 ",\"price\":%d,\"terminal\":true}",
                     res, key, u + 1, user, tok, ts + 1 + 30000, PRICE);
            event(CE, name, "SeatHeld", ts + 1, cmd, key, d), x->events++, x->terminal++;
            if (fate_of(u) == EXPIRES) {
                snprintf(name, sizeof name, "he%d-%d", c, u);
                snprintf(d, sizeof d,
                         "{\"reservation_id\":\"%s\",\"concert_id\":\"%s\",\"schedule_id\":\"s1\",\"seat_no\":%d,"
                         "\"user_id\":\"%s\",\"token\":\"%s\",\"hold_until\":%" PRId64 ",\"terminal\":false}",
                         res, key, u + 1, user, tok, ts + 1 + 30000);
                event(CE, name, "SeatHoldExpired", ts + 30001, "tick", key, d), x->events++, x->expired++;
                continue;
            }
            snprintf(cmd, sizeof cmd, "rp%d-%d", c, u);
            snprintf(name, sizeof name, "pr%d-%d", c, u);
            snprintf(d, sizeof d,
                     "{\"payment_id\":\"%s\",\"reservation_id\":\"%s\",\"user_id\":\"%s\",\"concert_id\":\"%s\","
                     "\"amount\":%d,\"terminal\":false}",
                     pay, res, user, key, PRICE);
            event(CE, name, "PaymentRequested", ts + 2, cmd, key, d), x->events++;
            if (fate_of(u) == FAILS) {
                snprintf(name, sizeof name, "dr%d-%d", c, u);
                snprintf(d, sizeof d,
                         "{\"payment_id\":\"%s\",\"reservation_id\":\"%s\",\"user_id\":\"%s\",\"concert_id\":\"%s\","
                         "\"amount\":%d,\"balance\":%d,\"reason\":\"INSUFFICIENT_BALANCE\",\"terminal\":true}",
                         pay, res, user, key, PRICE, PRICE / 2);
                event(WE, name, "DebitRejected", ts + 3, cmd, user, d), x->events++, x->terminal++, x->failed++;
                snprintf(name, sizeof name, "pf%d-%d", c, u);
                snprintf(d, sizeof d,
                         "{\"payment_id\":\"%s\",\"reservation_id\":\"%s\",\"concert_id\":\"%s\",\"user_id\":\"%s\","
                         "\"amount\":%d,\"reason\":\"INSUFFICIENT_BALANCE\",\"hold_until\":%" PRId64
                         ",\"terminal\":false}",
                         pay, res, key, user, PRICE, ts + 1 + 30000);
                event(CE, name, "PaymentFailed", ts + 4, cmd, key, d), x->events++;
                continue;
            }
            snprintf(name, sizeof name, "bd%d-%d", c, u);
            snprintf(d, sizeof d,
                     "{\"payment_id\":\"%s\",\"reservation_id\":\"%s\",\"user_id\":\"%s\",\"concert_id\":\"%s\","
                     "\"amount\":%d,\"balance\":%d,\"terminal\":true}",
                     pay, res, user, key, PRICE, CHARGE - PRICE);
            event(WE, name, "BalanceDebited", ts + 3, cmd, user, d), x->events++, x->terminal++, x->confirmed++;
            snprintf(name, sizeof name, "ss%d-%d", c, u);
            snprintf(d, sizeof d,
                     "{\"reservation_id\":\"%s\",\"payment_id\":\"%s\",\"concert_id\":\"%s\",\"schedule_id\":\"s1\","
                     "\"seat_no\":%d,\"user_id\":\"%s\",\"amount\":%d,\"terminal\":false}",
                     res, pay, key, u + 1, user, PRICE);
            event(CE, name, "SeatSold", ts + 4, cmd, key, d), x->events++;
            snprintf(name, sizeof name, "rc%d-%d", c, u);
            snprintf(d, sizeof d,
                     "{\"reservation_id\":\"%s\",\"payment_id\":\"%s\",\"concert_id\":\"%s\",\"schedule_id\":\"s1\","
                     "\"seat_no\":%d,\"user_id\":\"%s\",\"token\":\"%s\",\"amount\":%d,\"terminal\":false}",
                     res, pay, key, u + 1, user, tok, PRICE);
            event(CE, name, "ReservationConfirmed", ts + 4, cmd, key, d), x->events++;
        }
        /* A redelivered hold after its expiry (same id): applied again it
         * would bring the seat back. */
        snprintf(user, sizeof user, "%s-u%d-0", run, c);
        snprintf(res, sizeof res, "%s-r%d-0", run, c);
        snprintf(tok, sizeof tok, "%s-t%d-0", run, c);
        snprintf(name, sizeof name, "sh%d-0", c);
        snprintf(d, sizeof d,
                 "{\"reservation_id\":\"%s\",\"concert_id\":\"%s\",\"schedule_id\":\"s1\",\"seat_no\":1,"
                 "\"user_id\":\"%s\",\"token\":\"%s\",\"hold_until\":32001,\"price\":%d,\"terminal\":true}",
                 res, key, user, tok, PRICE);
        event(CE, name, "SeatHeld", 2001, name, key, d);
        if (between) {
            cr_assert_eq(rd_kafka_flush(producer, 30000), 0, "flush");
            between(c);
        }
    }
    /* A record no processor would write, and a dead letter. */
    snprintf(key, sizeof key, "%s-c0", run);
    send_raw(CT_TOPIC_CONCERT_EVENTS, key, "{not json", NULL);
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "dlq-reason", -1, "malformed JSON", -1);
    rd_kafka_header_add(h, "dlq-topic", -1, "concert.commands", -1);
    rd_kafka_header_add(h, "dlq-partition", -1, "2", -1);
    rd_kafka_header_add(h, "dlq-offset", -1, "77", -1);
    send_raw(CT_TOPIC_CONCERT_COMMANDS ".dlq", key, "garbage", h);
    cr_assert_eq(rd_kafka_flush(producer, 30000), 0, "flush");
    rd_kafka_destroy(producer);
}

/* ---- the projector as a process ------------------------------------------------ */

static pid_t start_projector(const char *url, const char *group, const char *log_path) {
    setenv("CONCERT_PG_URL", url, 1);
    return ct_test_projector_spawn(group, run, log_path);
}

/* Records of the events topics the projector has moved past. */
static long position(PGconn *db) {
    return ct_test_pg_count(db, "SELECT coalesce(sum(next_offset), 0) FROM projector_offsets"
                                " WHERE topic IN ('concert.events', 'wallet.events')");
}

static void await_position(PGconn *db, long target, int timeout_ms, const char *log_path) {
    int64_t deadline = now_ms() + timeout_ms;
    while (position(db) < target) {
        if (now_ms() > deadline) ct_test_print_log_tail(log_path, 30);
        cr_assert_leq(now_ms(), deadline, "projector at %ld of %ld after %d ms", position(db), target, timeout_ms);
        usleep(50 * 1000);
    }
}

/* The read models as text, row by row in a fixed order, without the
 * columns Postgres fills with its clock. */
static char *snapshot(PGconn *db) {
    static const char *const q[] = {
        "SELECT string_agg(x::text, E'\\n' ORDER BY x::text) FROM (SELECT command_id, type, status, reason, result,"
        " event_id FROM commands) x",
        "SELECT string_agg(x::text, E'\\n' ORDER BY x::text) FROM concerts x",
        "SELECT string_agg(x::text, E'\\n' ORDER BY x::text) FROM schedules x",
        "SELECT string_agg(x::text, E'\\n' ORDER BY x::text) FROM seats x",
        "SELECT string_agg(x::text, E'\\n' ORDER BY x::text) FROM queue_tokens x",
        "SELECT string_agg(x::text, E'\\n' ORDER BY x::text) FROM reservations x",
        "SELECT string_agg(x::text, E'\\n' ORDER BY x::text) FROM payments x",
        "SELECT string_agg(x::text, E'\\n' ORDER BY x::text) FROM balances x",
        "SELECT string_agg(x::text, E'\\n' ORDER BY x::text) FROM (SELECT kind, text, dedup_key"
        " FROM slack_notifications) x",
        "SELECT string_agg(id, E'\\n' ORDER BY id) FROM projected_events",
        "SELECT string_agg(x::text, E'\\n' ORDER BY x::text) FROM (SELECT topic, partition, next_offset"
        " FROM projector_offsets) x",
    };
    size_t cap = 1 << 20, len = 0;
    char *out = malloc(cap);
    cr_assert(out);
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        PGresult *r = PQexec(db, q[i]);
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
        const char *v = PQgetvalue(r, 0, 0);
        size_t n = strlen(v);
        while (len + n + 8 > cap) cr_assert(out = realloc(out, cap *= 2));
        memcpy(out + len, v, n), len += n;
        memcpy(out + len, "\n--\n", 4), len += 4;
        PQclear(r);
    }
    out[len] = 0;
    return out;
}

static long count(PGconn *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long count(PGconn *db, const char *fmt, ...) {
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return ct_test_pg_count(db, sql);
}

/* The dead letter is on a topic of its own: the events topics' position
 * does not say it was read. */
static void await_dead_letter(PGconn *db) {
    ct_test_eventually(30000, count(db, "SELECT count(*) FROM slack_notifications WHERE kind = 'dead_letter'") > 0,
                       "no dead letter notification within 30 s");
}

/* ---- the tests ------------------------------------------------------------------ */

static void setup(void) { ct_test_setup_run(&cfg, "projector", run, sizeof run, dir, sizeof dir); }

/* The invariants' scope on database db: the stream's concerts are
 * "<run>-c<n>". */
static void invariants_init(ct_test_inv *inv, PGconn *db) {
    char concerts[256];
    snprintf(concerts, sizeof concerts, "SELECT concert_id FROM concerts WHERE concert_id LIKE '%s-c%%'", run);
    ct_test_inv_init(inv, &cfg, db, run, concerts, false);
}
static void teardown(void) { ct_test_cleanup_run(dir); }

/* A case's own database, consumer group and log, told apart by tag: the
 * database, with url the server's and *start where the projector will
 * begin (the topics' ends). */
static PGconn *case_open(char tag, char name[64], char group[96], char log_path[320], char url[1024], long *start) {
    snprintf(name, 64, "ct_test_projector_%c_%s", tag, run);
    snprintf(group, 96, "ct-test-projector-%c-%s", tag, run);
    snprintf(log_path, 320, "%s/projector-%c.log", dir, tag);
    PGconn *db = ct_test_pg_database(&cfg, name);
    snprintf(url, 1024, "%s", getenv("CONCERT_PG_URL"));
    *start = ct_test_projector_start_at_ends(&cfg, db);
    return db;
}

Test(projector, read_models_follow_the_events, .init = setup, .fini = teardown, .timeout = 240) {
    char name[64], group[96], log_path[320], url[1024];
    long start;
    PGconn *db = case_open('a', name, group, log_path, url, &start);
    ct_test_inv inv;
    invariants_init(&inv, db);
    /* The ingress's way of hearing outcomes. */
    PGconn *listener = PQconnectdb(url);
    cr_assert_eq(PQstatus(listener), CONNECTION_OK);
    PQclear(PQexec(listener, "LISTEN command_done"));

    expect x;
    produce_stream(&x, NULL);
    setenv("CONCERT_LOG_LEVEL", "info", 1);
    int64_t t0 = now_ms();
    pid_t pj = start_projector(url, group, log_path);
    await_position(db, start + produced - 1 /* the dead letter is not on an events topic */, 90000, log_path);
    fprintf(stderr, "projector: %ld events in %lld ms (start-up included)\n", x.events, (long long)(now_ms() - t0));

    const long users = (long)CONCERTS * USERS;
    cr_assert_eq(count(db, "SELECT count(*) FROM projected_events"), x.events, "every event once, the duplicate not");
    cr_assert_eq(count(db, "SELECT count(*) FROM commands"), x.terminal);
    cr_assert_eq(count(db, "SELECT count(*) FROM commands WHERE status = 'REJECTED' AND reason = 'INSUFFICIENT_BALANCE'"
                           " AND type = 'DebitRejected'"),
                 x.failed);
    cr_assert_eq(count(db, "SELECT count(*) FROM concerts"), CONCERTS);
    cr_assert_eq(count(db, "SELECT count(*) FROM schedules WHERE seats = %d AND price = %d", USERS, PRICE), CONCERTS);
    cr_assert_eq(count(db, "SELECT count(*) FROM queue_tokens WHERE status = 'ACTIVE' AND activated_ts = issued_ts"),
                 users);
    cr_assert_eq(count(db, "SELECT count(*) FROM reservations WHERE status = 'CONFIRMED'"), x.confirmed);
    cr_assert_eq(count(db, "SELECT count(*) FROM reservations WHERE status = 'EXPIRED'"), x.expired);
    cr_assert_eq(count(db, "SELECT count(*) FROM reservations WHERE status = 'HELD'"), x.failed,
                 "a failed payment gives the hold back");
    cr_assert_eq(count(db, "SELECT count(*) FROM seats WHERE status = 'SOLD'"), x.confirmed);
    cr_assert_eq(count(db, "SELECT count(*) FROM seats WHERE status = 'HELD'"), x.failed);
    cr_assert_eq(count(db, "SELECT count(*) FROM seats WHERE seat_no = 1"), 0,
                 "user 0's hold expired; its redelivered SeatHeld must not bring the seat back");
    cr_assert_eq(count(db, "SELECT count(*) FROM payments WHERE status = 'SUCCEEDED'"), x.confirmed);
    cr_assert_eq(count(db, "SELECT count(*) FROM payments WHERE status = 'FAILED' AND reason = 'INSUFFICIENT_BALANCE'"),
                 x.failed);
    cr_assert_eq(count(db, "SELECT count(*) FROM balances"), users);
    cr_assert_eq(count(db,
                       "SELECT count(*) FROM balances b JOIN reservations r USING (user_id)"
                       " WHERE r.status = 'CONFIRMED' AND b.balance = %d",
                       CHARGE - PRICE),
                 x.confirmed);
    cr_assert_eq(count(db, "SELECT count(*) FROM slack_notifications WHERE kind = 'reservation_confirmed'"),
                 x.confirmed);
    cr_assert_eq(count(db, "SELECT count(*) FROM slack_notifications WHERE kind = 'projection_skipped'"
                           " AND text LIKE '%%not a JSON object%%'"),
                 1);
    await_dead_letter(db);
    cr_assert_eq(count(db, "SELECT count(*) FROM slack_notifications WHERE kind = 'dead_letter'"
                           " AND text LIKE '%%concert.commands partition 2 offset 77 (malformed JSON)%%'"),
                 1);

    /* Every terminal command was announced (after its commit). */
    long nseen = 0;
    size_t runlen = strlen(run);
    int64_t nd = now_ms() + 20000;
    while (nseen < x.terminal && now_ms() < nd) {
        struct pollfd pfd = {.fd = PQsocket(listener), .events = POLLIN};
        poll(&pfd, 1, 200);
        cr_assert_eq(PQconsumeInput(listener), 1, "%s", PQerrorMessage(listener));
        PGnotify *nf;
        while ((nf = PQnotifies(listener)) != NULL) {
            char *save = NULL;
            for (char *p = strtok_r(nf->extra, ",", &save); p; p = strtok_r(NULL, ",", &save))
                if (strncmp(p, run, runlen) == 0) nseen++;
            PQfreemem(nf);
        }
    }
    cr_assert_eq(nseen, x.terminal, "NOTIFY command_done named %ld of %ld terminal commands", nseen, x.terminal);
    PQfinish(listener);

    /* Stopped and started again: it resumes where it was; nothing moves. */
    char *before = snapshot(db);
    ct_test_stop_clean(pj, "projector", log_path);
    pj = start_projector(url, group, log_path);
    sleep(3);
    char *after = snapshot(db);
    cr_assert_str_eq(after, before, "a restart changed the read models");
    ct_test_stop_clean(pj, "projector", log_path);
    free(before), free(after);
    ct_test_inv_check(&inv, "the stream");
    ct_test_inv_fini(&inv);
    ct_test_pg_drop(db, &cfg, name);
}

/* Sends what was produced and waits until the projector has read it. */
static void flush_and_await(PGconn *db, long target, const char *log_path) {
    cr_assert_eq(rd_kafka_flush(producer, 30000), 0, "flush");
    await_position(db, target, 60000, log_path);
}

/* Payment i's settlement on concert.events (reservation r<i>, seat i, user
 * <run>-u, concert c1): its ReservationConfirmed or PaymentFailed, with
 * the terminal flag given. */
static void settlement(int i, bool ok, bool terminal, int64_t ts) {
    char d[1024], name[16], cmd[16];
    snprintf(name, sizeof name, "%s%d", ok ? "rc" : "pf", i), snprintf(cmd, sizeof cmd, "pay%d", i);
    if (ok)
        snprintf(
            d, sizeof d,
            "{\"reservation_id\":\"%s-r%d\",\"payment_id\":\"%s-p%d\",\"concert_id\":\"c1\",\"schedule_id\":\"s1\","
            "\"seat_no\":%d,\"user_id\":\"%s-u\",\"token\":\"%s-t\",\"amount\":%d,\"terminal\":%s}",
            run, i, run, i, i, run, run, PRICE, terminal ? "true" : "false");
    else
        snprintf(d, sizeof d,
                 "{\"payment_id\":\"%s-p%d\",\"reservation_id\":\"%s-r%d\",\"concert_id\":\"c1\",\"user_id\":\"%s-u\","
                 "\"amount\":%d,\"reason\":\"INSUFFICIENT_BALANCE\",\"hold_until\":99000,\"terminal\":%s}",
                 run, i, run, i, run, PRICE, terminal ? "true" : "false");
    event(CT_TOPIC_CONCERT_EVENTS, name, ok ? "ReservationConfirmed" : "PaymentFailed", ts, cmd, "c1", d);
}

/* A payment's outcome is the wallet's BalanceDebited or DebitRejected, on
 * wallet.events; the PaymentRequested before it and the settlement's
 * events after it are on concert.events, another partition the projector
 * may read later. Wallet first: the read models show the outcome at once
 * and the late concert events take nothing back. Records written before
 * the wallet's decision became the outcome (terminal PaymentFailed and
 * ReservationConfirmed) still give their command's status. */
Test(projector, a_payment_decided_before_its_request_is_read_stays_decided, .init = setup, .fini = teardown,
     .timeout = 120) {
    char name[64], group[96], log_path[320], d[1024], url[1024];
    long start, n = 0;
    PGconn *db = case_open('o', name, group, log_path, url, &start);
    const char *CE = CT_TOPIC_CONCERT_EVENTS, *WE = CT_TOPIC_WALLET_EVENTS, *key = "c1";
    ct_error err = {0};
    ct_kafka_producer_opts po = {.client_id = "ct-test-projector"};
    cr_assert(producer = ct_kafka_producer_new(&cfg, &po, &err), "%s", err.msg);
    char user[64];
    snprintf(user, sizeof user, "%s-u", run);
    for (int i = 1; i <= 4; i++) {
        char ev[16], cmd[16];
        snprintf(ev, sizeof ev, "sh%d", i), snprintf(cmd, sizeof cmd, "hold%d", i);
        snprintf(d, sizeof d,
                 "{\"reservation_id\":\"%s-r%d\",\"concert_id\":\"%s\",\"schedule_id\":\"s1\",\"seat_no\":%d,"
                 "\"user_id\":\"%s\",\"token\":\"%s-t\",\"hold_until\":99000,\"price\":%d,\"terminal\":true}",
                 run, i, key, i, user, run, PRICE);
        event(CE, ev, "SeatHeld", 1000, cmd, key, d), n++;
    }
    pid_t pj = start_projector(url, group, log_path);
    flush_and_await(db, start + n, log_path);
    /* the wallet's decisions first: p1 paid, p2 refused */
    const char *pay =
        "{\"payment_id\":\"%s-p%d\",\"reservation_id\":\"%s-r%d\",\"user_id\":\"%s\",\"concert_id\":\"%s\","
        "\"amount\":%d,\"balance\":%d%s,\"terminal\":%s}";
    snprintf(d, sizeof d, pay, run, 1, run, 1, user, key, PRICE, 0, "", "true");
    event(WE, "bd1", "BalanceDebited", 2000, "pay1", user, d), n++;
    snprintf(d, sizeof d, pay, run, 2, run, 2, user, key, PRICE, 0, ",\"reason\":\"INSUFFICIENT_BALANCE\"", "true");
    event(WE, "dr2", "DebitRejected", 2000, "pay2", user, d), n++;
    flush_and_await(db, start + n, log_path);
    cr_assert_eq(count(db,
                       "SELECT count(*) FROM commands WHERE command_id = '%s-pay1' AND status = 'SUCCEEDED'"
                       " AND type = 'BalanceDebited'",
                       run),
                 1);
    cr_assert_eq(count(db,
                       "SELECT count(*) FROM commands WHERE command_id = '%s-pay2' AND status = 'REJECTED'"
                       " AND reason = 'INSUFFICIENT_BALANCE'",
                       run),
                 1);
    cr_assert_eq(count(db,
                       "SELECT count(*) FROM reservations WHERE reservation_id = '%s-r1' AND status = 'CONFIRMED'"
                       " AND payment_id = '%s-p1'",
                       run, run),
                 1, "the outcome shows at once");
    cr_assert_eq(count(db, "SELECT count(*) FROM payments WHERE payment_id = '%s-p1' AND status = 'SUCCEEDED'", run),
                 1);
    cr_assert_eq(count(db, "SELECT count(*) FROM seats WHERE seat_no = 1 AND status = 'SOLD'"), 1);
    cr_assert_eq(count(db,
                       "SELECT count(*) FROM payments WHERE payment_id = '%s-p2' AND status = 'FAILED'"
                       " AND reason = 'INSUFFICIENT_BALANCE'",
                       run),
                 1);
    cr_assert_eq(count(db, "SELECT count(*) FROM reservations WHERE reservation_id = '%s-r2' AND status = 'HELD'", run),
                 1);
    /* then the concert side's records, late */
    for (int i = 1; i <= 2; i++) {
        char ev[16], cmd[16];
        snprintf(ev, sizeof ev, "pr%d", i), snprintf(cmd, sizeof cmd, "pay%d", i);
        snprintf(d, sizeof d,
                 "{\"payment_id\":\"%s-p%d\",\"reservation_id\":\"%s-r%d\",\"user_id\":\"%s\",\"concert_id\":\"%s\","
                 "\"amount\":%d,\"terminal\":false}",
                 run, i, run, i, user, key, PRICE);
        event(CE, ev, "PaymentRequested", 1500, cmd, key, d), n++;
    }
    flush_and_await(db, start + n, log_path);
    cr_assert_eq(
        count(db, "SELECT count(*) FROM reservations WHERE reservation_id = '%s-r1' AND status = 'CONFIRMED'", run), 1,
        "a late PaymentRequested takes nothing back");
    cr_assert_eq(count(db, "SELECT count(*) FROM seats WHERE seat_no = 1 AND status = 'SOLD'"), 1);
    cr_assert_eq(count(db, "SELECT count(*) FROM payments WHERE payment_id = '%s-p1' AND status = 'SUCCEEDED'", run),
                 1);
    cr_assert_eq(count(db, "SELECT count(*) FROM payments WHERE payment_id = '%s-p2' AND status = 'FAILED'", run), 1);
    snprintf(d, sizeof d,
             "{\"reservation_id\":\"%s-r1\",\"payment_id\":\"%s-p1\",\"concert_id\":\"%s\",\"schedule_id\":\"s1\","
             "\"seat_no\":1,\"user_id\":\"%s\",\"amount\":%d,\"terminal\":false}",
             run, run, key, user, PRICE);
    event(CE, "ss1", "SeatSold", 2500, "pay1", key, d), n++;
    settlement(1, true, false, 2500), n++;
    settlement(2, false, false, 2500), n++;
    /* records of the earlier scheme: the settlement's events were the outcome */
    settlement(3, false, true, 2600), n++;
    settlement(4, true, true, 2600), n++;
    flush_and_await(db, start + n, log_path);
    rd_kafka_destroy(producer);
    cr_assert_eq(
        count(db, "SELECT count(*) FROM reservations WHERE reservation_id = '%s-r1' AND status = 'CONFIRMED'", run), 1,
        "the settlement repeats the outcome");
    cr_assert_eq(count(db, "SELECT count(*) FROM payments WHERE payment_id = '%s-p1' AND status = 'SUCCEEDED'", run),
                 1);
    cr_assert_eq(count(db, "SELECT count(*) FROM seats WHERE seat_no = 1 AND status = 'SOLD'"), 1);
    cr_assert_eq(count(db, "SELECT count(*) FROM reservations WHERE reservation_id = '%s-r2' AND status = 'HELD'", run),
                 1, "the failed payment gives the hold back");
    cr_assert_eq(count(db, "SELECT count(*) FROM payments WHERE payment_id = '%s-p2' AND status = 'FAILED'", run), 1);
    cr_assert_eq(count(db, "SELECT count(*) FROM commands WHERE command_id LIKE '%s-pay%%'", run), 4,
                 "one outcome per payment, the first");
    cr_assert_eq(
        count(db, "SELECT count(*) FROM commands WHERE command_id = '%s-pay1' AND type = 'BalanceDebited'", run), 1);
    cr_assert_eq(count(db,
                       "SELECT count(*) FROM commands WHERE command_id = '%s-pay3' AND status = 'REJECTED'"
                       " AND reason = 'INSUFFICIENT_BALANCE' AND type = 'PaymentFailed'",
                       run),
                 1);
    cr_assert_eq(count(db,
                       "SELECT count(*) FROM commands WHERE command_id = '%s-pay4' AND status = 'SUCCEEDED'"
                       " AND type = 'ReservationConfirmed'",
                       run),
                 1);
    ct_test_stop_clean(pj, "projector", log_path);
    ct_test_pg_drop(db, &cfg, name);
}

/* A hot seat freed and taken again within one batch: the same seat row is
 * written by three holds and two expiries, which the projector must apply
 * in the log's order (its statements take the batch's events a layer at a
 * time) and in the one transaction, not through the one-event-at-a-time
 * path meant for events the database refuses. */
Test(projector, a_batch_writing_a_row_again_applies_it_in_order, .init = setup, .fini = teardown, .timeout = 120) {
    char name[64], group[96], log_path[320], d[1024], url[1024];
    long start, n = 0;
    PGconn *db = case_open('l', name, group, log_path, url, &start);
    ct_error err = {0};
    ct_kafka_producer_opts po = {.client_id = "ct-test-projector"};
    cr_assert(producer = ct_kafka_producer_new(&cfg, &po, &err), "%s", err.msg);
    const char *seat = "{\"reservation_id\":\"%s-r%d\",\"concert_id\":\"c1\",\"schedule_id\":\"s1\",\"seat_no\":1,"
                       "\"user_id\":\"%s-u%d\",\"token\":\"%s-t%d\",\"hold_until\":%d,\"price\":%d,\"terminal\":%s}";
    for (int i = 1; i <= 3; i++) {
        char ev[16];
        snprintf(ev, sizeof ev, "sh%d", i);
        snprintf(d, sizeof d, seat, run, i, run, i, run, i, 1000 * i + 500, PRICE, "true");
        event(CT_TOPIC_CONCERT_EVENTS, ev, "SeatHeld", 1000 * i, ev, "c1", d), n++;
        if (i == 3) break;
        snprintf(ev, sizeof ev, "he%d", i);
        snprintf(d, sizeof d, seat, run, i, run, i, run, i, 1000 * i + 500, PRICE, "false");
        event(CT_TOPIC_CONCERT_EVENTS, ev, "SeatHoldExpired", 1000 * i + 500, "tick", "c1", d), n++;
    }
    /* all written before the projector starts: one batch */
    cr_assert_eq(rd_kafka_flush(producer, 30000), 0, "flush");
    pid_t pj = start_projector(url, group, log_path);
    flush_and_await(db, start + n, log_path);
    rd_kafka_destroy(producer);
    cr_assert_eq(count(db, "SELECT count(*) FROM seats WHERE seat_no = 1"), 1);
    cr_assert_eq(count(db,
                       "SELECT count(*) FROM seats WHERE seat_no = 1 AND status = 'HELD' AND reservation_id = '%s-r3'"
                       " AND user_id = '%s-u3' AND hold_until = 3500",
                       run, run),
                 1, "the last hold has the seat");
    cr_assert_eq(count(db, "SELECT count(*) FROM reservations WHERE status = 'EXPIRED' AND updated_ts IN (1500, 2500)"),
                 2);
    cr_assert_eq(count(db, "SELECT count(*) FROM reservations WHERE reservation_id = '%s-r3' AND status = 'HELD'", run),
                 1);
    ct_test_stop_clean(pj, "projector", log_path);
    const char *slow[] = {"one at a time"};
    char found[1024];
    ct_test_log_find(log_path, slow, 1, found, sizeof found);
    cr_assert(!found[0], "the batch took the slow path: %s", found);
    ct_test_pg_drop(db, &cfg, name);
}

static const char *url_kill, *group_kill, *log_kill;
static PGconn *db_kill;
static long start_kill, last_kill = -1;
static int kills, progressed, reconnected;

static pid_t live;
static long cut_at = -1;

/* After concert c's events: a projector (the one still alive, or a new
 * one) works a while, then dies by SIGKILL; or, every other time, loses
 * its Postgres connections instead (as in a database restart or failover)
 * and lives on into the next concert's events, which it must apply after
 * reconnecting and re-reading its offsets. */
static void kill_cycle(int c) {
    if (cut_at >= 0) {
        ct_test_eventually(15000, position(db_kill) > cut_at,
                           "no progress in 15 s after the projector lost its connections (at %ld)", cut_at);
        cr_assert_eq(waitpid(live, NULL, WNOHANG), 0, "the projector died with its database connections");
        reconnected++;
        cut_at = -1;
    }
    if (!live) live = start_projector(url_kill, group_kill, log_kill);
    uint32_t r = 0;
    cr_assert_eq(getrandom(&r, sizeof r, 0), (ssize_t)sizeof r);
    /* Start-up (group join) takes a few hundred ms; then batches of 10. */
    usleep((useconds_t)(400 + r % 1200) * 1000);
    if (c % 2 == 1 && c < CONCERTS - 1) {
        PQclear(PQexec(db_kill, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                " WHERE datname = current_database() AND pid <> pg_backend_pid()"));
        cut_at = position(db_kill);
        return;
    }
    kill(live, SIGKILL);
    int st;
    waitpid(live, &st, 0);
    live = 0;
    kills++;
    long pos = position(db_kill);
    if (pos > (last_kill < 0 ? start_kill : last_kill)) progressed++;
    last_kill = pos;
}

Test(projector, sigkill_leaves_the_read_models_equal, .init = setup, .fini = teardown, .timeout = 300) {
    char name_a[64], name_b[64], group_a[96], group_b[96], log_a[320], log_b[320];
    snprintf(name_a, sizeof name_a, "ct_test_projector_a_%s", run);
    snprintf(name_b, sizeof name_b, "ct_test_projector_b_%s", run);
    snprintf(group_a, sizeof group_a, "ct-test-projector-a-%s", run);
    snprintf(group_b, sizeof group_b, "ct-test-projector-b-%s", run);
    snprintf(log_a, sizeof log_a, "%s/projector-a.log", dir);
    snprintf(log_b, sizeof log_b, "%s/projector-b.log", dir);
    PGconn *db_a = ct_test_pg_database(&cfg, name_a);
    static char url_a[1024], url_b[1024];
    snprintf(url_a, sizeof url_a, "%s", getenv("CONCERT_PG_URL"));
    PGconn *db_b = ct_test_pg_database(&cfg, name_b);
    snprintf(url_b, sizeof url_b, "%s", getenv("CONCERT_PG_URL"));
    long start = ct_test_projector_start_at_ends(&cfg, db_a);
    cr_assert_eq(ct_test_projector_start_at_ends(&cfg, db_b), start);
    ct_test_inv inv_a, inv_b;
    invariants_init(&inv_a, db_a);
    invariants_init(&inv_b, db_b);
    /* Killed again and again while the stream is written: after each
     * concert's events, a projector starts, works a while, and dies. */
    url_kill = url_b, group_kill = group_b, log_kill = log_b, db_kill = db_b, start_kill = start;
    setenv("CONCERT_PROJECTOR_BATCH_MAX", "10", 1);
    expect x;
    produce_stream(&x, kill_cycle);
    long target = start + produced - 1;
    fprintf(stderr, "projector: %d SIGKILLs (%d with progress since the last), %d lost connections survived\n", kills,
            progressed, reconnected);
    cr_assert_eq(kills, CONCERTS / 2 + 1);
    cr_assert_eq(reconnected, CONCERTS / 2 - 1);
    cr_assert_geq(progressed, kills / 2, "the kills did not land while it was working");

    /* The reference: one uninterrupted run over the whole stream. */
    unsetenv("CONCERT_PROJECTOR_BATCH_MAX");
    pid_t pa = start_projector(url_a, group_a, log_a);
    await_position(db_a, target, 90000, log_a);
    await_dead_letter(db_a);
    ct_test_stop_clean(pa, "projector a", log_a);

    pid_t pb = start_projector(url_b, group_b, log_b);
    await_position(db_b, target, 90000, log_b);
    await_dead_letter(db_b);
    ct_test_stop_clean(pb, "projector b", log_b);

    char *sa = snapshot(db_a), *sb = snapshot(db_b);
    cr_assert_gt(strlen(sa), 100000u, "the reference run holds the stream");
    if (strcmp(sa, sb) != 0) {
        size_t i = 0;
        while (sa[i] && sa[i] == sb[i]) i++;
        size_t from = i > 200 ? i - 200 : 0;
        cr_log_error("first difference at byte %zu:\n--- uninterrupted ---\n%.400s\n--- killed ---\n%.400s", i,
                     sa + from, sb + from);
    }
    cr_assert(strcmp(sa, sb) == 0, "read models after %d SIGKILLs differ from the uninterrupted run's", kills);
    free(sa), free(sb);
    ct_test_inv_check(&inv_a, "the uninterrupted run");
    ct_test_inv_check(&inv_b, "the SIGKILLs");
    ct_test_inv_fini(&inv_a);
    ct_test_inv_fini(&inv_b);
    ct_test_pg_drop(db_a, &cfg, name_a);
    ct_test_pg_drop(db_b, &cfg, name_b);
}
