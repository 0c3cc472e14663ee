#include "ct_projector.h"

#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ct_alert.h"
#include "ct_backoff.h"
#include "ct_hidx.h"
#include "ct_kafka.h"
#include "ct_log.h"
#include "ct_metrics.h"
#include "ct_trace.h"
#include "ct_pg.h"
#include "ct_pgarray.h"
#include "ct_record.h"
#include "ct_retention.h"
#include "ct_signal.h"
#include "ct_slack.h"

/* ---- topics and positions ------------------------------------------------ */

enum { T_CONCERT_EVENTS, T_WALLET_EVENTS, T_CONCERT_DLQ, T_WALLET_DLQ, TOPICS };
static const char *const topic_names[TOPICS] = {CT_TOPIC_CONCERT_EVENTS, CT_TOPIC_WALLET_EVENTS,
                                                CT_TOPIC_CONCERT_COMMANDS ".dlq", CT_TOPIC_WALLET_COMMANDS ".dlq"};
#define PARTITIONS_MAX 1024
/* pg_notify payloads must stay under 8000 bytes. */
#define NOTIFY_CHUNK_BYTES 7000
#define STATS_EVERY_MS 10000
/* Batches this large on average (a moving average over about the last 8,
 * so one lull under load does not flip it) mean events arrive faster than
 * a transaction applies them: each batch then gathers for up to batch_ms. */
#define GATHER_MIN_EVENTS 64

const char *ct_projector_topic(int i) { return i >= 0 && i < TOPICS ? topic_names[i] : NULL; }

static int topic_index(const char *name) {
    for (int i = 0; i < TOPICS; i++)
        if (strcmp(name, topic_names[i]) == 0) return i;
    return -1;
}

/* ---- statements ------------------------------------------------------------ */

enum {
    Q_CONCERT,
    Q_SCHEDULE,
    Q_TOKEN_ISSUED,
    Q_TOKEN_ACTIVATED,
    Q_TOKEN_ENDED,
    Q_SEAT_HELD,
    Q_HOLD_EXPIRED,
    Q_PAYMENT_REQUESTED,
    Q_SEAT_SOLD,
    Q_CONFIRMED,
    Q_PAYMENT_FAILED,
    Q_DEBITED,
    Q_BALANCE,
    Q_COMMAND,
    Q_OFFSET,
    Q_NOTIFY,
    Q_SLACK,
    Q_COUNT
};

static const char *const query_sql[Q_COUNT] = {
    /* The read-model statements take a layer of events at a time: one
     * array per parameter, unnested server side (batch_send_events
     * explains the layers). Rows of one layer never share a key, so each
     * statement sees each row at most once and the statements of a layer
     * may run in any order. */
    /* clang-format off */
    [Q_CONCERT] = "INSERT INTO concerts (concert_id, title, max_active, active_ttl_ms, hold_ttl_ms, schedule_count,"
                  " created_ts) SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::bigint[],"
                  " $6::int[], $7::bigint[]) ON CONFLICT (concert_id) DO NOTHING",
    [Q_SCHEDULE] = "INSERT INTO schedules (concert_id, schedule_id, starts_at, seats, price)"
                   " SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::bigint[])"
                   " ON CONFLICT (concert_id, schedule_id) DO NOTHING",
    /* token, concert, user, seq, status, ts, active_until */
    [Q_TOKEN_ISSUED] = "INSERT INTO queue_tokens (token, concert_id, user_id, seq, status, issued_ts, activated_ts,"
                       " active_until) SELECT tk, c, u, sq, st, ts, CASE WHEN st = 'ACTIVE' THEN ts END, au"
                       " FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[],"
                       " $7::bigint[]) AS i(tk, c, u, sq, st, ts, au) ON CONFLICT (token) DO NOTHING",
    /* token, ts, active_until */
    [Q_TOKEN_ACTIVATED] = "UPDATE queue_tokens q SET status = 'ACTIVE', activated_ts = i.ts, active_until = i.au"
                          " FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS i(tk, ts, au) WHERE q.token = i.tk",
    /* token, status, ts */
    [Q_TOKEN_ENDED] = "UPDATE queue_tokens q SET status = i.st, ended_ts = i.ts"
                      " FROM unnest($1::text[], $2::text[], $3::bigint[]) AS i(tk, st, ts) WHERE q.token = i.tk",
    /* reservation, concert, schedule, seat, user, token, price, hold_until, ts */
    [Q_SEAT_HELD] = "WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[],"
                    " $6::text[], $7::bigint[], $8::bigint[], $9::bigint[]) AS i(r, c, s, n, u, tk, pr, hu, ts)),"
                    " ins AS (INSERT INTO reservations (reservation_id, concert_id, schedule_id, seat_no, user_id,"
                    " token, status, price, hold_until, held_ts, updated_ts)"
                    " SELECT r, c, s, n, u, tk, 'HELD', pr, hu, ts, ts FROM i ON CONFLICT (reservation_id) DO NOTHING)"
                    " INSERT INTO seats (concert_id, schedule_id, seat_no, status, reservation_id, user_id, hold_until)"
                    " SELECT c, s, n, 'HELD', r, u, hu FROM i"
                    " ON CONFLICT (concert_id, schedule_id, seat_no) DO UPDATE SET status = 'HELD',"
                    " reservation_id = EXCLUDED.reservation_id, user_id = EXCLUDED.user_id,"
                    " hold_until = EXCLUDED.hold_until",
    /* reservation, ts, concert, schedule, seat */
    [Q_HOLD_EXPIRED] =
        "WITH i AS (SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::int[])"
        " AS i(r, ts, c, s, n)),"
        " upd AS (UPDATE reservations re SET status = 'EXPIRED', updated_ts = GREATEST(re.updated_ts, i.ts)"
        " FROM i WHERE re.reservation_id = i.r)"
        " DELETE FROM seats se USING i WHERE se.concert_id = i.c AND se.schedule_id = i.s AND se.seat_no = i.n"
        " AND se.reservation_id = i.r",
    /* A payment's rows are written by events of two topics: PaymentRequested,
     * the settlement's SeatSold and ReservationConfirmed or PaymentFailed on
     * concert.events, and the payment's outcome, the wallet's BalanceDebited
     * or DebitRejected (ct_catalog.h), on wallet.events. The projector reads
     * the two in any interleaving (live, after a restart, in a rebuild), so
     * these statements commute: the wallet's decision is applied whenever it
     * comes (to a reservation still HELD or PAYMENT_PENDING), a later
     * PaymentRequested looks the decision up instead of going back to
     * PAYMENT_PENDING, a status moves only forward from where the
     * concert's order put it, and every updated_ts is the greatest of the
     * events' times (the two processors' clocks may differ). */
    /* payment, reservation, user, concert, amount, ts */
    [Q_PAYMENT_REQUESTED] =
        "WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])"
        " AS i(p, r, u, c, am, ts)),"
        " d AS (SELECT y.payment_id, y.status FROM payments y JOIN i ON y.payment_id = i.p),"
        " ins AS (INSERT INTO payments AS y (payment_id, reservation_id, user_id, concert_id, amount, status,"
        " updated_ts) SELECT p, r, u, c, am, 'PENDING', ts FROM i ON CONFLICT (payment_id) DO UPDATE"
        " SET updated_ts = GREATEST(y.updated_ts, EXCLUDED.updated_ts)),"
        " upd AS (UPDATE reservations re SET status = CASE WHEN re.status <> 'HELD' THEN re.status"
        " WHEN d.status = 'SUCCEEDED' THEN 'CONFIRMED' WHEN d.status = 'FAILED' THEN 'HELD'"
        " ELSE 'PAYMENT_PENDING' END, payment_id = CASE WHEN re.status = 'HELD' THEN i.p ELSE re.payment_id END,"
        " updated_ts = GREATEST(re.updated_ts, i.ts) FROM i LEFT JOIN d ON d.payment_id = i.p"
        " WHERE re.reservation_id = i.r"
        " RETURNING re.reservation_id, re.status, re.concert_id, re.schedule_id, re.seat_no)"
        " UPDATE seats s SET status = CASE upd.status WHEN 'CONFIRMED' THEN 'SOLD' ELSE upd.status END,"
        " hold_until = CASE upd.status WHEN 'CONFIRMED' THEN NULL ELSE s.hold_until END FROM upd"
        " WHERE s.concert_id = upd.concert_id AND s.schedule_id = upd.schedule_id AND s.seat_no = upd.seat_no"
        " AND s.reservation_id = upd.reservation_id AND upd.status IN ('HELD', 'PAYMENT_PENDING', 'CONFIRMED')",
    /* concert, schedule, seat, reservation, user */
    [Q_SEAT_SOLD] = "INSERT INTO seats (concert_id, schedule_id, seat_no, status, reservation_id, user_id, hold_until)"
                    " SELECT c, s, n, 'SOLD', r, u, NULL FROM unnest($1::text[], $2::text[], $3::int[], $4::text[],"
                    " $5::text[]) AS i(c, s, n, r, u)"
                    " ON CONFLICT (concert_id, schedule_id, seat_no) DO UPDATE SET status = 'SOLD',"
                    " reservation_id = EXCLUDED.reservation_id, user_id = EXCLUDED.user_id, hold_until = NULL",
    /* reservation, payment, ts, Slack text, dedup key */
    [Q_CONFIRMED] = "WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) AS i(r, p, ts)),"
                    " upd AS (UPDATE reservations re SET status = 'CONFIRMED', payment_id = i.p,"
                    " updated_ts = GREATEST(re.updated_ts, i.ts) FROM i WHERE re.reservation_id = i.r),"
                    " pay AS (UPDATE payments y SET status = 'SUCCEEDED', reason = NULL,"
                    " updated_ts = GREATEST(y.updated_ts, i.ts) FROM i WHERE y.payment_id = i.p)"
                    " SELECT count(*) FROM " CT_ALERTS_ENQUEUE_SQL("'reservation_confirmed'", "$4", "$5"),
    /* The wallet's DebitRejected (the outcome, hold_until NULL: it does not
     * carry the hold's time) and the settlement's PaymentFailed after it
     * (the hold's original time, which the reservation kept meanwhile).
     * payment, reservation, user, concert, amount, reason, ts, hold_until or NULL */
    [Q_PAYMENT_FAILED] =
        "WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],"
        " $7::bigint[], $8::bigint[]) AS i(p, r, u, c, am, why, ts, hu)),"
        " ins AS (INSERT INTO payments AS y (payment_id, reservation_id, user_id, concert_id, amount, status, reason,"
        " updated_ts) SELECT p, r, u, c, am, 'FAILED', why, ts FROM i"
        " ON CONFLICT (payment_id) DO UPDATE SET status = 'FAILED', reason = EXCLUDED.reason,"
        " updated_ts = GREATEST(y.updated_ts, EXCLUDED.updated_ts)),"
        " upd AS (UPDATE reservations re SET status = CASE WHEN re.status = 'PAYMENT_PENDING' AND re.payment_id = i.p"
        " THEN 'HELD' ELSE re.status END, hold_until = CASE WHEN re.status = 'PAYMENT_PENDING'"
        " AND re.payment_id = i.p THEN COALESCE(i.hu, re.hold_until) ELSE re.hold_until END,"
        " updated_ts = GREATEST(re.updated_ts, i.ts) FROM i WHERE re.reservation_id = i.r"
        " RETURNING re.reservation_id, re.status, re.concert_id, re.schedule_id, re.seat_no, i.hu)"
        " UPDATE seats s SET status = 'HELD', hold_until = COALESCE(upd.hu, s.hold_until) FROM upd"
        " WHERE s.concert_id = upd.concert_id AND s.schedule_id = upd.schedule_id AND s.seat_no = upd.seat_no"
        " AND s.reservation_id = upd.reservation_id AND upd.status = 'HELD'",
    /* payment, reservation, user, concert, amount, ts */
    [Q_DEBITED] =
        "WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])"
        " AS i(p, r, u, c, am, ts)),"
        " ins AS (INSERT INTO payments AS y (payment_id, reservation_id, user_id, concert_id, amount, status,"
        " updated_ts) SELECT p, r, u, c, am, 'SUCCEEDED', ts FROM i"
        " ON CONFLICT (payment_id) DO UPDATE SET status = 'SUCCEEDED', reason = NULL,"
        " updated_ts = GREATEST(y.updated_ts, EXCLUDED.updated_ts)),"
        " upd AS (UPDATE reservations re SET status = CASE WHEN re.status IN ('HELD', 'PAYMENT_PENDING')"
        " THEN 'CONFIRMED' ELSE re.status END, payment_id = CASE WHEN re.status IN ('HELD', 'PAYMENT_PENDING')"
        " THEN i.p ELSE re.payment_id END, updated_ts = GREATEST(re.updated_ts, i.ts) FROM i"
        " WHERE re.reservation_id = i.r RETURNING re.reservation_id, re.status, re.concert_id, re.schedule_id,"
        " re.seat_no)"
        " UPDATE seats s SET status = 'SOLD', hold_until = NULL FROM upd"
        " WHERE s.concert_id = upd.concert_id AND s.schedule_id = upd.schedule_id AND s.seat_no = upd.seat_no"
        " AND s.reservation_id = upd.reservation_id AND upd.status = 'CONFIRMED'",
    /* clang-format on */
    /* The batch's balances in one statement: each event carries the
     * user's whole balance, so the batch's last one per user is the
     * balance (DISTINCT ON keeps it), and no other statement reads or
     * writes balances, so applying them after the batch's other events
     * changes nothing. */
    [Q_BALANCE] = "INSERT INTO balances (user_id, balance, updated_ts)"
                  " SELECT DISTINCT ON (u) u, b, t FROM unnest($1::text[], $2::bigint[], $3::bigint[])"
                  " WITH ORDINALITY AS x(u, b, t, o) ORDER BY u, o DESC"
                  " ON CONFLICT (user_id) DO UPDATE SET balance = EXCLUDED.balance, updated_ts = EXCLUDED.updated_ts",
    /* The batch's outcomes in one statement: the first per command wins
     * (as across batches), no other statement touches `commands`. An empty
     * reason is none (reasons are codes, never empty). */
    [Q_COMMAND] = "INSERT INTO commands (command_id, type, status, reason, result, event_id)"
                  " SELECT DISTINCT ON (c) c, ty, st, NULLIF(re, ''), rs::jsonb, ev"
                  " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])"
                  " WITH ORDINALITY AS x(c, ty, st, re, rs, ev, o) ORDER BY c, o"
                  " ON CONFLICT (command_id) DO NOTHING",
    /* A compare-and-set: advances only from the offset this projector read
     * at assignment ($4, -1 when there was no row). */
    [Q_OFFSET] = "INSERT INTO projector_offsets AS o (topic, partition, next_offset) VALUES ($1, $2, $3)"
                 " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()"
                 " WHERE o.next_offset = $4::bigint",
    [Q_NOTIFY] = "SELECT pg_notify('command_done', $1)",
    [Q_SLACK] = "SELECT " CT_ALERT_ENQUEUE_SQL("$1", "$2", "$3"),
};

