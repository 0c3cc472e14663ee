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
#include "ct_reads.h"

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

/* A cluster error on it: PERMANENT ones name what is not there (404). */
static void cluster_fail(ct_commit_item *it, const ct_error *err) {
    if (err->klass == CT_ERR_PERMANENT) {
        ct_commit_set_error(it, 404, "NOT_FOUND", "%s", err->msg);
        return;
    }
    CT_LOG_RATELIMITED(CT_LOG_WARN, "console", 5000, "cluster: %s", err->msg);
    ct_commit_set_error(it, 503, "KAFKA_UNAVAILABLE", "%s", err->msg);
}

/* A cluster view: j, or the error that left it NULL. */
static void cluster_answer(ct_commit_item *it, unsigned status, json_t *j, const ct_error *err) {
    if (j)
        ct_commit_set_json(it, status, j);
    else
        cluster_fail(it, err);
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

static void topics(ct_admin *a, ct_commit_item *it) {
    ct_error err = {0};
    json_t *j = ct_cluster_topics(a->cluster, &err);
    cluster_answer(it, 200, j, &err);
}

static void records(ct_admin *a, ct_commit_item *it, const ct_admin_request *rq) {
    long long partition, offset, limit;
    if (!int_param(rq->partition, 0, 1 << 20, -1, &partition) || !int_param(rq->offset, 0, INT64_MAX, -1, &offset) ||
        !int_param(rq->limit, 1, CT_CLUSTER_RECORDS_MAX, 20, &limit)) {
        ct_commit_set_error(it, 400, "INVALID_QUERY", "partition and offset must be whole numbers >= 0, limit 1..200");
        return;
    }
    const char *key = rq->key && rq->key[0] ? rq->key : NULL;
    if (partition < 0 && !key) {
        ct_commit_set_error(it, 400, "INVALID_QUERY", "give a partition to browse, or a key to search");
        return;
    }
    ct_error err = {0};
    json_t *j = ct_cluster_records(a->cluster, rq->topic, (int)partition, offset, (int)limit, key, &err);
    cluster_answer(it, 200, j, &err);
}

/* STEP 17's check from the browser: a record to test-topic only. */
static void produce(ct_admin *a, ct_commit_item *it, const ct_admin_request *rq) {
    if (strcmp(rq->topic, CT_TOPIC_TEST) != 0) {
        ct_commit_set_error(it, 403, "FORBIDDEN", "the console produces to test-topic only");
        return;
    }
    json_error_t je;
    json_t *in = rq->body ? json_loadb(rq->body, rq->body_len, 0, &je) : NULL;
    json_t *value = json_object_get(in, "value"), *key = json_object_get(in, "key");
    if (!json_is_object(in) || !json_is_string(value) || (key && !json_is_string(key) && !json_is_null(key)) ||
        json_object_size(in) > 2 || json_string_length(value) > 4096) {
        json_decref(in);
        {
            ct_commit_set_error(it, 422, "INVALID_BODY",
                                "body must be {\"value\": string of at most 4096 bytes, \"key\": string}");
            return;
        }
    }
    ct_error err = {0};
    json_t *j = ct_cluster_produce_test(a->cluster, json_is_string(key) ? json_string_value(key) : NULL,
                                        json_string_value(value), &err);
    json_decref(in);
    cluster_answer(it, 201, j, &err);
}

/* The processors' groups and the projector's, whose offsets are in
 * Postgres beside its read models (the same transaction as each batch). */
static void consumers(ct_admin *a, PGconn *pg, ct_commit_item *it) {
    PGresult *res =
        ct_reads_query(pg, it, "SELECT topic, partition, next_offset FROM projector_offsets ORDER BY 1, 2", 0, NULL);
    if (!res) return;
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
    cluster_answer(it, 200, j ? json_pack("{s:o}", "groups", j) : NULL, &err);
}

/* ---- Postgres views ----------------------------------------------------- */

/* Per concert, newest first: its queue (waiting, active, admitted in the
 * minute up to the queue's latest time, found as the token reads find it:
 * migration 0014's functions) and each schedule's seats. */
static void queues(PGconn *pg, ct_commit_item *it, const ct_admin_request *rq) {
    long long limit;
    if (!int_param(rq->limit, 1, CT_API_PAGE_MAX, CT_API_PAGE_DEFAULT, &limit)) {
        ct_commit_set_error(it, 400, "INVALID_QUERY", "limit must be 1..200");
        return;
    }
    char lim[24];
    snprintf(lim, sizeof lim, "%lld", limit);
    const char *p[2] = {lim, CT_READS_STR(CT_READS_ADMISSION_WINDOW_MS)};
    PGresult *res = ct_reads_query(
        pg, it,
        "SELECT coalesce(json_agg(q ORDER BY q.created_ts DESC), '[]')::text FROM ("
        " SELECT c.concert_id, c.title, c.max_active, c.active_ttl_ms, c.hold_ttl_ms, c.created_ts,"
        "  (SELECT count(*) FROM queue_tokens t WHERE t.concert_id = c.concert_id AND t.status = 'WAITING') AS waiting,"
        "  (SELECT count(*) FROM queue_tokens t WHERE t.concert_id = c.concert_id AND t.activated_ts IS NOT NULL"
        "    AND t.status = 'ACTIVE') AS active,"
        "  (SELECT count(*) FROM queue_tokens t WHERE t.concert_id = c.concert_id AND t.activated_ts IS NOT NULL"
        "    AND t.status = 'DONE') AS done,"
        "  (SELECT k.admitted FROM concert_queue_clock(c.concert_id, NULL, $2::bigint) k) AS admitted_last_minute,"
        "  (SELECT coalesce(json_agg(json_build_object('schedule_id', s.schedule_id, 'starts_at', s.starts_at,"
        "     'seats', s.seats, 'price', s.price, 'sold', x.sold, 'held', x.held,"
        "     'seats_left', s.seats - x.sold - x.held, 'revenue', x.sold * s.price)"
        "     ORDER BY s.starts_at, s.schedule_id), '[]')"
        "   FROM schedules s CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE z.status = 'SOLD') AS sold,"
        "     count(*) FILTER (WHERE z.status <> 'SOLD') AS held FROM seats z"
        "     WHERE z.concert_id = s.concert_id AND z.schedule_id = s.schedule_id) x"
        "   WHERE s.concert_id = c.concert_id) AS schedules"
        " FROM (SELECT * FROM concerts ORDER BY created_ts DESC, concert_id LIMIT $1::int) c) q",
        2, p);
    if (!res) return;
    json_t *rows = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) { /* the last in line waits for all ahead at the observed rate */
        json_int_t waiting = json_integer_value(json_object_get(row, "waiting"));
        int64_t wait = ct_reads_wait_ms(waiting, json_integer_value(json_object_get(row, "admitted_last_minute")));
        json_object_set_new(row, "estimated_wait_ms", wait >= 0 ? json_integer(wait) : json_null());
    }
    ct_commit_set_json(it, 200, json_pack("{s:o}", "concerts", rows ? rows : json_array()));
}

