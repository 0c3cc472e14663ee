/* ct_outbox: see ct_outbox.h. */
#include "ct_outbox.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ct_pg.h"

static const char *const status_names[] = {"PENDING", "SENT", "FAILED"};

const char *ct_outbox_status_name(ct_outbox_status s) { return (unsigned)s < 3 ? status_names[s] : "?"; }

int ct_outbox_status_parse(const char *name, ct_outbox_status *out) {
    for (int i = 0; i < 3; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *out = (ct_outbox_status)i;
            return 0;
        }
    }
    return -1;
}

int ct_outbox_retry(PGconn *conn, int64_t id, int64_t *count, ct_error *err) {
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "%" PRId64, id);
    const char *params[1] = {idbuf};
    /* One statement: the state check and the transition cannot race. A
     * FAILED row's retry_at is 'infinity' (index outbox_retry). */
    PGresult *res =
        PQexecParams(conn,
                     "UPDATE outbox SET status = 'PENDING', attempts = 0, next_attempt_at = now(),"
                     " retry_at = now(), last_error = NULL WHERE status = 'FAILED' AND retry_at = 'infinity'"
                     " AND ($1::bigint = 0 OR id = $1::bigint)",
                     1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ct_pg_result_error(conn, res, "outbox retry", err);
        return -1;
    }
    int64_t n = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    if (id > 0 && n == 0) {
        res = PQexecParams(conn, "SELECT status FROM outbox WHERE id = $1::bigint", 1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            ct_pg_result_error(conn, res, "outbox lookup", err);
            return -1;
        }
        if (PQntuples(res) == 0)
            CT_ERR(err, CT_ERR_PERMANENT, "outbox row %" PRId64 " does not exist", id);
        else
            CT_ERR(err, CT_ERR_PERMANENT, "outbox row %" PRId64 " is %s, not FAILED", id, PQgetvalue(res, 0, 0));
        PQclear(res);
        return -1;
    }
    if (count) *count = n;
    return 0;
}

int ct_outbox_list_json(PGconn *conn, const ct_outbox_status *status_filter, int64_t after_id, int limit,
                        char **json_out, ct_error *err) {
    if (limit < 1 || limit > 1000) {
        CT_ERR(err, CT_ERR_PERMANENT, "limit %d is out of range [1, 1000]", limit);
        return -1;
    }
    char after[32], lim[16];
    snprintf(after, sizeof after, "%" PRId64, after_id);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[3] = {status_filter ? ct_outbox_status_name(*status_filter) : NULL, after, lim};
    /* Postgres builds the JSON: one round trip, types rendered exactly.
     * No index mentions status (migration 0006): PENDING rows are those
     * from the relay's frontier on plus those awaiting a retry, FAILED
     * ones have retry_at 'infinity'; each branch reads an index. */
    PGresult *res = PQexecParams(
        conn,
        "SELECT coalesce(json_agg(json_build_object("
        " 'id', id, 'command_id', command_id, 'topic', topic, 'partition_key', partition_key, 'type', type,"
        " 'status', status, 'attempts', attempts, 'next_attempt_at', next_attempt_at, 'last_error', last_error,"
        " 'created_at', created_at, 'sent_at', sent_at, 'kafka_partition', kafka_partition,"
        " 'kafka_offset', kafka_offset) ORDER BY id), '[]')::text FROM ("
        "  SELECT * FROM outbox WHERE $1::text IS DISTINCT FROM 'PENDING' AND $1::text IS DISTINCT FROM 'FAILED'"
        "   AND ($1::text IS NULL OR status = $1) AND id > $2::bigint"
        "  UNION ALL SELECT * FROM outbox WHERE $1::text = 'FAILED' AND retry_at = 'infinity' AND status = 'FAILED'"
        "   AND id > $2::bigint"
        "  UNION ALL SELECT * FROM outbox WHERE $1::text = 'PENDING' AND retry_at IS NOT NULL AND status = 'PENDING'"
        "   AND id > $2::bigint"
        "  UNION ALL SELECT * FROM outbox WHERE $1::text = 'PENDING' AND retry_at IS NULL AND status = 'PENDING'"
        "   AND id > $2::bigint AND id >= (SELECT next_id FROM outbox_frontier)"
        "  ORDER BY id LIMIT $3::int) r",
        3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ct_pg_result_error(conn, res, "outbox list", err);
        return -1;
    }
    *json_out = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!*json_out) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return -1;
    }
    return 0;
}