/* Records the batch's event ids and returns those not recorded before (an
 * id it does not return was applied by an earlier batch): one pass over
 * the index instead of a look-up and then an insert. */
static const char *const record_sql = "INSERT INTO projected_events (id) SELECT DISTINCT unnest($1::text[])"
                                      " ON CONFLICT (id) DO NOTHING RETURNING id";
static const char *const offsets_sql =
    "SELECT topic, partition, next_offset FROM projector_offsets WHERE topic = ANY($1::text[])";

/* ---- the projector ----------------------------------------------------------- */

struct ct_projector {
    const ct_config *cfg;
    /* A replay (ct_projector_new_replay): its database, and per partition
     * the offset it stops before (0: nothing to read). */
    bool replay;
    char dbname[64];
    char member[48]; /* this process's instance name, for its metrics file */
    int64_t until[TOPICS][PARTITIONS_MAX];
    int64_t replay_log_ms;
    ct_histogram batch_seconds; /* a batch's Postgres transaction */
    int64_t metrics_ms;
    rd_kafka_t *consumer;
    PGconn *pg;
    ct_slack *slack;
    /* next_offset stored in Postgres per partition (-1: no row); valid while
     * the partition is assigned. */
    int64_t stored[TOPICS][PARTITIONS_MAX];
    bool assigned[TOPICS][PARTITIONS_MAX];
    /* Partitions to (re)assign at their stored offsets once Postgres
     * answers: after an assignment the database could not serve, a failed
     * batch, or a lost compare-and-set. */
    rd_kafka_topic_partition_list_t *pending;
    int avg_batch8;      /* 8 x the moving average of the batches' sizes (gather's linger) */
    uint64_t generation; /* bumped by every rebalance: a batch spanning one is dropped */
    bool fatal;
    ct_error fatal_err;
    rd_kafka_message_t **msgs;
    int pg_failures;
    uint64_t applied, duplicates, skipped, dead_letters, batches, mismatches;
    int64_t next_prune_ms; /* when the next retention pass starts */
    bool pruning;          /* a pass is under way */
    ct_retention_counts pass_pruned;
};

static void drop_pg(ct_projector *p, const char *why) {
    if (p->pg) {
        CT_LOG_WARN("projector", "database connection dropped (%s)", why);
        PQfinish(p->pg);
    }
    p->pg = NULL;
}

static int open_pg(ct_projector *p, ct_error *err) {
    PGconn *pg = ct_pg_connect(p->cfg, p->replay ? p->dbname : NULL, err);
    if (!pg) return -1;
    /* Named, so that `concert replay read-models --reset` sees a projector at work. */
    if (ct_pg_exec(pg,
                   p->replay ? "SET application_name = 'concert-replay'"
                             : "SET application_name = '" CT_PROJECTOR_APPLICATION_NAME "'",
                   err) != 0) {
        PQfinish(pg);
        return -1;
    }
    for (int q = 0; q < Q_COUNT; q++) {
        char name[16];
        snprintf(name, sizeof name, "pj%d", q);
        PGresult *res = PQprepare(pg, name, query_sql[q], 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            ct_pg_result_error(pg, res, "prepare", err);
            PQfinish(pg);
            return -1;
        }
        PQclear(res);
    }
    p->pg = pg;
    return 0;
}

/* Sets every partition of `parts` to its stored offset (or the beginning)
 * and assigns them. */
