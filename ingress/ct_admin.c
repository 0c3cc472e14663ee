/* ct_admin: see ct_admin.h. */
#include "ct_admin.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_cluster.h"
#include "ct_kafka.h"
#include "ct_log.h"
#include "ct_outbox.h"
#include "ct_pg.h"

struct ct_admin {
    const ct_config *cfg;
    ct_cluster *cluster;
};

ct_admin *ct_admin_new(const ct_config *cfg) {
    ct_admin *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->cfg = cfg;
    if (!(a->cluster = ct_cluster_new(cfg))) {
        free(a);
        return NULL;
    }
    return a;
}

void ct_admin_destroy(ct_admin *a) {
    if (!a) return;
    ct_cluster_destroy(a->cluster);
    free(a);
}

typedef struct answer {
    unsigned status;
    json_t *body;
} answer;

static answer fail(unsigned status, const char *code, const char *message) {
    return (answer){status, json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message)};
}

/* A cluster error: PERMANENT ones name what is not there. */
static answer cluster_fail(const ct_error *err) {
    if (err->klass == CT_ERR_PERMANENT) return fail(404, "NOT_FOUND", err->msg);
    CT_LOG_RATELIMITED(CT_LOG_WARN, "console", 5000, "cluster: %s", err->msg);
    return fail(503, "KAFKA_UNAVAILABLE", err->msg);
}

static answer pg_fail(PGconn *pg) {
    CT_LOG_RATELIMITED(CT_LOG_WARN, "console", 5000, "read failed: %s", PQerrorMessage(pg));
    return fail(503, "STORE_UNAVAILABLE", "cannot read; retry");
}

/* A read whose first row's first column is JSON text: that JSON, and the
 * row's further columns through *res (the caller clears it). NULL with
 * *failed set when the database did not answer. */
static json_t *read_json(PGconn *pg, const char *sql, int n, const char *const *params, PGresult **res,
                         answer *failed) {
    *res = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(*res) != PGRES_TUPLES_OK || PQntuples(*res) < 1) {
        PQclear(*res);
        *res = NULL;
        *failed = pg_fail(pg);
        return NULL;
    }
    json_t *j = json_loads(PQgetvalue(*res, 0, 0), 0, NULL);
    return j ? j : json_array();
}

/* An integer query parameter in [lo, hi]; absent: dflt. false: malformed. */
static bool int_param(const char *s, long long lo, long long hi, long long dflt, long long *out) {
    if (!s) {
        *out = dflt;
        return true;
    }
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* ---- Kafka views -------------------------------------------------------- */

static answer topics(ct_admin *a) {
    ct_error err = {0};
    json_t *j = ct_cluster_topics(a->cluster, &err);
    return j ? (answer){200, j} : cluster_fail(&err);
}

static answer records(ct_admin *a, const ct_admin_request *rq) {
    long long partition, offset, limit;
    if (!int_param(rq->partition, 0, 1 << 20, -1, &partition) || !int_param(rq->offset, 0, INT64_MAX, -1, &offset) ||
        !int_param(rq->limit, 1, CT_CLUSTER_RECORDS_MAX, 20, &limit))
        return fail(400, "INVALID_QUERY", "partition and offset must be whole numbers >= 0, limit 1..200");
    const char *key = rq->key && rq->key[0] ? rq->key : NULL;
    if (partition < 0 && !key) return fail(400, "INVALID_QUERY", "give a partition to browse, or a key to search");
    ct_error err = {0};
    json_t *j = ct_cluster_records(a->cluster, rq->topic, (int)partition, offset, (int)limit, key, &err);
    return j ? (answer){200, j} : cluster_fail(&err);
}

/* STEP 17's check from the browser: a record to test-topic only. */
static answer produce(ct_admin *a, const ct_admin_request *rq) {
    if (strcmp(rq->topic, CT_TOPIC_TEST) != 0) return fail(403, "FORBIDDEN", "the console produces to test-topic only");
    json_error_t je;
    json_t *in = rq->body ? json_loadb(rq->body, rq->body_len, 0, &je) : NULL;
    json_t *value = json_object_get(in, "value"), *key = json_object_get(in, "key");
    if (!json_is_object(in) || !json_is_string(value) || (key && !json_is_string(key) && !json_is_null(key)) ||
        json_object_size(in) > 2 || json_string_length(value) > 4096) {
        json_decref(in);
        return fail(422, "INVALID_BODY", "body must be {\"value\": string of at most 4096 bytes, \"key\": string}");
    }
    ct_error err = {0};
    json_t *j = ct_cluster_produce_test(a->cluster, json_is_string(key) ? json_string_value(key) : NULL,
                                        json_string_value(value), &err);
    json_decref(in);
    return j ? (answer){201, j} : cluster_fail(&err);
}

/* The processors' groups and the projector's, whose offsets are in
 * Postgres beside its read models (the same transaction as each batch). */
static answer consumers(ct_admin *a, PGconn *pg) {
    PGresult *res = PQexec(pg, "SELECT topic, partition, next_offset FROM projector_offsets ORDER BY 1, 2");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return pg_fail(pg);
    }
    json_t *own = json_object();
    for (int i = 0; i < PQntuples(res); i++) {
        const char *topic = PQgetvalue(res, i, 0);
        json_t *t = json_object_get(own, topic);
        if (!t) json_object_set_new(own, topic, t = json_object());
        json_object_set_new(t, PQgetvalue(res, i, 1), json_integer(strtoll(PQgetvalue(res, i, 2), NULL, 10)));
    }
    PQclear(res);
    const char *groups[] = {CT_PROCESSOR_GROUP_PREFIX "concert", CT_PROCESSOR_GROUP_PREFIX "wallet",
                            a->cfg->projector_group};
    json_t *positions = json_pack("{s:o}", a->cfg->projector_group, own);
    ct_error err = {0};
    json_t *j = ct_cluster_groups(a->cluster, groups, 3, positions, &err);
    json_decref(positions);
    if (!j) return cluster_fail(&err);
    return (answer){200, json_pack("{s:o}", "groups", j)};
}

