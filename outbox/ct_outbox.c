/* ct_outbox: see ct_outbox.h. */
#include "ct_outbox.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ct_pg.h"

static const char *const status_names[] = {"PENDING", "SENT", "FAILED"};

const char *ct_outbox_status_name(ct_outbox_status s) {
    return (unsigned)s < 3 ? status_names[s] : "?";
}

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
    PGresult *res = PQexecParams(conn,
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
        if (PQntuples(res) == 0) CT_ERR(err, CT_ERR_PERMANENT, "outbox row %" PRId64 " does not exist", id);
        else CT_ERR(err, CT_ERR_PERMANENT, "outbox row %" PRId64 " is %s, not FAILED", id, PQgetvalue(res, 0, 0));
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