static int assign_from_store(ct_projector *p, rd_kafka_topic_partition_list_t *parts, ct_error *err) {
    if (!p->pg) {
        CT_ERR(err, CT_ERR_RETRIABLE, "no database connection");
        return -1;
    }
    ct_pgarray names = {0};
    for (int i = 0; i < TOPICS; i++) ct_pgarray_add(&names, topic_names[i]);
    const char *v[1] = {ct_pgarray_text(&names)};
    PGresult *res = PQexecParams(p->pg, offsets_sql, 1, NULL, v, NULL, NULL, 0);
    ct_pgarray_free(&names);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ct_pg_result_error(p->pg, res, "read projector offsets", err);
        return -1;
    }
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *e = &parts->elems[i];
        int t = topic_index(e->topic);
        if (t < 0 || e->partition < 0 || e->partition >= PARTITIONS_MAX) {
            PQclear(res);
            CT_ERR(err, CT_ERR_FATAL, "assigned %s[%d], which the projector does not read", e->topic,
                   (int)e->partition);
            return -1;
        }
        int64_t next = -1;
        for (int r = 0; r < PQntuples(res); r++)
            if (strcmp(PQgetvalue(res, r, 0), e->topic) == 0 && atoi(PQgetvalue(res, r, 1)) == e->partition)
                next = strtoll(PQgetvalue(res, r, 2), NULL, 10);
        p->stored[t][e->partition] = next;
        p->assigned[t][e->partition] = true;
        e->offset = next >= 0 ? next : RD_KAFKA_OFFSET_BEGINNING;
    }
    PQclear(res);
    rd_kafka_resp_err_t ae = rd_kafka_assign(p->consumer, parts);
    if (ae) {
        CT_ERR(err, CT_ERR_RETRIABLE, "assign: %s", rd_kafka_err2str(ae));
        return -1;
    }
    p->generation++;
    CT_LOG_INFO("rebalance", "assigned partitions=%d at their stored offsets", parts->cnt);
    return 0;
}

static void set_pending(ct_projector *p, const rd_kafka_topic_partition_list_t *parts) {
    if (p->pending) rd_kafka_topic_partition_list_destroy(p->pending);
    p->pending = rd_kafka_topic_partition_list_copy(parts);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t *parts, void *opaque) {
    ct_projector *p = opaque;
    p->generation++;
    memset(p->assigned, 0, sizeof p->assigned);
    if (p->pending) rd_kafka_topic_partition_list_destroy(p->pending), p->pending = NULL;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        ct_error err = {0};
        if (assign_from_store(p, parts, &err) == 0) return;
        if (err.klass == CT_ERR_FATAL)
            p->fatal = true, p->fatal_err = err;
        else
            CT_LOG_WARN("rebalance", "cannot read the stored offsets yet (%s): assignment deferred", err.msg);
        set_pending(p, parts);
        rd_kafka_assign(rk, NULL);
    } else {
        CT_LOG_INFO("rebalance", "revoked partitions=%d", parts->cnt);
        rd_kafka_assign(rk, NULL);
    }
}

/* After a failed or lost batch: read the current assignment again from the
 * stored offsets. */
static void reseek(ct_projector *p) {
    rd_kafka_topic_partition_list_t *cur = NULL;
    if (rd_kafka_assignment(p->consumer, &cur) == RD_KAFKA_RESP_ERR_NO_ERROR && cur) {
        if (cur->cnt > 0) set_pending(p, cur);
        rd_kafka_topic_partition_list_destroy(cur);
    }
    p->generation++;
}

/* ---- one event ---------------------------------------------------------------- */

typedef struct event {
    rd_kafka_message_t *m;
    int topic;
    json_t *root, *data;
    const char *id, *type, *command_id;
    ct_out_type otype; /* the catalogue's type of `type`; CT_OUT_NONE: unknown */
    int64_t ts;
    const char *bad; /* why it cannot be applied; NULL if fine */
    bool terminal;   /* data.terminal is true: the one outcome of its command */
    bool dup;
} event;

typedef struct args {
    const char *v[10];
    char num[10][24];
    int n;
    const char *missing; /* first field missing or out of range */
} args;

static void a_lit(args *a, const char *s) { a->v[a->n++] = s; }
static const char *str_or(json_t *d, const char *k, const char *dflt) {
    const char *s = json_string_value(json_object_get(d, k));
    return s ? s : dflt;
}
static void a_i64(args *a, int64_t x) {
    snprintf(a->num[a->n], sizeof a->num[a->n], "%" PRId64, x);
    a->v[a->n] = a->num[a->n];
    a->n++;
}
static void a_str(args *a, json_t *d, const char *k) {
    json_t *x = json_object_get(d, k);
    if (!json_is_string(x) || json_string_length(x) == 0) {
        if (!a->missing) a->missing = k;
        a_lit(a, NULL);
        return;
    }
    a_lit(a, json_string_value(x));
}
static void a_int(args *a, json_t *d, const char *k, int64_t min, int64_t max) {
    json_t *x = json_object_get(d, k);
    if (!json_is_integer(x) || json_integer_value(x) < min || json_integer_value(x) > max) {
        if (!a->missing) a->missing = k;
        a_lit(a, NULL);
        return;
    }
    a_i64(a, json_integer_value(x));
}
/* An integer, or NULL when absent or null. */
static void a_int_or_null(args *a, json_t *d, const char *k) {
    json_t *x = json_object_get(d, k);
    if (!x || json_is_null(x))
        a_lit(a, NULL);
    else
        a_int(a, d, k, 0, INT64_MAX);
}
static void a_status(args *a, json_t *d, const char *k) {
    const char *s = json_string_value(json_object_get(d, k));
    if (!s || (strcmp(s, "WAITING") && strcmp(s, "ACTIVE") && strcmp(s, "EXPIRED") && strcmp(s, "DONE"))) {
        if (!a->missing) a->missing = k;
        a_lit(a, NULL);
        return;
    }
    a_lit(a, s);
}

#define I32 INT32_MAX
#define I64 INT64_MAX

static void parse_event(event *ev) {
    json_error_t je;
    ev->root = json_loadb(ev->m->payload, ev->m->len, JSON_REJECT_DUPLICATES, &je);
    if (!ev->root || !json_is_object(ev->root)) {
        ev->bad = "not a JSON object";
        return;
    }
    ev->id = json_string_value(json_object_get(ev->root, "id"));
    ev->type = json_string_value(json_object_get(ev->root, "type"));
    ev->command_id = json_string_value(json_object_get(ev->root, "command_id"));
    json_t *ts = json_object_get(ev->root, "ts");
    ev->data = json_object_get(ev->root, "data");
    if (!ev->id || !ev->id[0] || !ev->type || !ev->command_id || !ev->command_id[0] || !json_is_integer(ts) ||
        json_integer_value(ts) < 0 || !json_is_object(ev->data)) {
        ev->bad = "envelope lacks id, type, command_id, ts or data";
        return;
    }
    ev->ts = json_integer_value(ts);
    ev->otype = ct_out_type_from_name(ev->type);
    ev->terminal = json_is_true(json_object_get(ev->data, "terminal"));
}

/* The outcomes that are rejections: the catalogue's word, and for a type
 * that is no outcome now but was one in records written before (a
 * PaymentFailed was a payment's outcome until the wallet's decision
 * became it), a reason, which only rejections carry. */
static bool rejects(const event *ev) {
    ct_outcome o = ct_out_type_outcome(ev->otype);
    return o == CT_OUTCOME_REJECTED || (o == CT_OUTCOME_NONE && json_object_get(ev->data, "reason"));
}

/* The statements applied a layer at a time (Q_CONCERT .. Q_DEBITED), and
 * the rows each writes, named by its arguments: a table's letter and the
 * argument indexes of the row's key (-1: unused). A statement that reaches
 * a seat through its reservation (a payment's) writes only a seat that
 * reservation holds, so it commutes with one that names the seat (for
 * another reservation) and needs no seat key. */
#define Q_ROWS (Q_DEBITED + 1)
#define ROW_ARGS_MAX 10
static const struct {
    char table;
    signed char at[3];
} row_keys[Q_ROWS][2] = {
    [Q_CONCERT] = {{'c', {0, -1, -1}}},
    [Q_SCHEDULE] = {{'s', {0, 1, -1}}},
    [Q_TOKEN_ISSUED] = {{'t', {0, -1, -1}}},
    [Q_TOKEN_ACTIVATED] = {{'t', {0, -1, -1}}},
    [Q_TOKEN_ENDED] = {{'t', {0, -1, -1}}},
    [Q_SEAT_HELD] = {{'r', {0, -1, -1}}, {'S', {1, 2, 3}}},
    [Q_HOLD_EXPIRED] = {{'r', {0, -1, -1}}, {'S', {2, 3, 4}}},
    [Q_PAYMENT_REQUESTED] = {{'p', {0, -1, -1}}, {'r', {1, -1, -1}}},
    [Q_SEAT_SOLD] = {{'S', {0, 1, 2}}},
    [Q_CONFIRMED] = {{'r', {0, -1, -1}}, {'p', {1, -1, -1}}},
    [Q_PAYMENT_FAILED] = {{'p', {0, -1, -1}}, {'r', {1, -1, -1}}},
    [Q_DEBITED] = {{'p', {0, -1, -1}}, {'r', {1, -1, -1}}},
};