/* ---- Postgres views ----------------------------------------------------- */

#define ADMISSION_WINDOW_MS "60000"

/* Per concert, newest first: its queue (waiting, active, admitted in the
 * minute up to the queue's latest time, found as the token reads find it:
 * seqs, since admission is FIFO) and each schedule's seats. */
static answer queues(PGconn *pg, const ct_admin_request *rq) {
    long long limit;
    if (!int_param(rq->limit, 1, CT_API_PAGE_MAX, CT_API_PAGE_DEFAULT, &limit))
        return fail(400, "INVALID_QUERY", "limit must be 1..200");
    char lim[24];
    snprintf(lim, sizeof lim, "%lld", limit);
    const char *p[1] = {lim};
    PGresult *res;
    answer failed;
    json_t *rows = read_json(
        pg,
        "SELECT coalesce(json_agg(q ORDER BY q.created_ts DESC), '[]')::text FROM ("
        " SELECT c.concert_id, c.title, c.max_active, c.active_ttl_ms, c.hold_ttl_ms, c.created_ts,"
        "  (SELECT count(*) FROM queue_tokens t WHERE t.concert_id = c.concert_id AND t.status = 'WAITING') AS waiting,"
        "  (SELECT count(*) FROM queue_tokens t WHERE t.concert_id = c.concert_id AND t.activated_ts IS NOT NULL"
        "    AND t.status = 'ACTIVE') AS active,"
        "  (SELECT count(*) FROM queue_tokens t WHERE t.concert_id = c.concert_id AND t.activated_ts IS NOT NULL"
        "    AND t.status = 'DONE') AS done,"
        "  coalesce(hi.seq - coalesce(lo.seq, first.seq - 1), 0) AS admitted_last_minute,"
        "  (SELECT coalesce(json_agg(json_build_object('schedule_id', s.schedule_id, 'starts_at', s.starts_at,"
        "     'seats', s.seats, 'price', s.price, 'sold', x.sold, 'held', x.held,"
        "     'seats_left', s.seats - x.sold - x.held, 'revenue', x.sold * s.price)"
        "     ORDER BY s.starts_at, s.schedule_id), '[]')"
        "   FROM schedules s CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE z.status = 'SOLD') AS sold,"
        "     count(*) FILTER (WHERE z.status <> 'SOLD') AS held FROM seats z"
        "     WHERE z.concert_id = s.concert_id AND z.schedule_id = s.schedule_id) x"
        "   WHERE s.concert_id = c.concert_id) AS schedules"
        " FROM (SELECT * FROM concerts ORDER BY created_ts DESC, concert_id LIMIT $1::int) c"
        " LEFT JOIN LATERAL (SELECT a.seq, a.activated_ts FROM queue_tokens a WHERE a.concert_id = c.concert_id"
        "   AND a.activated_ts IS NOT NULL ORDER BY a.activated_ts DESC, a.seq DESC LIMIT 1) hi ON true"
        " LEFT JOIN LATERAL (SELECT greatest(hi.activated_ts, (SELECT w.issued_ts FROM queue_tokens w"
        "   WHERE w.concert_id = c.concert_id AND w.status = 'WAITING' ORDER BY w.seq DESC LIMIT 1)) AS now) clk ON true"
        " LEFT JOIN LATERAL (SELECT a.seq FROM queue_tokens a WHERE a.concert_id = c.concert_id"
        "   AND a.activated_ts IS NOT NULL AND a.activated_ts <= clk.now - " ADMISSION_WINDOW_MS
        "   ORDER BY a.activated_ts DESC, a.seq DESC LIMIT 1) lo ON true"
        " LEFT JOIN LATERAL (SELECT a.seq FROM queue_tokens a WHERE a.concert_id = c.concert_id"
        "   AND a.activated_ts IS NOT NULL ORDER BY a.activated_ts, a.seq LIMIT 1) first ON true) q",
        1, p, &res, &failed);
    if (!rows) return failed;
    PQclear(res);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) { /* the last in line waits for all ahead at the observed rate */
        json_int_t waiting = json_integer_value(json_object_get(row, "waiting"));
        json_int_t admitted = json_integer_value(json_object_get(row, "admitted_last_minute"));
        json_object_set_new(row, "estimated_wait_ms",
                            admitted > 0 ? json_integer((waiting * 60000 + admitted - 1) / admitted) : json_null());
    }
    return (answer){200, json_pack("{s:o}", "concerts", rows)};
}

