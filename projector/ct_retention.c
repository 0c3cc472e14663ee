#include "ct_retention.h"

#include <stdio.h>
#include <stdlib.h>

#include "ct_pg.h"

/* Each table's oldest rows through its time index (`cond` names the
 * index's partial condition), deleted by primary key: the search stops at
 * the cutoff, so a slice costs what it deletes. */
#define OLDEST(table, key, cond, at)                                                                \
    "DELETE FROM " table " WHERE " key " = ANY (ARRAY(SELECT " key " FROM " table " WHERE " cond at \
    " < now() - make_interval(secs => $1::int) ORDER BY " at " LIMIT $2::int)) RETURNING 1"

/* Undelivered notifications by their next attempt (ct_retention.h says why). */
/* clang-format off */
static const char prune_sql[] = "WITH e AS (" OLDEST("projected_events", "id", "", "applied_at") "),"
                                " c AS (" OLDEST("commands", "command_id", "", "completed_at") "),"
                                " s AS (" OLDEST("slack_notifications", "id", "sent_at IS NOT NULL AND ", "sent_at") "),"
                                " u AS (" OLDEST("slack_notifications", "id", "sent_at IS NULL AND ", "next_attempt_at") ")"
                                " SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM c),"
                                " (SELECT count(*) FROM s), (SELECT count(*) FROM u)";
/* clang-format on */

int ct_retention_prune_slice(PGconn *conn, int retention_s, int limit, ct_retention_counts *deleted, bool *more,
                             ct_error *err) {
    *more = false;
    if (limit < 1 || limit > 100000 || retention_s < 1) {
        CT_ERR(err, CT_ERR_PERMANENT, "retention slice of %d rows or retention of %d s is out of range", limit,
               retention_s);
        return -1;
    }
    char rbuf[16], lbuf[16];
    snprintf(rbuf, sizeof rbuf, "%d", retention_s);
    snprintf(lbuf, sizeof lbuf, "%d", limit);
    const char *params[2] = {rbuf, lbuf};
    PGresult *res = PQexecParams(conn, prune_sql, 2, NULL, params, NULL, NULL, 0);
    if (ct_pg_check(conn, res, PGRES_TUPLES_OK, "read model retention", err) != 0) return -1;
    int64_t e = strtoll(PQgetvalue(res, 0, 0), NULL, 10), c = strtoll(PQgetvalue(res, 0, 1), NULL, 10),
            s = strtoll(PQgetvalue(res, 0, 2), NULL, 10), u = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    PQclear(res);
    deleted->events += e, deleted->commands += c, deleted->notifications += s + u;
    *more = e == limit || c == limit || s == limit || u == limit;
    return 0;
}