typedef struct pipe_state {
    PGconn *pg;
    /* The layer being gathered: per statement, one array per argument. */
    ct_pgarray rows[Q_ROWS][ROW_ARGS_MAX];
    int nargs[Q_ROWS];
    /* Hashes of the rows the layer writes. Only the hash is kept: two keys
     * of the same hash count as one row, which at worst starts a layer
     * early. */
    ct_hidx written;
    /* Columns of the batch's balances and outcomes, sent as one statement
     * each after its events (Q_BALANCE, Q_COMMAND): at ~4 outcomes and 2
     * balances per fan's journey, one statement per event was most of the
     * projector's statements. */
    ct_pgarray bal[3], cmd[6];
    int sent;
    int offsets_at[TOPICS * 64]; /* indexes of the Q_OFFSET statements */
    int offsets;
} pipe_state;

static int send_q(pipe_state *ps, int q, int n, const char *const *v, ct_error *err) {
    char name[16];
    snprintf(name, sizeof name, "pj%d", q);
    if (!PQsendQueryPrepared(ps->pg, name, n, v, NULL, NULL, 0)) {
        CT_ERR(err, CT_ERR_RETRIABLE, "send %s", name);
        ct_error_detail(err, "%s", PQerrorMessage(ps->pg));
        return -1;
    }
    ps->sent++;
    return 0;
}

/* The read-model statement of a parsed event and its arguments, read from
 * the event alone: the statement (Q_*), -1 for a type without one, or -2
 * with ev->bad set when a field is missing or out of range. */
static int event_statement(event *ev, args *a, args *bal, char text[512], char dedup[200]) {
    json_t *d = ev->data;
    *a = (args){0};
    *bal = (args){0};
    int q = -1;
    switch (ev->otype) {
    case CT_OUT_CONCERT_CREATED:
        q = Q_CONCERT;
        a_str(a, d, "concert_id"), a_str(a, d, "title"), a_int(a, d, "max_active", 0, I32);
        a_int(a, d, "active_ttl_ms", 0, I64), a_int(a, d, "hold_ttl_ms", 0, I64);
        a_int(a, d, "schedule_count", 0, I32), a_i64(a, ev->ts);
        break;
    case CT_OUT_SCHEDULE_CREATED:
        q = Q_SCHEDULE;
        a_str(a, d, "concert_id"), a_str(a, d, "schedule_id"), a_int(a, d, "starts_at", 0, I64);
        a_int(a, d, "seats", 0, I32), a_int(a, d, "price", 0, I64);
        break;
    case CT_OUT_TOKEN_ISSUED:
        q = Q_TOKEN_ISSUED;
        a_str(a, d, "token"), a_str(a, d, "concert_id"), a_str(a, d, "user_id"), a_int(a, d, "seq", 0, I64);
        a_status(a, d, "status"), a_i64(a, ev->ts), a_int_or_null(a, d, "active_until");
        break;
    case CT_OUT_TOKEN_ACTIVATED:
        q = Q_TOKEN_ACTIVATED;
        a_str(a, d, "token"), a_i64(a, ev->ts), a_int_or_null(a, d, "active_until");
        break;
    case CT_OUT_TOKEN_EXPIRED:
    case CT_OUT_TOKEN_DONE:
        q = Q_TOKEN_ENDED;
        a_str(a, d, "token"), a_lit(a, ev->otype == CT_OUT_TOKEN_DONE ? "DONE" : "EXPIRED"), a_i64(a, ev->ts);
        break;
    case CT_OUT_SEAT_HELD:
        q = Q_SEAT_HELD;
        a_str(a, d, "reservation_id"), a_str(a, d, "concert_id"), a_str(a, d, "schedule_id");
        a_int(a, d, "seat_no", 1, I32), a_str(a, d, "user_id"), a_str(a, d, "token");
        a_int(a, d, "price", 0, I64), a_int(a, d, "hold_until", 0, I64), a_i64(a, ev->ts);
        break;
    case CT_OUT_SEAT_HOLD_EXPIRED:
        q = Q_HOLD_EXPIRED;
        a_str(a, d, "reservation_id"), a_i64(a, ev->ts), a_str(a, d, "concert_id");
        a_str(a, d, "schedule_id"), a_int(a, d, "seat_no", 1, I32);
        break;
    case CT_OUT_PAYMENT_REQUESTED:
        q = Q_PAYMENT_REQUESTED;
        a_str(a, d, "payment_id"), a_str(a, d, "reservation_id"), a_str(a, d, "user_id");
        a_str(a, d, "concert_id"), a_int(a, d, "amount", 0, I64), a_i64(a, ev->ts);
        break;
    case CT_OUT_SEAT_SOLD:
        q = Q_SEAT_SOLD;
        a_str(a, d, "concert_id"), a_str(a, d, "schedule_id"), a_int(a, d, "seat_no", 1, I32);
        a_str(a, d, "reservation_id"), a_str(a, d, "user_id");
        break;
    case CT_OUT_RESERVATION_CONFIRMED: {
        q = Q_CONFIRMED;
        a_str(a, d, "reservation_id"), a_str(a, d, "payment_id"), a_i64(a, ev->ts);
        json_t *seat = json_object_get(d, "seat_no"), *amount = json_object_get(d, "amount");
        snprintf(text, 512,
                 "Reservation %s confirmed: concert %s, schedule %s, seat %" JSON_INTEGER_FORMAT
                 ", user %s, paid %" JSON_INTEGER_FORMAT ".",
                 str_or(d, "reservation_id", "?"), str_or(d, "concert_id", "?"), str_or(d, "schedule_id", "?"),
                 json_integer_value(seat), str_or(d, "user_id", "?"), json_integer_value(amount));
        snprintf(dedup, 200, "confirmed:%.160s", a->v[0] ? a->v[0] : "");
        a_lit(a, text), a_lit(a, dedup);
        break;
    }
    case CT_OUT_DEBIT_REJECTED:
    case CT_OUT_PAYMENT_FAILED: {
        /* A DUPLICATE is a second request for a payment decided before:
         * that decision stands. */
        const char *why = json_string_value(json_object_get(d, "reason"));
        if (ev->otype == CT_OUT_DEBIT_REJECTED && why && strcmp(why, "DUPLICATE") == 0) break;
        q = Q_PAYMENT_FAILED;
        a_str(a, d, "payment_id"), a_str(a, d, "reservation_id"), a_str(a, d, "user_id");
        a_str(a, d, "concert_id"), a_int(a, d, "amount", 0, I64), a_str(a, d, "reason"), a_i64(a, ev->ts);
        if (ev->otype == CT_OUT_PAYMENT_FAILED)
            a_int(a, d, "hold_until", 0, I64);
        else
            a_lit(a, NULL);
        break;
    }
    case CT_OUT_BALANCE_DEBITED:
        q = Q_DEBITED;
        a_str(a, d, "payment_id"), a_str(a, d, "reservation_id"), a_str(a, d, "user_id");
        a_str(a, d, "concert_id"), a_int(a, d, "amount", 0, I64), a_i64(a, ev->ts);
        break;
    case CT_OUT_BALANCE_CHARGED:
    case CT_OUT_BALANCE_REFUNDED:
    case CT_OUT_REFUND_REJECTED: break;
    /* Outcomes only (their `commands` row), or records for the other
     * processor that the projector passes by. */
    case CT_OUT_COMMAND_REJECTED:
    case CT_OUT_SETTLEMENT_REJECTED:
    case CT_OUT_DEBIT_REQUESTED:
    case CT_OUT_PAYMENT_SETTLED:
    case CT_OUT_REFUND_REQUESTED: break;
    case CT_OUT_NONE:
    case CT_OUT_TYPE_COUNT_: ev->bad = "unknown event type"; return -2;
    }
    /* Every wallet event carries the user's balance after it: gathered into
     * one statement per batch (Q_BALANCE, in ps->bal). */
    if (ct_out_type_topic(ev->otype) == CT_TOPIC_ID_WALLET_EVENTS)
        a_str(bal, d, "user_id"), a_int(bal, d, "balance", 0, I64), a_i64(bal, ev->ts);
    json_t *terminal = json_object_get(d, "terminal");
    const char *reason = json_string_value(json_object_get(d, "reason"));
    if (a->missing || bal->missing || (terminal && !json_is_boolean(terminal)) ||
        (ev->terminal && rejects(ev) && !reason)) {
        ev->bad = "a field is missing or out of range";
        return -2;
    }
    return q;
}

const char *ct_projector_check_event(const void *payload, size_t len) {
    rd_kafka_message_t m = {.payload = (void *)payload, .len = len};
    event ev = {.m = &m};
    parse_event(&ev);
    args a, bal;
    char text[512], dedup[200];
    if (!ev.bad) (void)event_statement(&ev, &a, &bal, text, dedup);
    json_decref(ev.root);
    return ev.bad;
}

/* Sends the layer gathered so far, a statement per type, and starts the
 * next. */
static int send_layer(pipe_state *ps, ct_error *err) {
    int rc = 0;
    for (int q = 0; q < Q_ROWS; q++) {
        if (ps->nargs[q] == 0) continue;
        const char *v[ROW_ARGS_MAX];
        for (int i = 0; i < ps->nargs[q] && rc == 0; i++)
            if (!(v[i] = ct_pgarray_text(&ps->rows[q][i]))) CT_ERR(err, CT_ERR_FATAL, "out of memory"), rc = -1;
        if (rc == 0) rc = send_q(ps, q, ps->nargs[q], v, err); /* libpq copies the values */
        for (int i = 0; i < ps->nargs[q]; i++) ct_pgarray_free(&ps->rows[q][i]);
        ps->nargs[q] = 0;
    }
    ct_hidx_clear(&ps->written);
    return rc;
}