static answer slack(PGconn *pg, const ct_admin_request *rq) {
    long long limit;
    if (!int_param(rq->limit, 1, CT_API_PAGE_MAX, CT_API_PAGE_DEFAULT, &limit))
        return fail(400, "INVALID_QUERY", "limit must be 1..200");
    const char *status = rq->status ? rq->status : "";
    if (status[0] && strcmp(status, "PENDING") != 0 && strcmp(status, "DELIVERED") != 0)
        return fail(400, "INVALID_QUERY", "status must be PENDING or DELIVERED");
    char lim[24];
    snprintf(lim, sizeof lim, "%lld", limit);
    const char *p[2] = {status, lim};
    PGresult *res;
    answer failed;
    json_t *rows = read_json(
        pg,
        "SELECT (SELECT coalesce(json_agg(n ORDER BY n.id DESC), '[]') FROM ("
        "  SELECT id, kind, text, CASE WHEN sent_at IS NULL THEN 'PENDING' ELSE 'DELIVERED' END AS status,"
        "   attempts, last_error, " CT_PG_ISO_TS("created_at") " AS created_at, " CT_PG_ISO_TS(
            "sent_at") " AS sent_at,"
                       "   CASE WHEN sent_at IS NULL THEN " CT_PG_ISO_TS(
                           "next_attempt_at") " END AS next_attempt_at"
                                              "  FROM slack_notifications"
                                              "  WHERE $1 = '' OR ($1 = 'PENDING' AND sent_at IS NULL) OR ($1 = 'DELIVERED' AND sent_at IS NOT NULL)"
                                              "  ORDER BY id DESC LIMIT $2::int) n)::text,"
                                              " (SELECT count(*) FROM slack_notifications WHERE sent_at IS NULL)",
        2, p, &res, &failed);
    if (!rows) return failed;
    json_t *j =
        json_pack("{s:o, s:I}", "notifications", rows, "pending", (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10));
    PQclear(res);
    return (answer){200, j};
}

static answer retry_failed(PGconn *pg) {
    int64_t count = 0;
    ct_error err = {0};
    if (ct_outbox_retry(pg, 0, &count, &err) != 0) return fail(503, "STORE_UNAVAILABLE", "cannot retry; retry");
    CT_LOG_INFO("console", "outbox: %lld FAILED rows set PENDING again", (long long)count);
    return (answer){200, json_pack("{s:I}", "retried", (json_int_t)count)};
}

void ct_admin_answer(ct_admin *a, PGconn *pg, const ct_admin_request *rq, unsigned *status, char **body) {
    answer r;
    switch (rq->route) {
    case CT_ROUTE_ADMIN_TOPICS: r = topics(a); break;
    case CT_ROUTE_ADMIN_RECORDS: r = records(a, rq); break;
    case CT_ROUTE_ADMIN_PRODUCE: r = produce(a, rq); break;
    case CT_ROUTE_ADMIN_CONSUMERS: r = consumers(a, pg); break;
    case CT_ROUTE_ADMIN_QUEUES: r = queues(pg, rq); break;
    case CT_ROUTE_ADMIN_SLACK: r = slack(pg, rq); break;
    case CT_ROUTE_OUTBOX_RETRY_FAILED: r = retry_failed(pg); break;
    default: r = fail(404, "NOT_FOUND", "no such endpoint"); break;
    }
    *status = r.status;
    *body = r.body ? json_dumps(r.body, JSON_COMPACT) : NULL;
    json_decref(r.body);
}
