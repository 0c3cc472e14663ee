/* ct_outbox: see ct_outbox.h. */
#include "ct_outbox.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ct_alert.h"
#include "ct_pg.h"

/* ---- the ingress's writes ---------------------------------------------- */

/* pg_advisory_xact_lock key serialising outbox writers ("outbox" in ASCII). */
#define WRITER_LOCK_KEY "122550254464888"

/* The names stay those the ingress gave them when they lived there
 * (ct_commit_*): they show in pg_stat_statements and the server's logs. */
const ct_pg_statement ct_outbox_write_statements[CT_OUTBOX_WRITE_STMTS] = {
    [CT_OUTBOX_WRITE_LOCK] = {"ct_commit_lock", "SELECT pg_advisory_xact_lock(" WRITER_LOCK_KEY ")"},
    /* A hold is refused (not written; ct_commit answers 402) when the read
     * models know its schedule and the user's balance is below its price:
     * a seat is held only by a fan who can pay for it (a schedule not yet
     * projected goes on: the processor decides). RETURNING names the rows
     * written. */
    [CT_OUTBOX_WRITE_ROWS] =
        {"ct_commit_outbox",
         "INSERT INTO outbox (command_id, topic, partition_key, type, payload)"
         " SELECT u.* FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[])"
         "  AS u(command_id, topic, partition_key, type, payload)"
         " WHERE u.type <> 'HoldSeat' OR NOT EXISTS (SELECT 1 FROM schedules s"
         "  LEFT JOIN balances b ON b.user_id = u.payload->'data'->>'user_id'"
         "  WHERE s.concert_id = u.payload->'data'->>'concert_id'"
         "   AND s.schedule_id = u.payload->'data'->>'schedule_id' AND coalesce(b.balance, 0) < s.price)"
         " RETURNING command_id::text"},
    /* No ON CONFLICT: a key taken by a concurrent batch aborts this one.
     * Only the keys of commands written (a refused hold records none). */
    [CT_OUTBOX_WRITE_KEYS] = {"ct_commit_idem",
                              "INSERT INTO idempotency_keys (key, command_id, fingerprint, response)"
                              " SELECT k.* FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[])"
                              "  AS k(key, command_id, fingerprint, response)"
                              " WHERE EXISTS (SELECT 1 FROM outbox o WHERE o.command_id = k.command_id)"},
};

/* ---- the relay's round ---------------------------------------------------- */

/* The claim reads new rows from the frontier on (every row below it is
 * SENT, FAILED or has retry_at set; migration 0006) through the primary
 * key, and rows awaiting a retry through retry_at's index: no index
 * mentions status, so marking a row SENT is a HOT update, and no claim
 * walks the rows sent before. A row committed later has a larger id, since
 * outbox writers commit in id order (ct_commit's lock), so the frontier
 * only moves past rows the claim has seen: to the largest new id it
 * returned, plus one, once the round is recorded.
 *
 * Per-key order: a key whose earliest waiting row is still in its backoff
 * holds its later rows back. A held new row is parked (retry_at = now(),
 * attempts unchanged) so the frontier can pass it; parked and failed rows
 * go out in id order once nothing earlier of their key waits. FAILED rows
 * ('infinity') hold nothing back.
 *
 * The SENT and failure updates join the batch's ids to the primary key and
 * test nothing else: the rows are PENDING, since only the leader changes a
 * PENDING row and a leader that lost its session cannot record. A status
 * test there would let stale statistics (most rows SENT at the last
 * analyze: "no PENDING row") plan a scan of the whole outbox per id.
 *
 * A row that reaches the attempt limit becomes FAILED and gets its alert
 * (ct_alert) in the same statement; the statement returns one row per
 * alert written, which the relay counts. */
#define CLAIM_HELD(o)                                                                                       \
    "EXISTS (SELECT 1 FROM blocked b WHERE b.topic = " o ".topic AND b.partition_key = " o ".partition_key" \
    " AND b.first < " o ".id)"
