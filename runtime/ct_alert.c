/* ct_alert: see ct_alert.h. */
#include "ct_alert.h"

#include "ct_pg.h"

int ct_alert_enqueue(PGconn *pg, const char *kind, const char *text, const char *dedup_key, ct_error *err) {
    const char *p[3] = {kind, text, dedup_key};
    PGresult *res = PQexecParams(pg, "SELECT " CT_ALERT_ENQUEUE_SQL("$1", "$2", "$3"), 3, NULL, p, NULL, NULL, 0);
    if (ct_pg_check(pg, res, PGRES_TUPLES_OK, "enqueue an alert", err) != 0) return -1;
    PQclear(res);
    return 0;
}