static bool always_eq(const void *item, const void *key, size_t key_len) {
    return (void)item, (void)key, (void)key_len, true;
}

/* Adds an event's row to the layer, after sending the layer first if the
 * event writes a row the layer already writes. */
static int add_row(pipe_state *ps, int q, const args *a, ct_error *err) {
    static char mark; /* the item of every slot: only the hashes matter */
    uint64_t h[2];
    int nk = 0;
    bool clash = false;
    for (int k = 0; k < 2 && row_keys[q][k].table; k++) {
        char key[512];
        size_t n = 0;
        key[n++] = row_keys[q][k].table;
        for (int j = 0; j < 3 && row_keys[q][k].at[j] >= 0; j++) {
            const char *v = a->v[(int)row_keys[q][k].at[j]];
            int w = snprintf(key + n, sizeof key - n, "\x1f%s", v ? v : "");
            if (w > 0) n += (size_t)w;
            if (n >= sizeof key) n = sizeof key - 1; /* a cut key can only clash more */
        }
        h[nk] = ct_hidx_hash(key, n);
        clash = clash || ps->written.slots[ct_hidx_find(&ps->written, h[nk], always_eq, NULL, 0)].item;
        nk++;
    }
    if (clash && send_layer(ps, err) != 0) return -1;
    for (int k = 0; k < nk; k++)
        ct_hidx_set(&ps->written, ct_hidx_find(&ps->written, h[k], always_eq, NULL, 0), h[k], &mark);
    ps->nargs[q] = a->n;
    for (int i = 0; i < a->n; i++) ct_pgarray_add(&ps->rows[q][i], a->v[i]);
    return 0;
}

/* Gathers the rows of one event (nothing for types without a read model)
 * into the layer. Returns 0, -1 on a send failure; sets ev->bad when a
 * field is missing (nothing is gathered for it then). */
static int send_event(pipe_state *ps, event *ev, ct_error *err) {
    json_t *d = ev->data;
    const char *t = ev->type;
    args a, bal;
    char text[512], dedup[200];
    int q = event_statement(ev, &a, &bal, text, dedup);
    if (q == -2) return 0;
    const char *reason = json_string_value(json_object_get(d, "reason"));
    if (bal.n == 3)
        for (int i = 0; i < 3; i++) ct_pgarray_add(&ps->bal[i], bal.v[i]);
    if (q >= 0 && add_row(ps, q, &a, err) != 0) return -1;
    if (ev->terminal) {
        char *result = json_dumps(d, JSON_COMPACT);
        if (!result) {
            CT_ERR(err, CT_ERR_FATAL, "out of memory");
            return -1;
        }
        const char *v[6] = {ev->command_id, t,     rejects(ev) ? "REJECTED" : "SUCCEEDED", rejects(ev) ? reason : "",
                            result,         ev->id};
        for (int i = 0; i < 6; i++) ct_pgarray_add(&ps->cmd[i], v[i]);
        free(result);
    }
    return 0;
}

/* Sends the batch's balances and outcomes gathered by send_event. */
static int send_gathered(pipe_state *ps, ct_error *err) {
    const char *v[6];
    if (ps->bal[0].count > 0) {
        for (int i = 0; i < 3; i++) v[i] = ct_pgarray_text(&ps->bal[i]);
        if (!v[0] || !v[1] || !v[2]) return CT_ERR(err, CT_ERR_FATAL, "out of memory"), -1;
        if (send_q(ps, Q_BALANCE, 3, v, err) != 0) return -1;
    }
    if (ps->cmd[0].count > 0) {
        for (int i = 0; i < 6; i++)
            if (!(v[i] = ct_pgarray_text(&ps->cmd[i]))) return CT_ERR(err, CT_ERR_FATAL, "out of memory"), -1;
        if (send_q(ps, Q_COMMAND, 6, v, err) != 0) return -1;
    }
    return 0;
}

static void pipe_state_free(pipe_state *ps) {
    for (int q = 0; q < Q_ROWS; q++)
        for (int i = 0; i < ROW_ARGS_MAX; i++) ct_pgarray_free(&ps->rows[q][i]);
    ct_hidx_fini(&ps->written);
    for (int i = 0; i < 3; i++) ct_pgarray_free(&ps->bal[i]);
    for (int i = 0; i < 6; i++) ct_pgarray_free(&ps->cmd[i]);
}

/* A slack row for a dead-lettered command record (from its headers). */
static int send_dead_letter(pipe_state *ps, event *ev, ct_error *err) {
    char reason[256] = "unknown", src[160] = "?", spart[24] = "?", soff[24] = "?";
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(ev->m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR && h) {
        struct {
            const char *name;
            char *out;
            size_t n;
        } f[] = {{"dlq-reason", reason, sizeof reason},
                 {"dlq-topic", src, sizeof src},
                 {"dlq-partition", spart, sizeof spart},
                 {"dlq-offset", soff, sizeof soff}};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
            const void *val;
            size_t len;
            if (rd_kafka_header_get_last(h, f[i].name, &val, &len) == RD_KAFKA_RESP_ERR_NO_ERROR && val)
                snprintf(f[i].out, f[i].n, "%.*s", (int)len, (const char *)val);
        }
    }
    char text[768], dedup[200];
    const char *dlq = topic_names[ev->topic];
    snprintf(text, sizeof text,
             "Dead-lettered record: %s partition %s offset %s (%s). It is kept on %s partition %d offset %" PRId64 ".",
             src, spart, soff, reason, dlq, (int)ev->m->partition, ev->m->offset);
    snprintf(dedup, sizeof dedup, "dlq:%s:%d:%" PRId64, dlq, (int)ev->m->partition, ev->m->offset);
    const char *v[3] = {"dead_letter", text, dedup};
    return send_q(ps, Q_SLACK, 3, v, err);
}

static int send_skipped(pipe_state *ps, event *ev, ct_error *err) {
    char text[512], dedup[200];
    const char *topic = topic_names[ev->topic];
    snprintf(text, sizeof text,
             "Projector skipped %s partition %d offset %" PRId64 " (event %.80s, type %.40s): %s. The read models"
             " do not reflect it.",
             topic, (int)ev->m->partition, ev->m->offset, ev->id ? ev->id : "?", ev->type ? ev->type : "?", ev->bad);
    snprintf(dedup, sizeof dedup, "skip:%s:%d:%" PRId64, topic, (int)ev->m->partition, ev->m->offset);
    const char *v[3] = {"projection_skipped", text, dedup};
    CT_LOG_RATELIMITED(CT_LOG_WARN, "projector", 1000, "skipped topic=%s partition=%d offset=%" PRId64 ": %s", topic,
                       (int)ev->m->partition, ev->m->offset, ev->bad);
    return send_q(ps, Q_SLACK, 3, v, err);
}

/* Reads the pipeline's results. Returns 0, 1 when an offset
 * compare-and-set found another value, -1 on an error. */
static int collect(pipe_state *ps, ct_error *err) {
    int rc = 0, oi = 0;
    for (int i = 0; i < ps->sent; i++) {
        PGresult *res = PQgetResult(ps->pg);
        if (!res) {
            if (rc == 0) CT_ERR(err, CT_ERR_RETRIABLE, "pipeline ended early"), rc = -1;
            break;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            if (oi < ps->offsets && ps->offsets_at[oi] == i) {
                oi++;
                if (strcmp(PQcmdTuples(res), "1") != 0 && rc == 0) rc = 1;
            }
            PQclear(res);
        } else if (st == PGRES_PIPELINE_ABORTED) {
            PQclear(res);
        } else {
            if (rc >= 0)
                ct_pg_result_error(ps->pg, res, "apply events", err), rc = -1;
            else
                PQclear(res);
        }
        while ((res = PQgetResult(ps->pg)) != NULL) PQclear(res); /* the NULL ending this query */
    }
    PGresult *sync = PQgetResult(ps->pg);
    if (!sync || PQresultStatus(sync) != PGRES_PIPELINE_SYNC) {
        if (rc >= 0) CT_ERR(err, CT_ERR_RETRIABLE, "pipeline sync lost"), rc = -1;
    }
    PQclear(sync);
    return rc;
}

static bool id_eq(const void *item, const void *key, size_t key_len) {
    return strncmp(item, key, key_len) == 0 && ((const char *)item)[key_len] == 0;
}

/* Sets of the batch's event ids (ct_hidx, sized under half full for the
 * batch's ids): adds id unless present (add) or only looks (!add); true
 * when it was absent. */
static bool seen_add_or_find(ct_hidx *set, const char *id, bool add) {
    size_t n = strlen(id);
    uint64_t h = ct_hidx_hash(id, n);
    size_t i = ct_hidx_find(set, h, id_eq, id, n);
    if (set->slots[i].item) return false;
    if (add) ct_hidx_set(set, i, h, (void *)id);
    return true;
}

/* One batch on its way into Postgres. */
typedef struct batch {
    event *evs;
    int n;
    ct_hidx fresh_ids, taken;        /* each holds at most the batch's ids, kept under half full */
    int64_t (*next)[PARTITIONS_MAX]; /* per topic and partition: the offset after the batch's last, -1: none */
    ct_pgarray ids;                  /* of the events to apply */
    uint64_t applied, dups, skipped, dead;
} batch;