const ct_pg_statement ct_outbox_relay_statements[CT_OUTBOX_RELAY_STMTS] = {
    /* clang-format off */
    [CT_OUTBOX_STMT_CLAIM] = {"ct_relay_claim",
                    "WITH blocked AS ("
                    "  SELECT topic, partition_key, min(id) AS first FROM outbox"
                    "  WHERE retry_at > now() AND retry_at < 'infinity' GROUP BY topic, partition_key),"
                    " fresh AS ("
                    "  SELECT id, true AS fresh FROM outbox"
                    "  WHERE id >= $2::bigint AND retry_at IS NULL AND status = 'PENDING' ORDER BY id LIMIT $1::int),"
                    " due AS ("
                    "  SELECT o.id, false AS fresh FROM outbox o"
                    "  WHERE o.retry_at <= now() AND o.status = 'PENDING' AND NOT " CLAIM_HELD("o")
                    "  ORDER BY o.id LIMIT $1::int),"
                    " picked AS (SELECT * FROM fresh UNION ALL SELECT * FROM due ORDER BY id LIMIT $1::int)"
                    " SELECT o.id, o.command_id, o.topic, o.partition_key, o.type, o.payload::text, o.attempts,"
                    "  p.fresh, p.fresh AND " CLAIM_HELD("o")
                    " FROM picked p JOIN outbox o ON o.id = p.id ORDER BY o.id"},
    /* clang-format on */
    [CT_OUTBOX_STMT_SENT] =
        {"ct_relay_sent",
         "UPDATE outbox o SET status = 'SENT', sent_at = now(), kafka_partition = u.p, kafka_offset = u.o,"
         " last_error = NULL, retry_at = NULL FROM unnest($1::bigint[], $2::int[], $3::bigint[]) AS u(id, p, o)"
         " WHERE o.id = u.id"},
    /* clang-format off */
    [CT_OUTBOX_STMT_FAILED] = {"ct_relay_failed",
         "WITH f AS ("
         "  UPDATE outbox o SET attempts = o.attempts + 1, last_error = u.err,"
         "   status = CASE WHEN o.attempts + 1 >= $4::int THEN 'FAILED' ELSE 'PENDING' END,"
         "   next_attempt_at = now() + u.delay_ms * interval '1 millisecond',"
         "   retry_at = CASE WHEN o.attempts + 1 >= $4::int THEN 'infinity'"
         "    ELSE now() + u.delay_ms * interval '1 millisecond' END"
         "  FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS u(id, err, delay_ms)"
         "  WHERE o.id = u.id"
         "  RETURNING o.id, o.command_id, o.topic, o.type, o.status, o.attempts, o.last_error)"
         " SELECT a.id FROM (SELECT " CT_ALERT_ENQUEUE_SQL("'outbox_failed'",
             "format('Outbox row %s (%s, command %s, topic %s) FAILED after %s attempts: %s.'"
             "   || ' Re-drive it with POST /v1/admin/outbox/%s/retry or concert outbox retry %s.',"
             "   id, type, command_id, topic, attempts, last_error, id, id)", "NULL")
         " AS id FROM f WHERE status = 'FAILED') a WHERE a.id IS NOT NULL"},
    /* clang-format on */
    [CT_OUTBOX_STMT_PARK] = {"ct_relay_park",
                             "UPDATE outbox SET retry_at = now() WHERE id = ANY($1::bigint[]) AND status = 'PENDING'"
                             " AND retry_at IS NULL"},
    [CT_OUTBOX_STMT_FRONTIER_GET] = {"ct_relay_frontier_get", "SELECT next_id FROM outbox_frontier"},
    [CT_OUTBOX_STMT_FRONTIER_SET] = {"ct_relay_frontier_set",
                                     "UPDATE outbox_frontier SET next_id = $1::bigint WHERE next_id < $1::bigint"},
};

/* ---- shared operations ------------------------------------------------------ */

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