static void slack(PGconn *pg, ct_commit_item *it, const ct_admin_request *rq) {
    long long limit;
    if (!int_param(rq->limit, 1, CT_API_PAGE_MAX, CT_API_PAGE_DEFAULT, &limit)) {
        ct_commit_set_error(it, 400, "INVALID_QUERY", "limit must be 1..200");
        return;
    }
    const char *status = rq->status ? rq->status : "";
    if (status[0] && strcmp(status, "PENDING") != 0 && strcmp(status, "DELIVERED") != 0) {
        ct_commit_set_error(it, 400, "INVALID_QUERY", "status must be PENDING or DELIVERED");
        return;
    }
    char lim[24];
    snprintf(lim, sizeof lim, "%lld", limit);
    const char *p[2] = {status, lim};
    /* clang-format off */
    PGresult *res = ct_reads_query(pg, it,
        "SELECT (SELECT coalesce(json_agg(n ORDER BY n.id DESC), '[]') FROM ("
        "  SELECT id, kind, text, CASE WHEN sent_at IS NULL THEN 'PENDING' ELSE 'DELIVERED' END AS status,"
        "   attempts, last_error, " CT_PG_ISO_TS("created_at") " AS created_at,"
        "   " CT_PG_ISO_TS("sent_at") " AS sent_at,"
        "   CASE WHEN sent_at IS NULL THEN " CT_PG_ISO_TS("next_attempt_at") " END AS next_attempt_at"
        "  FROM slack_notifications"
        "  WHERE $1 = '' OR ($1 = 'PENDING' AND sent_at IS NULL) OR ($1 = 'DELIVERED' AND sent_at IS NOT NULL)"
        "  ORDER BY id DESC LIMIT $2::int) n)::text,"
        " (SELECT count(*) FROM slack_notifications WHERE sent_at IS NULL)",
        2, p);
    /* clang-format on */
    if (!res) return;
    json_t *rows = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    json_t *j = json_pack("{s:o, s:I}", "notifications", rows ? rows : json_array(), "pending",
                          (json_int_t)strtoll(PQgetvalue(res, 0, 1), NULL, 10));
    PQclear(res);
    ct_commit_set_json(it, 200, j);
}

static void retry_failed(PGconn *pg, ct_commit_item *it) {
    int64_t count = 0;
    ct_error err = {0};
    if (ct_outbox_retry(pg, 0, &count, &err) != 0) {
        ct_commit_set_error(it, 503, "STORE_UNAVAILABLE", "cannot retry; retry");
        return;
    }
    CT_LOG_INFO("console", "outbox: %lld FAILED rows set PENDING again", (long long)count);
    ct_commit_set_json(it, 200, json_pack("{s:I}", "retried", (json_int_t)count));
}

void ct_admin_run(ct_admin *a, PGconn *pg, ct_commit_item *it, const ct_admin_request *rq) {
    switch (rq->route) {
    case CT_ROUTE_ADMIN_TOPICS: topics(a, it); return;
    case CT_ROUTE_ADMIN_RECORDS: records(a, it, rq); return;
    case CT_ROUTE_ADMIN_PRODUCE: produce(a, it, rq); return;
    case CT_ROUTE_ADMIN_CONSUMERS: consumers(a, pg, it); return;
    case CT_ROUTE_ADMIN_QUEUES: queues(pg, it, rq); return;
    case CT_ROUTE_ADMIN_SLACK: slack(pg, it, rq); return;
    case CT_ROUTE_OUTBOX_RETRY_FAILED: retry_failed(pg, it); return;
    default: ct_commit_set_error(it, 404, "NOT_FOUND", "no such endpoint"); return;
    }
}