static int batch_init(batch *b, rd_kafka_message_t **msgs, int n, ct_error *err) {
    memset(b, 0, sizeof *b);
    b->n = n;
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap <<= 1;
    b->evs = calloc((size_t)n, sizeof *b->evs);
    b->next = calloc(TOPICS, sizeof *b->next);
    if (!b->evs || !b->next || ct_hidx_init(&b->fresh_ids, cap) != 0 || ct_hidx_init(&b->taken, cap) != 0) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return -1;
    }
    for (int t = 0; t < TOPICS; t++)
        for (int i = 0; i < PARTITIONS_MAX; i++) b->next[t][i] = -1;
    for (int i = 0; i < n; i++) b->evs[i].m = msgs[i];
    return 0;
}

static void batch_free(batch *b) {
    for (int i = 0; b->evs && i < b->n; i++) json_decref(b->evs[i].root);
    ct_pgarray_free(&b->ids);
    ct_hidx_fini(&b->fresh_ids), ct_hidx_fini(&b->taken);
    free(b->evs), free(b->next);
}

/* Phase 1: each record parsed, the offsets the batch reaches. */
static void batch_parse(batch *b, bool skip_all, const char *skip_why) {
    for (int i = 0; i < b->n; i++) {
        event *ev = &b->evs[i];
        ev->topic = topic_index(rd_kafka_topic_name(ev->m->rkt));
        int64_t *next = &b->next[ev->topic][ev->m->partition];
        if (*next < ev->m->offset + 1) *next = ev->m->offset + 1;
        if (ev->topic >= T_CONCERT_DLQ) continue;
        if (skip_all) {
            ev->bad = skip_why;
            parse_event(ev);
            if (!ev->bad) ev->bad = skip_why;
            continue;
        }
        parse_event(ev);
        if (!ev->bad) ct_pgarray_add(&b->ids, ev->id);
        if (!ev->bad && ev->terminal) ct_trace_hop(ev->command_id, strlen(ev->command_id), "projector.consume");
    }
}

/* Phase 2 (in the transaction): the batch's event ids recorded; those
 * applied by an earlier batch, or earlier in this one, are duplicates. */
static int batch_mark_duplicates(ct_projector *p, batch *b, ct_error *err) {
    if (b->ids.count == 0) return 0;
    const char *v[1] = {ct_pgarray_text(&b->ids)};
    PGresult *res = v[0] ? PQexecParams(p->pg, record_sql, 1, NULL, v, NULL, NULL, 0) : NULL;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ct_pg_result_error(p->pg, res, "record applied events", err);
        return -1;
    }
    /* fresh_ids points into res, so it is used before res is cleared. */
    for (int r = 0; r < PQntuples(res); r++) seen_add_or_find(&b->fresh_ids, PQgetvalue(res, r, 0), true);
    for (int i = 0; i < b->n; i++) {
        event *ev = &b->evs[i];
        if (ev->topic >= T_CONCERT_DLQ || ev->bad) continue;
        ev->dup = seen_add_or_find(&b->fresh_ids, ev->id, false) || !seen_add_or_find(&b->taken, ev->id, true);
    }
    PQclear(res);
    return 0;
}

/* Phase 3 (pipelined): the events' read-model rows, dead letters and
 * skipped records; then the statements gathered over the batch.
 *
 * The rows go in layers, a statement per type and layer: a layer takes the
 * batch's events in order until one writes a row (a token, reservation,
 * payment, seat, concert or schedule) that an event of the layer writes
 * already; that event starts the next layer. So each row sees its events
 * in the log's order, while events on different rows, whose statements
 * commute, share one statement: a journey's ~8 rows took a statement each,
 * most of the projector's Postgres time. */
static int batch_send_events(pipe_state *ps, batch *b, ct_error *err) {
    size_t cap = 16;
    while (cap < (size_t)b->n * 4) cap <<= 1; /* two keys per event, kept under half full */
    if (ct_hidx_init(&ps->written, cap) != 0) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < b->n && rc == 0; i++) {
        event *ev = &b->evs[i];
        if (ev->topic >= T_CONCERT_DLQ) {
            rc = send_dead_letter(ps, ev, err), b->dead++;
            continue;
        }
        if (ev->dup) {
            b->dups++;
            continue;
        }
        if (!ev->bad) rc = send_event(ps, ev, err);
        if (rc == 0 && ev->bad)
            rc = send_skipped(ps, ev, err), b->skipped++;
        else if (rc == 0)
            b->applied++;
    }
    if (rc == 0) rc = send_layer(ps, err);
    return rc == 0 ? send_gathered(ps, err) : rc;
}

/* Phase 4 (pipelined): where the batch leaves each partition. */
static int batch_send_offsets(ct_projector *p, pipe_state *ps, batch *b, ct_error *err) {
    for (int t = 0; t < TOPICS; t++) {
        for (int part = 0; part < PARTITIONS_MAX; part++) {
            if (b->next[t][part] < 0) continue;
            char pb[16], nb[24], eb[24];
            snprintf(pb, sizeof pb, "%d", part);
            snprintf(nb, sizeof nb, "%" PRId64, b->next[t][part]);
            snprintf(eb, sizeof eb, "%" PRId64, p->stored[t][part]);
            const char *v[4] = {topic_names[t], pb, nb, eb};
            if (ps->offsets >= (int)(sizeof ps->offsets_at / sizeof ps->offsets_at[0])) {
                CT_ERR(err, CT_ERR_FATAL, "too many partitions in one batch");
                return -1;
            }
            ps->offsets_at[ps->offsets++] = ps->sent;
            if (send_q(ps, Q_OFFSET, 4, v, err) != 0) return -1;
        }
    }
    return 0;
}

/* Phase 5 (pipelined): the command ids of the batch's outcomes, and the
 * tokens it admitted (a fan's token read may be waiting for that), in
 * chunks that fit a NOTIFY payload. */
static int batch_send_notify(pipe_state *ps, batch *b, ct_error *err) {
    char *buf = malloc(NOTIFY_CHUNK_BYTES + 200);
    size_t len = 0;
    if (!buf) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < b->n && rc == 0; i++) {
        event *ev = &b->evs[i];
        if (ev->topic >= T_CONCERT_DLQ || ev->dup || ev->bad) continue;
        const char *id = NULL;
        if (ev->terminal)
            id = ev->command_id;
        else if (strcmp(ev->type, "TokenActivated") == 0)
            id = json_string_value(json_object_get(ev->data, "token"));
        if (!id) continue;
        size_t idl = strlen(id);
        if (idl > 150) continue;
        if (len + idl + 1 > NOTIFY_CHUNK_BYTES) {
            const char *v[1] = {buf};
            rc = send_q(ps, Q_NOTIFY, 1, v, err);
            len = 0;
        }
        if (len) buf[len++] = ',';
        memcpy(buf + len, id, idl);
        len += idl;
        buf[len] = '\0';
    }
    if (rc == 0 && len > 0) {
        const char *v[1] = {buf};
        rc = send_q(ps, Q_NOTIFY, 1, v, err);
    }
    free(buf);
    return rc;
}

/* Phase 6, once committed: the positions and counts move on. */
static void batch_committed(ct_projector *p, batch *b) {
    for (int t = 0; t < TOPICS; t++)
        for (int part = 0; part < PARTITIONS_MAX; part++)
            if (b->next[t][part] >= 0) p->stored[t][part] = b->next[t][part];
    p->applied += b->applied, p->duplicates += b->dups, p->skipped += b->skipped, p->dead_letters += b->dead;
    p->batches++;
    for (int i = 0; i < b->n; i++) {
        const event *ev = &b->evs[i];
        if (ev->topic < T_CONCERT_DLQ && !ev->bad && !ev->dup && ev->terminal)
            ct_trace_hop(ev->command_id, strlen(ev->command_id), "projector.commit");
    }
}

/* Applies msgs[0..n) in one transaction: the events (duplicates and
 * malformed ones recorded as such), the offsets the batch reaches, its
 * NOTIFYs; the statements after the duplicate check are pipelined.
 * skip_all: record every event as skipped (the isolation path for one
 * event the database refuses). Returns 0, 1 on a lost compare-and-set, -1
 * with err. */
static int apply_batch(ct_projector *p, rd_kafka_message_t **msgs, int n, bool skip_all, const char *skip_why,
                       ct_error *err) {
    batch b;
    int rc = batch_init(&b, msgs, n, err);
    bool begun = false;
    if (rc == 0) {
        batch_parse(&b, skip_all, skip_why);
        rc = ct_pg_exec(p->pg, "BEGIN", err);
        begun = true; /* or failed half-way: a ROLLBACK is harmless */
    }
    if (rc == 0) rc = batch_mark_duplicates(p, &b, err);
    pipe_state ps = {.pg = p->pg};
    bool piped = false;
    if (rc == 0) {
        if (!PQenterPipelineMode(p->pg)) {
            CT_ERR(err, CT_ERR_RETRIABLE, "cannot enter pipeline mode");
            rc = -1;
        } else {
            piped = true;
        }
    }
    if (rc == 0) rc = batch_send_events(&ps, &b, err);
    if (rc == 0) rc = batch_send_offsets(p, &ps, &b, err);
    if (rc == 0) rc = batch_send_notify(&ps, &b, err);
    if (piped) {
        if (!PQpipelineSync(p->pg)) {
            if (rc == 0) CT_ERR(err, CT_ERR_RETRIABLE, "pipeline sync failed"), rc = -1;
        } else {
            int crc = collect(&ps, rc == 0 ? err : &(ct_error){0});
            if (rc == 0) rc = crc;
        }
        PQexitPipelineMode(p->pg);
    }
    if (rc == 0) {
        rc = ct_pg_exec(p->pg, "COMMIT", err);
        if (rc == 0) batch_committed(p, &b);
    } else if (begun && PQstatus(p->pg) == CONNECTION_OK) {
        PGresult *res = PQexec(p->pg, "ROLLBACK");
        PQclear(res);
    }
    pipe_state_free(&ps);
    batch_free(&b);
    return rc;
}

