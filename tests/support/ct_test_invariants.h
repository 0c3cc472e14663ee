/* DESIGN.md section 11's invariants 1 to 4 and 6, checked at the end of a
 * test on the read models of its own database, against the events the
 * projector applied to them. Header-only, for the tests that run
 * `concert projector` (tests/e2e, tests/projector).
 *
 * Scope. The test cluster's topics are shared: a test's projector also
 * applies whatever other runs write meanwhile. So the checks look at the
 * test's own users (ids containing its run id), concerts (concerts_sql) and
 * commands (its outbox's, or those whose id starts with the run id).
 *
 * Where the money is. The read models show charges (the BalanceCharged
 * outcomes in `commands`), seats paid (`payments` SUCCEEDED) and each
 * user's balance after their latest wallet event (`balances`), but no table
 * records a debit or a refund: BalanceDebited and BalanceRefunded only move
 * `balances`. Invariant 2 is therefore checked against wallet.events
 * itself, read (read_committed, deduplicated by event id, as the projector
 * does) from where the projector started up to where the read models are:
 * the offsets stored with them, read in the same REPEATABLE READ snapshot.
 * Those events' terminal outcomes are how invariant 3's "exactly one" is
 * seen too: `commands` keeps the first outcome of a command and would hide
 * a second one. The events are read once: each check goes on from where
 * the last stopped (ct_test_inv_fini frees what they keep).
 *
 *   1. at most one live reservation per seat; every live reservation's seat
 *      row names it; every seat row names a live reservation of that seat
 *      and user with the matching status;
 *   2. per user, replaying the wallet events: every event's balance is
 *      charged - debited + refunded so far and never negative; the balance
 *      read model equals the total; the charges equal the BalanceCharged
 *      outcomes; what the wallet kept (debited - refunded) equals the
 *      user's SUCCEEDED payments;
 *   3. each of the test's commands has exactly one terminal event, and its
 *      `commands` row names that event; with an outbox: every accepted
 *      command has its outcome and there is no outcome for a command of
 *      the test's users or concerts that was never accepted;
 *   4. with an outbox: every row SENT, or FAILED with its Slack alert;
 *   6. at most max_active ACTIVE tokens per concert; every reservation was
 *      made with a token of its user and concert, active at that time.
 *
 * Checks that must hold in any snapshot of the read models fail at once;
 * the two that span topics or batches (seat vs reservation status, and
 * debited - refunded = paid: SeatSold and ReservationConfirmed, or
 * concert.events and wallet.events, may land in different transactions)
 * are retried on fresh snapshots for up to 30 s. */
#ifndef CT_TEST_INVARIANTS_H
#define CT_TEST_INVARIANTS_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ct_config.h"
#include "ct_kafka.h"

#define CT_TEST_INV_PARTITIONS_MAX 64
#define CT_TEST_INV_WAIT_MS 60000   /* outbox rows reaching SENT + outcome */
#define CT_TEST_INV_SETTLE_MS 30000 /* checks across topics or batches */
#define CT_TEST_INV_SCAN_MS 30000   /* reading the events the read models hold */

typedef struct ct_test_inv_user {
    int64_t charged, debited, refunded, balance;
    long events;
} ct_test_inv_user;

typedef struct ct_test_inv_scan {
    json_t *ids;   /* event ids seen (deduplication) */
    json_t *users; /* user id -> index into user[] */
    ct_test_inv_user *user;
    size_t users_n, users_cap;
    json_t *terminal; /* in-scope command id -> [event id, ...] of its terminal events */
    long events;      /* distinct events read that concern the test */
    long read;        /* records read */
    char bad[1024];   /* first wallet event whose balance breaks invariant 2 */
} ct_test_inv_scan;

typedef struct ct_test_inv {
    const ct_config *cfg;
    PGconn *db;
    char run[64];
    char users_like[80];     /* LIKE pattern: the run's user ids */
    char concerts_sql[1024]; /* SELECT of the test's concert ids */
    bool outbox;             /* commands came through this database's outbox */
    int partitions;
    int64_t from[2][CT_TEST_INV_PARTITIONS_MAX]; /* projector start: concert.events, wallet.events */
    int64_t next[2][CT_TEST_INV_PARTITIONS_MAX]; /* read so far (events only append: read once) */
    ct_test_inv_scan scan;
    int rounds;
} ct_test_inv;

static const char *const ct_test_inv_topics[2] = {CT_TOPIC_CONCERT_EVENTS, CT_TOPIC_WALLET_EVENTS};