int ct_outbox_prune_slice(PGconn *conn, int64_t from, int window, int retention_s, int64_t *deleted, int64_t *next_from,
                          ct_error *err) {
    if (window < 1 || window > 100000 || retention_s < 1) {
        CT_ERR(err, CT_ERR_PERMANENT, "prune window %d or retention %d s is out of range", window, retention_s);
        return -1;
    }
    *deleted = 0, *next_from = 0;
    char fbuf[32], wbuf[16];
    snprintf(fbuf, sizeof fbuf, "%" PRId64, from);
    snprintf(wbuf, sizeof wbuf, "%d", window);
    const char *bp[2] = {fbuf, wbuf};
    /* The range first, so the DELETE below gets it as constants: with the
     * bounds computed inside it, the planner hashed the whole outbox. */
    PGresult *res = PQexecParams(conn,
                                 "SELECT lo, least(lo + $2::int, (SELECT next_id FROM outbox_frontier)) FROM"
                                 " (SELECT CASE WHEN $1::bigint > 0 THEN $1::bigint ELSE"
                                 "  (SELECT min(id) FROM outbox) END AS lo) b",
                                 2, NULL, bp, NULL, NULL, 0);
    if (ct_pg_check(conn, res, PGRES_TUPLES_OK, "outbox prune range", err) != 0) return -1;
    if (PQgetisnull(res, 0, 0) || PQgetisnull(res, 0, 1)) { /* no row at all */
        PQclear(res);
        return 0;
    }
    char lo[32], hi[32], rbuf[16];
    snprintf(lo, sizeof lo, "%s", PQgetvalue(res, 0, 0));
    snprintf(hi, sizeof hi, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    if (strtoll(lo, NULL, 10) >= strtoll(hi, NULL, 10)) return 0; /* at the frontier */
    snprintf(rbuf, sizeof rbuf, "%d", retention_s);
    const char *params[3] = {lo, hi, rbuf};
    /* A range of the primary key, not "the oldest N": a search for N old
     * rows would read every younger row once none is left. The keys go in
     * the same statement (one snapshot), so the foreign key finds none
     * left; ANY(ARRAY(...)) looks each up through its index. */
    res = PQexecParams(
        conn,
        "WITH w AS (SELECT command_id, status = 'SENT' AND sent_at < now() - make_interval(secs => $3::int) AS old,"
        "  status = 'SENT' AND sent_at >= now() - make_interval(secs => $3::int) AS kept"
        "  FROM outbox WHERE id >= $1::bigint AND id < $2::bigint),"
        " k AS (DELETE FROM idempotency_keys WHERE command_id = ANY (ARRAY(SELECT command_id FROM w WHERE old))),"
        " d AS (DELETE FROM outbox WHERE id >= $1::bigint AND id < $2::bigint AND status = 'SENT'"
        "  AND sent_at < now() - make_interval(secs => $3::int) RETURNING 1)"
        " SELECT (SELECT count(*) FROM d), coalesce((SELECT bool_or(kept) FROM w), false),"
        "  (SELECT min(id) FROM outbox WHERE id >= $2::bigint), (SELECT next_id FROM outbox_frontier)",
        3, NULL, params, NULL, NULL, 0);
    if (ct_pg_check(conn, res, PGRES_TUPLES_OK, "outbox prune", err) != 0) return -1;
    *deleted = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    /* The next slice starts at the next id there is: ids of rows pruned
     * long ago are not walked again. */
    bool kept = strcmp(PQgetvalue(res, 0, 1), "t") == 0, last = PQgetisnull(res, 0, 2) || PQgetisnull(res, 0, 3);
    int64_t next = last ? 0 : strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    if (last || kept || next >= strtoll(PQgetvalue(res, 0, 3), NULL, 10)) next = 0;
    *next_from = next;
    PQclear(res);
    return 0;
}

int ct_outbox_backlog_read(PGconn *conn, int64_t frontier, ct_outbox_backlog *out, ct_error *err) {
    char f[32];
    snprintf(f, sizeof f, "%" PRId64, frontier > 0 ? frontier : 0);
    const char *params[1] = {f};
    /* New rows: the primary key from the frontier; retries and FAILED
     * rows: index outbox_retry (retry_at is set only for them). */
    PGresult *res = PQexecParams(
        conn,
        "WITH fresh AS (SELECT created_at FROM outbox WHERE id >= $1::bigint AND status = 'PENDING' AND retry_at IS NULL),"
        " retry AS (SELECT created_at, status FROM outbox WHERE retry_at IS NOT NULL)"
        " SELECT (SELECT count(*) FROM fresh) + (SELECT count(*) FROM retry WHERE status = 'PENDING'),"
        " (SELECT count(*) FROM retry WHERE status = 'FAILED'),"
        " coalesce(extract(epoch FROM now() - (SELECT min(created_at) FROM (SELECT created_at FROM fresh UNION ALL"
        " SELECT created_at FROM retry WHERE status = 'PENDING') a)), 0)",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ct_pg_result_error(conn, res, "outbox backlog", err);
        return -1;
    }
    out->pending = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    out->failed = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    out->oldest_pending_s = strtod(PQgetvalue(res, 0, 2), NULL);
    PQclear(res);
    return 0;
}

int ct_outbox_max_id(PGconn *conn, int64_t *out, ct_error *err) {
    PGresult *res = PQexec(conn, "SELECT coalesce(max(id), 0) FROM outbox");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ct_pg_result_error(conn, res, "outbox max id", err);
        return -1;
    }
    *out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}