/* ---- the loop ------------------------------------------------------------------- */

static ct_projector *projector_new(const ct_config *cfg, const char *instance, const char *replay_db, ct_error *err) {
    ct_projector *p = calloc(1, sizeof *p);
    if (!p || !(p->msgs = calloc((size_t)cfg->projector_batch_max, sizeof *p->msgs))) {
        free(p);
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return NULL;
    }
    p->cfg = cfg;
    char member[192], group[192];
    snprintf(member, sizeof member, "concert-projector-%s", instance);
    snprintf(p->member, sizeof p->member, "%s", instance);
    snprintf(group, sizeof group, "%s", cfg->projector_group);
    if (replay_db) {
        /* Its own group: the live projector's partitions stay where they are. */
        p->replay = true;
        snprintf(p->dbname, sizeof p->dbname, "%s", replay_db);
        snprintf(group, sizeof group, "%s-replay-%s", cfg->projector_group, instance);
    }
    ct_kafka_consumer_opts co = {.client_id = member,
                                 .group_id = group,
                                 .read_committed = true,
                                 .auto_commit = false,
                                 .opaque = p,
                                 .rebalance_cb = on_rebalance,
                                 .group_instance_id = member,
                                 .session_timeout_ms = CT_PROJECTOR_SESSION_TIMEOUT_MS};
    if (!(p->consumer = ct_kafka_consumer_new(cfg, &co, err))) goto fail;
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(TOPICS);
    for (int i = 0; i < TOPICS; i++) rd_kafka_topic_partition_list_add(subs, topic_names[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(p->consumer, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (se) {
        CT_ERR(err, CT_ERR_FATAL, "subscribe: %s", rd_kafka_err2str(se));
        goto fail;
    }
    return p;
fail:
    ct_projector_destroy(p);
    return NULL;
}

void ct_projector_stats_get(const ct_projector *p, ct_projector_stats *out) {
    *out = (ct_projector_stats){.applied = p->applied,
                                .duplicates = p->duplicates,
                                .skipped = p->skipped,
                                .dead_letters = p->dead_letters,
                                .batches = p->batches};
}

ct_projector *ct_projector_new(const ct_config *cfg, const char *instance, ct_error *err) {
    return projector_new(cfg, instance, NULL, err);
}

ct_projector *ct_projector_new_replay(const ct_config *cfg, const char *dbname, ct_error *err) {
    if (strlen(dbname) >= sizeof((ct_projector *)0)->dbname) {
        CT_ERR(err, CT_ERR_PERMANENT, "database name too long");
        return NULL;
    }
    char instance[32];
    snprintf(instance, sizeof instance, "%ld", (long)getpid());
    return projector_new(cfg, instance, dbname, err);
}

int ct_projector_replay_until(ct_projector *p, const char *topic, int partition, int64_t offset) {
    int t = topic_index(topic);
    if (t < 0 || partition < 0 || partition >= PARTITIONS_MAX) return -1;
    p->until[t][partition] = offset;
    return 0;
}

void ct_projector_destroy(ct_projector *p) {
    if (!p) return;
    if (p->consumer) {
        rd_kafka_consumer_close(p->consumer);
        rd_kafka_destroy(p->consumer);
    }
    if (p->pending) rd_kafka_topic_partition_list_destroy(p->pending);
    if (p->pg) PQfinish(p->pg);
    free(p->msgs);
    free(p);
}

static void drop_msgs(rd_kafka_message_t **msgs, int n) {
    for (int i = 0; i < n; i++) rd_kafka_message_destroy(msgs[i]);
}

/* Fills p->msgs with up to batch_max records of assigned partitions. After
 * the first it waits up to batch_ms for more only when batches have been
 * large (GATHER_MIN_EVENTS): under load a longer, larger transaction
 * costs Postgres less per event; at a trickle, waiting would only add
 * batch_ms to every answer, so it takes what has arrived and goes. A
 * rebalance in between drops what was gathered before it (it is read
 * again from the stored offsets). */
static int gather(ct_projector *p) {
    int n = 0;
    uint64_t gen = p->generation;
    int64_t deadline = 0;
    bool linger = p->avg_batch8 >= 8 * GATHER_MIN_EVENTS;
    while (n < p->cfg->projector_batch_max && !ct_signal_stop_requested() && !p->fatal && !p->pending) {
        int wait = 100;
        if (n > 0) {
            int64_t left = deadline - ct_clock_mono_ms();
            if (left <= 0) break;
            wait = linger ? (int)left : 0;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(p->consumer, wait);
        if (p->generation != gen) {
            /* What was gathered belongs to the old assignment and is read
             * again from the stored offsets. m does not: the poll that ran
             * the rebalance fetched it after the new assignment (librdkafka
             * discards records fetched before an assign), and dropping it
             * would lose it. */
            drop_msgs(p->msgs, n);
            n = 0;
            gen = p->generation;
        }
        if (!m) {
            if (n == 0 || !linger) break;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                CT_LOG_RATELIMITED(CT_LOG_WARN, "kafka", 5000, "consumer: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        int t = topic_index(rd_kafka_topic_name(m->rkt));
        if (t < 0 || m->partition < 0 || m->partition >= PARTITIONS_MAX || !p->assigned[t][m->partition] ||
            m->offset < p->stored[t][m->partition] || (p->replay && m->offset >= p->until[t][m->partition])) {
            rd_kafka_message_destroy(m); /* revoked meanwhile, applied already, or past a replay's mark */
            continue;
        }
        if (n == 0) deadline = ct_clock_mono_ms() + p->cfg->projector_batch_ms;
        p->msgs[n++] = m;
    }
    if (n > 0) p->avg_batch8 += n - p->avg_batch8 / 8;
    return n;
}

/* A batch the database refuses for its content: apply its events one by
 * one so that only the refused one is skipped. */
static int apply_isolating(ct_projector *p, rd_kafka_message_t **msgs, int n, ct_error *err) {
    for (int i = 0; i < n; i++) {
        ct_error e1 = {0};
        int rc = apply_batch(p, &msgs[i], 1, false, NULL, &e1);
        if (rc == -1 && e1.klass == CT_ERR_PERMANENT) {
            char why[200];
            snprintf(why, sizeof why, "refused by the database: %.150s", e1.msg);
            CT_LOG_WARN("projector", "event refused by the database, skipping it: %s %s", e1.msg, e1.detail);
            rc = apply_batch(p, &msgs[i], 1, true, why, &e1);
        }
        if (rc != 0) {
            *err = e1;
            return rc;
        }
    }
    return 0;
}

static void log_stats(ct_projector *p, int64_t *last_ms, uint64_t *last_applied) {
    int64_t now = ct_clock_mono_ms();
    if (now - *last_ms < STATS_EVERY_MS) return;
    double rate = (double)(p->applied - *last_applied) * 1000.0 / (double)(now - *last_ms);
    CT_LOG_INFO("projector",
                "progress applied=%" PRIu64 " duplicates=%" PRIu64 " skipped=%" PRIu64 " dead_letters=%" PRIu64
                " batches=%" PRIu64 " lost_cas=%" PRIu64 " events_per_s=%.0f",
                p->applied, p->duplicates, p->skipped, p->dead_letters, p->batches, p->mismatches, rate);
    *last_ms = now, *last_applied = p->applied;
}

/* Keeps the group membership alive while waiting (records are dropped:
 * they are read again from the stored offsets). */
static void idle(ct_projector *p, int64_t ms) {
    int64_t until = ct_clock_mono_ms() + ms;
    while (!ct_signal_stop_requested() && ct_clock_mono_ms() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(p->consumer, 100);
        if (m) rd_kafka_message_destroy(m);
    }
}

/* Retention (ct_retention): a pass every PRUNE_EVERY_MS, in slices of
 * PRUNE_SLICE rows per table between batches (another while they took less
 * than PRUNE_BUDGET_MS), so a large backlog never holds up the events. */
#define PRUNE_EVERY_MS 60000
#define PRUNE_SLICE 1000
#define PRUNE_BUDGET_MS 20

static void prune(ct_projector *p) {
    int64_t start = ct_clock_mono_ms();
    if (p->replay || p->cfg->projector_retention_s == 0 || !p->pg || (!p->pruning && start < p->next_prune_ms)) return;
    bool more = false;
    do {
        ct_error e = {0};
        if (ct_retention_prune_slice(p->pg, p->cfg->projector_retention_s, PRUNE_SLICE, &p->pass_pruned, &more, &e) !=
            0) {
            CT_LOG_RATELIMITED(CT_LOG_WARN, "projector", 60000, "retention: %s %s", e.msg, e.detail);
            if (PQstatus(p->pg) != CONNECTION_OK) drop_pg(p, e.msg);
            more = false;
        }
    } while (more && ct_clock_mono_ms() - start < PRUNE_BUDGET_MS);
    p->pruning = more;
    if (more) return;
    ct_retention_counts *c = &p->pass_pruned;
    if (c->events + c->commands + c->notifications > 0)
        CT_LOG_INFO("projector",
                    "retention: deleted %" PRId64 " event ids, %" PRId64 " command outcomes, %" PRId64
                    " sent notifications older than %d s",
                    c->events, c->commands, c->notifications, p->cfg->projector_retention_s);
    *c = (ct_retention_counts){0};
    p->next_prune_ms = ct_clock_mono_ms() + PRUNE_EVERY_MS;
}

/* A replay is done when each marked partition is assigned and applied, or
 * read past (control records and records beyond the mark included), up to
 * its mark. Logs how far it is every 2 s. */
static bool replay_done(ct_projector *p) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    bool done = true;
    int64_t left = 0;
    for (int t = 0; t < TOPICS; t++)
        for (int part = 0; part < PARTITIONS_MAX; part++) {
            if (p->until[t][part] <= 0) continue;
            if (!p->assigned[t][part])
                done = false;
            else if (p->stored[t][part] < p->until[t][part])
                rd_kafka_topic_partition_list_add(l, topic_names[t], part);
        }
    if (l->cnt > 0 && rd_kafka_position(p->consumer, l) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < l->cnt; i++) {
            int64_t mark = p->until[topic_index(l->elems[i].topic)][l->elems[i].partition];
            int64_t at = l->elems[i].offset >= 0 ? l->elems[i].offset : 0;
            if (at < mark) done = false, left += mark - at;
        }
    } else if (l->cnt > 0) {
        done = false;
    }
    rd_kafka_topic_partition_list_destroy(l);
    int64_t now = ct_clock_mono_ms();
    if (!done && now - p->replay_log_ms >= 2000) {
        CT_LOG_INFO("replay", "progress applied=%" PRIu64 " duplicates=%" PRIu64 " offsets_left=%" PRId64, p->applied,
                    p->duplicates, left);
        p->replay_log_ms = now;
    }
    return done;
}

/* The metrics count undelivered Slack notifications up to this many. */
#define PENDING_ALERTS_COUNTED "10000"

/* projector-<instance>.prom (runtime/ct_metrics): events applied, batch
 * latency, each assigned partition's lag (the high watermark librdkafka
 * last fetched minus the offset stored with the read models) and the Slack
 * notifications not delivered yet. */
static void publish_metrics(ct_projector *p) {
    p->metrics_ms = ct_clock_mono_ms();
    if (p->replay) return;
    char buf[16384], labels[160], name[200];
    snprintf(labels, sizeof labels, "group=\"%s\"", p->cfg->projector_group);
    ct_metrics_text t = {.buf = buf, .cap = sizeof buf};
    ct_metrics_one(&t, "concert_projector_events_total", "counter", "Events applied to the read models.", labels,
                   (double)(p->applied));
    ct_metrics_one(&t, "concert_projector_duplicates_total", "counter", "Events skipped as applied already.", labels,
                   (double)(p->duplicates));
    ct_metrics_one(&t, "concert_projector_skipped_total", "counter", "Events that could not be applied (alerted).",
                   labels, (double)(p->skipped));
    ct_metrics_family(&t, "concert_projector_batch_seconds", "histogram",
                      "A batch's Postgres transaction (statements, offsets, notify, commit).");
    ct_metrics_histogram(&t, "concert_projector_batch_seconds", labels, &p->batch_seconds);
    ct_metrics_family(&t, "concert_projector_lag_records", "gauge",
                      "Records of an assigned partition not applied yet (high watermark minus stored offset).");
    for (int tp = 0; tp < TOPICS; tp++)
        for (int part = 0; part < p->cfg->kafka_partitions && part < PARTITIONS_MAX; part++) {
            int64_t lo = 0, hi = 0;
            if (!p->assigned[tp][part] ||
                rd_kafka_get_watermark_offsets(p->consumer, topic_names[tp], part, &lo, &hi) || hi < 0)
                continue;
            int64_t at = p->stored[tp][part] >= 0 ? p->stored[tp][part] : lo;
            ct_metrics_printf(&t, "concert_projector_lag_records{%s,topic=\"%s\",partition=\"%d\"} %" PRId64 "\n",
                              labels, topic_names[tp], part, hi > at ? hi - at : 0);
        }
    if (p->pg) {
        /* Counted up to a cap: without a webhook every confirmation stays
         * unsent (for the retention), and an exact count walked them all on
         * the projector's own connection every 5 s (26 ms after minutes
         * of load, growing). */
        PGresult *res = PQexec(p->pg, "SELECT count(*) FROM (SELECT 1 FROM slack_notifications WHERE sent_at IS NULL"
                                      " LIMIT " PENDING_ALERTS_COUNTED ") u");
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            ct_metrics_family(&t, "concert_slack_pending_notifications", "gauge",
                              "Slack notifications written and not delivered yet, counted up to " PENDING_ALERTS_COUNTED
                              ".");
            ct_metrics_printf(&t, "concert_slack_pending_notifications %s\n", PQgetvalue(res, 0, 0));
        }
        PQclear(res);
    }
    snprintf(name, sizeof name, "projector-%s", p->member);
    ct_error e = {0};
    if (ct_metrics_publish(p->cfg, name, &t, &e) != 0)
        CT_LOG_RATELIMITED(CT_LOG_WARN, "metrics", 60000, "cannot write the metrics file: %s", e.msg);
}

int ct_projector_run(ct_projector *p, ct_error *err) {
    if (!p->replay && !(p->slack = ct_slack_start(p->cfg, err))) return -1;
    CT_LOG_INFO("projector", "started group=%s batch_max=%d batch_ms=%d", p->cfg->projector_group,
                p->cfg->projector_batch_max, p->cfg->projector_batch_ms);
    int64_t stats_ms = ct_clock_mono_ms();
    uint64_t stats_applied = 0;
    int rc = 0;
    while (!ct_signal_stop_requested()) {
        if (p->fatal) {
            *err = p->fatal_err;
            rc = -1;
            break;
        }
        ct_error e = {0};
        if (!p->pg && open_pg(p, &e) != 0) {
            CT_LOG_RATELIMITED(CT_LOG_WARN, "projector", 5000, "cannot connect to the database: %s %s", e.msg,
                               e.detail);
            reseek(p);
            idle(p, ct_backoff_ms(p->pg_failures++, 200, 10000, ct_backoff_jitter()));
            continue;
        }
        p->pg_failures = 0;
        if (p->pending) {
            rd_kafka_topic_partition_list_t *todo = p->pending;
            p->pending = NULL;
            if (assign_from_store(p, todo, &e) != 0) {
                if (e.klass == CT_ERR_FATAL)
                    p->fatal = true, p->fatal_err = e;
                else if (!p->pending)
                    p->pending = todo, todo = NULL;
                if (PQstatus(p->pg) != CONNECTION_OK) drop_pg(p, e.msg);
                if (todo) rd_kafka_topic_partition_list_destroy(todo);
                idle(p, 500);
                continue;
            }
            rd_kafka_topic_partition_list_destroy(todo);
        }
        int n = gather(p);
        log_stats(p, &stats_ms, &stats_applied);
        if (ct_clock_mono_ms() - p->metrics_ms >= 5000) publish_metrics(p);
        if (n == 0) {
            if (p->replay && replay_done(p)) break;
            prune(p);
            continue;
        }
        int64_t t_batch = ct_clock_mono_us();
        int brc = apply_batch(p, p->msgs, n, false, NULL, &e);
        if (brc == -1 && e.klass == CT_ERR_PERMANENT) {
            /* The slow path, meant for one event the database refuses:
             * said, so a batch that should not come here is seen. */
            CT_LOG_WARN("projector", "batch of %d refused by the database, applying its events one at a time: %s %s", n,
                        e.msg, e.detail);
            brc = apply_isolating(p, p->msgs, n, &e);
        }
        drop_msgs(p->msgs, n);
        if (brc == 1) {
            p->mismatches++;
            CT_LOG_WARN("projector", "stored offsets moved under this projector (another owner?): re-reading them");
            reseek(p);
        } else if (brc != 0) {
            if (e.klass == CT_ERR_FATAL) {
                *err = e;
                rc = -1;
                break;
            }
            CT_LOG_WARN("projector", "batch not applied, reading it again: %s %s", e.msg, e.detail);
            if (!p->pg || PQstatus(p->pg) != CONNECTION_OK) drop_pg(p, e.msg);
            reseek(p);
            idle(p, 200);
        } else if (p->replay) {
            if (replay_done(p)) break;
        } else {
            ct_histogram_observe_us(&p->batch_seconds, ct_clock_mono_us() - t_batch);
            prune(p);
        }
    }
    if (p->replay && rc == 0 && ct_signal_stop_requested()) {
        CT_ERR(err, CT_ERR_RETRIABLE, "stopped before the replay reached its marks");
        rc = -1;
    }
    CT_LOG_INFO("projector", "stopping applied=%" PRIu64 " duplicates=%" PRIu64 " skipped=%" PRIu64, p->applied,
                p->duplicates, p->skipped);
    ct_slack_stop(p->slack);
    p->slack = NULL;
    return rc;
}