static inline int64_t ct_test_inv_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline PGresult *ct_test_inv_vq(ct_test_inv *inv, const char *fmt, va_list ap) {
    char sql[8192];
    int n = vsnprintf(sql, sizeof sql, fmt, ap);
    cr_assert(n > 0 && (size_t)n < sizeof sql, "invariant query too long");
    PGresult *r = PQexec(inv->db, sql);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(r));
    return r;
}

static inline PGresult *ct_test_inv_q(ct_test_inv *inv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline PGresult *ct_test_inv_q(ct_test_inv *inv, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = ct_test_inv_vq(inv, fmt, ap);
    va_end(ap);
    return r;
}

static inline long ct_test_inv_count(ct_test_inv *inv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline long ct_test_inv_count(ct_test_inv *inv, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    PGresult *r = ct_test_inv_vq(inv, fmt, ap);
    va_end(ap);
    long c = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return c;
}

/* Call right after ct_test_projector_start_at_ends(cfg, db), before any
 * projector runs: remembers where the projector starts. run: the test's
 * run id (its users' ids contain it; without an outbox, its command ids
 * start with it). concerts_sql: a SELECT of the test's concert ids. outbox:
 * commands were accepted through db's outbox (the ingress). */
static inline void ct_test_inv_init(ct_test_inv *inv, const ct_config *cfg, PGconn *db, const char *run,
                                    const char *concerts_sql, bool outbox) {
    memset(inv, 0, sizeof *inv);
    inv->cfg = cfg;
    inv->db = db;
    inv->outbox = outbox;
    snprintf(inv->run, sizeof inv->run, "%s", run);
    snprintf(inv->users_like, sizeof inv->users_like, "%%%s%%", run);
    snprintf(inv->concerts_sql, sizeof inv->concerts_sql, "%s", concerts_sql);
    inv->partitions = cfg->kafka_partitions;
    cr_assert_leq(inv->partitions, CT_TEST_INV_PARTITIONS_MAX);
    for (int t = 0; t < 2; t++)
        for (int p = 0; p < inv->partitions; p++) inv->from[t][p] = -1;
    PGresult *r = ct_test_inv_q(inv, "SELECT topic, partition, next_offset FROM projector_offsets"
                                     " WHERE topic IN ('concert.events', 'wallet.events')");
    for (int i = 0; i < PQntuples(r); i++) {
        int t = strcmp(PQgetvalue(r, i, 0), CT_TOPIC_WALLET_EVENTS) == 0, p = atoi(PQgetvalue(r, i, 1));
        if (p >= 0 && p < inv->partitions) inv->from[t][p] = atoll(PQgetvalue(r, i, 2));
    }
    PQclear(r);
    for (int t = 0; t < 2; t++)
        for (int p = 0; p < inv->partitions; p++)
            cr_assert_geq(inv->from[t][p], 0, "no start offset for %s[%d]: call ct_test_projector_start_at_ends first",
                          ct_test_inv_topics[t], p);
    memcpy(inv->next, inv->from, sizeof inv->next);
    inv->scan.ids = json_object(), inv->scan.users = json_object(), inv->scan.terminal = json_object();
}

/* ---- what the events say ---------------------------------------------------- */

static inline ct_test_inv_user *ct_test_inv_user_of(ct_test_inv_scan *s, const char *user) {
    json_t *ix = json_object_get(s->users, user);
    if (ix) return &s->user[json_integer_value(ix)];
    if (s->users_n == s->users_cap) {
        s->users_cap = s->users_cap ? s->users_cap * 2 : 256;
        s->user = realloc(s->user, s->users_cap * sizeof *s->user);
        cr_assert(s->user);
    }
    memset(&s->user[s->users_n], 0, sizeof s->user[0]);
    json_object_set_new(s->users, user, json_integer((json_int_t)s->users_n));
    return &s->user[s->users_n++];
}

/* Frees what ct_test_inv_init and the checks keep. */
static inline void ct_test_inv_fini(ct_test_inv *inv) {
    ct_test_inv_scan *s = &inv->scan;
    json_decref(s->ids), json_decref(s->users), json_decref(s->terminal);
    free(s->user);
    memset(s, 0, sizeof *s);
}

/* One event: its terminal outcome if its command is in scope, and the
 * wallet movement of the run's users. */
static inline void ct_test_inv_event(ct_test_inv *inv, ct_test_inv_scan *s, json_t *scope, bool wallet,
                                     const rd_kafka_message_t *m) {
    json_t *ev = json_loadb(m->payload, m->len, 0, NULL);
    const char *id = json_string_value(json_object_get(ev, "id"));
    const char *type = json_string_value(json_object_get(ev, "type"));
    const char *cid = json_string_value(json_object_get(ev, "command_id"));
    json_t *d = json_object_get(ev, "data");
    const char *user = json_string_value(json_object_get(d, "user_id"));
    json_t *bal = json_object_get(d, "balance");
    bool ours = cid && (scope ? json_object_get(scope, cid) != NULL : strncmp(cid, inv->run, strlen(inv->run)) == 0);
    bool money = wallet && user && strstr(user, inv->run) && json_is_integer(bal);
    /* Malformed, not the test's, or a repeat (the projector skips it too). */
    if (!id || !type || !json_is_object(d) || !(ours || money) || json_object_get(s->ids, id)) {
        json_decref(ev);
        return;
    }
    json_object_set_new(s->ids, id, json_true());
    s->events++;
    if (ours && json_is_true(json_object_get(d, "terminal"))) {
        json_t *list = json_object_get(s->terminal, cid);
        if (!list) json_object_set_new(s->terminal, cid, list = json_array());
        json_array_append_new(list, json_string(id));
    }
    if (money) {
        ct_test_inv_user *u = ct_test_inv_user_of(s, user);
        int64_t amount = json_integer_value(json_object_get(d, "amount"));
        if (!strcmp(type, "BalanceCharged"))
            u->charged += amount;
        else if (!strcmp(type, "BalanceDebited"))
            u->debited += amount;
        else if (!strcmp(type, "BalanceRefunded"))
            u->refunded += amount;
        u->balance = json_integer_value(bal);
        u->events++;
        int64_t want = u->charged - u->debited + u->refunded;
        if (!s->bad[0] && (u->balance != want || u->balance < 0))
            snprintf(s->bad, sizeof s->bad,
                     "invariant 2: %s %s of %s says balance %lld; charged %lld - debited %lld + refunded %lld = %lld",
                     type, id, user, (long long)u->balance, (long long)u->charged, (long long)u->debited,
                     (long long)u->refunded, (long long)want);
    }
    json_decref(ev);
}

/* Reads both events topics, read_committed, on from where the last call
 * stopped (at first: where the projector started) to `to` (the offsets
 * stored with the read models) into inv->scan. */
static inline void ct_test_inv_read(ct_test_inv *inv, int64_t to[2][CT_TEST_INV_PARTITIONS_MAX], json_t *scope) {
    ct_test_inv_scan *s = &inv->scan;
    char group[128];
    snprintf(group, sizeof group, "ct-test-invariants-%s-%d", inv->run, inv->rounds++);
    ct_error err = {0};
    ct_kafka_consumer_opts o = {.client_id = "ct-test-invariants", .group_id = group, .read_committed = true};
    rd_kafka_t *rk = ct_kafka_consumer_new(inv->cfg, &o, &err);
    cr_assert_not_null(rk, "%s %s", err.msg, err.detail);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2 * inv->partitions);
    int64_t(*next)[CT_TEST_INV_PARTITIONS_MAX] = inv->next;
    int open = 0;
    for (int t = 0; t < 2; t++)
        for (int p = 0; p < inv->partitions; p++) {
            if (to[t][p] <= next[t][p]) continue;
            rd_kafka_topic_partition_list_add(l, ct_test_inv_topics[t], p)->offset = next[t][p];
            open++;
        }
    if (open == 0) {
        rd_kafka_topic_partition_list_destroy(l);
        return;
    }
    cr_assert_eq(rd_kafka_assign(rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    int64_t deadline = ct_test_inv_now_ms() + CT_TEST_INV_SCAN_MS;
    while (open > 0 && ct_test_inv_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m) continue;
        int t = m->rkt && !strcmp(rd_kafka_topic_name(m->rkt), CT_TOPIC_WALLET_EVENTS);
        if (!m->err && m->partition >= 0 && m->partition < inv->partitions && m->offset >= next[t][m->partition] &&
            m->offset < to[t][m->partition]) {
            s->read++;
            ct_test_inv_event(inv, s, scope, t == 1, m);
            bool was_open = next[t][m->partition] < to[t][m->partition];
            next[t][m->partition] = m->offset + 1;
            if (was_open && next[t][m->partition] >= to[t][m->partition]) open--;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    for (int t = 0; t < 2; t++)
        for (int p = 0; p < inv->partitions; p++)
            cr_assert_geq(next[t][p], to[t][p], "read %s[%d] up to %lld of %lld in %d ms", ct_test_inv_topics[t], p,
                          (long long)next[t][p], (long long)to[t][p], CT_TEST_INV_SCAN_MS);
}

/* ---- the checks ---------------------------------------------------------------- */

/* Invariant 4 and 3's "every accepted command has an outcome": waits until
 * every outbox row is SENT with its outcome, or FAILED with its alert. */
static inline void ct_test_inv_await_outbox(ct_test_inv *inv) {
    static const char open_sql[] =
        "SELECT count(*) FROM outbox o WHERE NOT ("
        " (o.status = 'SENT' AND EXISTS (SELECT 1 FROM commands c WHERE c.command_id = o.command_id::text))"
        " OR (o.status = 'FAILED' AND EXISTS (SELECT 1 FROM slack_notifications s WHERE s.kind = 'outbox_failed'"
        "     AND s.text LIKE 'Outbox row ' || o.id || ' %')))";
    int64_t deadline = ct_test_inv_now_ms() + CT_TEST_INV_WAIT_MS;
    long open;
    while ((open = ct_test_inv_count(inv, "%s", open_sql)) > 0) {
        cr_assert_lt(ct_test_inv_now_ms(), deadline,
                     "invariants 3/4: %ld outbox rows neither SENT with an outcome nor FAILED with an alert after %d s",
                     open, CT_TEST_INV_WAIT_MS / 1000);
        usleep(200 * 1000);
    }
}

/* The checks on one REPEATABLE READ snapshot of the read models and the
 * events under it. Exact ones assert; returns NULL, or (in msg) what an
 * eventual one still finds. */
static inline const char *ct_test_inv_round(ct_test_inv *inv, const char *when, char *msg, size_t msg_n) {
    int64_t t0 = ct_test_inv_now_ms();
    const char *C = inv->concerts_sql, *U = inv->users_like;
    PQclear(ct_test_inv_q(inv, "BEGIN ISOLATION LEVEL REPEATABLE READ"));
    int64_t to[2][CT_TEST_INV_PARTITIONS_MAX];
    memcpy(to, inv->from, sizeof to);
    PGresult *r = ct_test_inv_q(inv, "SELECT topic, partition, next_offset FROM projector_offsets"
                                     " WHERE topic IN ('concert.events', 'wallet.events')");
    for (int i = 0; i < PQntuples(r); i++) {
        int t = strcmp(PQgetvalue(r, i, 0), CT_TOPIC_WALLET_EVENTS) == 0, p = atoi(PQgetvalue(r, i, 1));
        if (p >= 0 && p < inv->partitions) to[t][p] = atoll(PQgetvalue(r, i, 2));
    }
    PQclear(r);

    /* 1: one live reservation per seat, named by the seat's row. */
    cr_assert_eq(ct_test_inv_count(inv,
                                   "SELECT count(*) FROM (SELECT concert_id, schedule_id, seat_no FROM reservations"
                                   " WHERE status IN ('HELD','PAYMENT_PENDING','CONFIRMED') AND concert_id IN (%s)"
                                   " GROUP BY 1, 2, 3 HAVING count(*) > 1) x",
                                   C),
                 0, "%s: invariant 1: a seat with two live reservations", when);
    cr_assert_eq(ct_test_inv_count(inv,
                                   "SELECT count(*) FROM reservations r"
                                   " WHERE r.status IN ('HELD','PAYMENT_PENDING','CONFIRMED') AND r.concert_id IN (%s)"
                                   " AND NOT EXISTS (SELECT 1 FROM seats s WHERE s.concert_id = r.concert_id"
                                   " AND s.schedule_id = r.schedule_id AND s.seat_no = r.seat_no"
                                   " AND s.reservation_id = r.reservation_id AND s.user_id = r.user_id)",
                                   C),
                 0, "%s: invariant 1: a live reservation whose seat names another", when);
    /* 6: max_active, and every hold made with an active token of its own. */
    cr_assert_eq(
        ct_test_inv_count(inv,
                          "SELECT count(*) FROM (SELECT t.concert_id FROM queue_tokens t"
                          " JOIN concerts c USING (concert_id) WHERE t.status = 'ACTIVE' AND t.concert_id IN (%s)"
                          " GROUP BY t.concert_id, c.max_active HAVING count(*) > c.max_active) x",
                          C),
        0, "%s: invariant 6: more ACTIVE tokens than max_active", when);
    cr_assert_eq(ct_test_inv_count(inv,
                                   "SELECT count(*) FROM reservations r LEFT JOIN queue_tokens t ON t.token = r.token"
                                   " WHERE r.concert_id IN (%s) AND (t.token IS NULL OR t.user_id <> r.user_id"
                                   " OR t.concert_id <> r.concert_id OR t.activated_ts IS NULL"
                                   " OR t.activated_ts > r.held_ts OR t.active_until <= r.held_ts)",
                                   C),
                 0, "%s: invariant 6: a reservation made without an active token of its user", when);
    /* 3: no outcome about the test's users or concerts that was never accepted. */
    if (inv->outbox)
        cr_assert_eq(
            ct_test_inv_count(inv,
                              "SELECT count(*) FROM commands c WHERE (c.result->>'user_id' LIKE '%s'"
                              " OR c.result->>'concert_id' IN (%s))"
                              " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.command_id::text = c.command_id)",
                              U, C),
            0, "%s: invariant 3: outcomes for commands never accepted", when);
    long seat_mismatch = ct_test_inv_count(
        inv,
        "SELECT count(*) FROM seats s WHERE s.concert_id IN (%s) AND NOT EXISTS (SELECT 1 FROM reservations r"
        " WHERE r.reservation_id = s.reservation_id AND r.concert_id = s.concert_id AND r.schedule_id = s.schedule_id"
        " AND r.seat_no = s.seat_no AND r.user_id = s.user_id"
        " AND r.status = CASE s.status WHEN 'SOLD' THEN 'CONFIRMED' ELSE s.status END)",
        C);

    /* The test's commands, with the event each outcome came from. */
    json_t *scope = inv->outbox ? json_object() : NULL, *outcome = json_object();
    if (scope) {
        r = ct_test_inv_q(inv, "SELECT command_id::text FROM outbox");
        for (int i = 0; i < PQntuples(r); i++) json_object_set_new(scope, PQgetvalue(r, i, 0), json_true());
        PQclear(r);
        r = ct_test_inv_q(inv, "SELECT c.command_id, c.event_id FROM commands c JOIN outbox o"
                               " ON o.command_id::text = c.command_id");
    } else {
        r = ct_test_inv_q(inv, "SELECT command_id, event_id FROM commands WHERE command_id LIKE '%s-%%'", inv->run);
    }
    for (int i = 0; i < PQntuples(r); i++)
        json_object_set_new(outcome, PQgetvalue(r, i, 0), json_string(PQgetvalue(r, i, 1)));
    PQclear(r);
    /* The money in the read models, per user of the run. */
    json_t *bal = json_object(), *chg = json_object(), *paid = json_object();
    r = ct_test_inv_q(inv, "SELECT user_id, balance FROM balances WHERE user_id LIKE '%s'", U);
    for (int i = 0; i < PQntuples(r); i++)
        json_object_set_new(bal, PQgetvalue(r, i, 0), json_integer(atoll(PQgetvalue(r, i, 1))));
    PQclear(r);
    r = ct_test_inv_q(inv,
                      "SELECT result->>'user_id', sum((result->>'amount')::bigint) FROM commands"
                      " WHERE type = 'BalanceCharged' AND result->>'user_id' LIKE '%s' GROUP BY 1",
                      U);
    for (int i = 0; i < PQntuples(r); i++)
        json_object_set_new(chg, PQgetvalue(r, i, 0), json_integer(atoll(PQgetvalue(r, i, 1))));
    PQclear(r);
    r = ct_test_inv_q(inv,
                      "SELECT user_id, sum(amount) FROM payments WHERE status = 'SUCCEEDED' AND user_id LIKE '%s'"
                      " GROUP BY 1",
                      U);
    for (int i = 0; i < PQntuples(r); i++)
        json_object_set_new(paid, PQgetvalue(r, i, 0), json_integer(atoll(PQgetvalue(r, i, 1))));
    PQclear(r);
    PQclear(ct_test_inv_q(inv, "COMMIT"));

    ct_test_inv_read(inv, to, scope);
    ct_test_inv_scan s = inv->scan; /* a shallow copy, for short names */

    /* 3: exactly one terminal event per command, and its row names it. */
    const char *cid;
    json_t *v;
    json_object_foreach(s.terminal, cid, v) {
        cr_assert_eq(json_array_size(v), 1, "%s: invariant 3: command %s has %zu terminal events (%s, %s)", when, cid,
                     json_array_size(v), json_string_value(json_array_get(v, 0)),
                     json_string_value(json_array_get(v, 1)));
        const char *row = json_string_value(json_object_get(outcome, cid));
        cr_assert_not_null(row, "%s: invariant 3: command %s's outcome %s is not in the commands table", when, cid,
                           json_string_value(json_array_get(v, 0)));
        cr_assert_str_eq(row, json_string_value(json_array_get(v, 0)), "%s: command %s's row names another event", when,
                         cid);
    }
    json_object_foreach(outcome, cid, v)
        cr_assert_not_null(json_object_get(s.terminal, cid),
                           "%s: invariant 3: command %s has an outcome (%s) but no terminal event was applied", when,
                           cid, json_string_value(v));
    /* 2: the balances replay, and the read models agree with them. */
    cr_assert(!s.bad[0], "%s: %s", when, s.bad);
    const char *user;
    json_object_foreach(bal, user, v) {
        json_t *ix = json_object_get(s.users, user);
        cr_assert_not_null(ix, "%s: invariant 2: %s has a balance (%lld) but no wallet event", when, user,
                           (long long)json_integer_value(v));
        const ct_test_inv_user *u = &s.user[json_integer_value(ix)];
        int64_t b = json_integer_value(v), want = u->charged - u->debited + u->refunded;
        cr_assert(b >= 0 && b == want,
                  "%s: invariant 2: %s's balance %lld != charged %lld - debited %lld + refunded %lld", when, user,
                  (long long)b, (long long)u->charged, (long long)u->debited, (long long)u->refunded);
        cr_assert_eq(json_integer_value(json_object_get(chg, user)), u->charged,
                     "%s: invariant 2: %s's BalanceCharged outcomes sum to %lld, the wallet charged %lld", when, user,
                     (long long)json_integer_value(json_object_get(chg, user)), (long long)u->charged);
    }
    cr_assert_eq(json_object_size(bal), s.users_n, "%s: invariant 2: %zu users have wallet events, %zu a balance", when,
                 s.users_n, json_object_size(bal));
    /* What spans topics or batches: settles. */
    const char *pending = NULL;
    json_object_foreach(s.users, user, v) {
        const ct_test_inv_user *u = &s.user[json_integer_value(v)];
        int64_t p = json_integer_value(json_object_get(paid, user));
        if (u->debited - u->refunded != p) {
            snprintf(msg, msg_n, "invariant 2: %s: debited %lld - refunded %lld != paid for seats %lld", user,
                     (long long)u->debited, (long long)u->refunded, (long long)p);
            pending = msg;
            break;
        }
    }
    json_object_foreach(paid, user, v) {
        if (pending || json_object_get(s.users, user)) continue;
        snprintf(msg, msg_n, "invariant 2: %s paid %lld for seats without a wallet event", user,
                 (long long)json_integer_value(v));
        pending = msg;
    }
    if (!pending && seat_mismatch) {
        snprintf(msg, msg_n, "invariant 1: %ld seat rows without a live reservation of that seat, user and status",
                 seat_mismatch);
        pending = msg;
    }
    if (!pending)
        fprintf(stderr, "invariants after %s: %ld events read, %ld of the test's, %zu commands, %zu users (%lld ms)\n",
                when, s.read, s.events, json_object_size(outcome), s.users_n, (long long)(ct_test_inv_now_ms() - t0));
    json_decref(scope), json_decref(outcome), json_decref(bal), json_decref(chg), json_decref(paid);
    return pending;
}

/* Checks invariants 1-4 and 6 (see the top of this file); `when` names the
 * moment in failure messages. With an outbox, first waits for every row to
 * reach its end. */
static inline void ct_test_inv_check(ct_test_inv *inv, const char *when) {
    if (inv->outbox) ct_test_inv_await_outbox(inv);
    int64_t deadline = ct_test_inv_now_ms() + CT_TEST_INV_SETTLE_MS;
    char msg[1024];
    for (;;) {
        const char *pending = ct_test_inv_round(inv, when, msg, sizeof msg);
        if (!pending) return;
        cr_assert_lt(ct_test_inv_now_ms(), deadline, "%s: after %d s: %s", when, CT_TEST_INV_SETTLE_MS / 1000, pending);
        usleep(300 * 1000);
    }
}

#endif
