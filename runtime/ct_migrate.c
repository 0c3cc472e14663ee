/* ct_migrate: see ct_migrate.h. */
#include "ct_migrate.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "ct_hash.h"
#include "ct_log.h"
#include "ct_pg.h"

/* Any 64-bit constant unique to this purpose will do. */
#define MIGRATE_LOCK_KEY "7263914021"

static int apply_one(PGconn *conn, const ct_migration *m, int *applied, ct_error *err) {
    char version[16], checksum[24];
    snprintf(version, sizeof version, "%d", m->version);
    snprintf(checksum, sizeof checksum, "%016" PRIx64, ct_hash64_str(m->sql));
    const char *params[3] = {version, m->name, checksum};
    if (ct_pg_exec(conn, "BEGIN", err) != 0) return -1;
    if (ct_pg_exec(conn, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", err) != 0) goto rollback;
    PGresult *res =
        PQexecParams(conn, "SELECT checksum FROM schema_migrations WHERE version = $1", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ct_pg_result_error(conn, res, "migration lookup", err);
        goto rollback;
    }
    if (PQntuples(res) == 1) {
        int same = strcmp(PQgetvalue(res, 0, 0), checksum) == 0;
        PQclear(res);
        if (!same) {
            CT_ERR(err, CT_ERR_FATAL, "migration %04d_%s was changed after it was applied", m->version, m->name);
            ct_error_detail(err, "add a new migration instead of editing an applied one");
            goto rollback;
        }
        return ct_pg_exec(conn, "COMMIT", err);
    }
    PQclear(res);
    if (ct_pg_exec(conn, m->sql, err) != 0) {
        char detail[sizeof err->detail];
        snprintf(detail, sizeof detail, "%s", err ? err->detail : "");
        CT_ERR(err, CT_ERR_FATAL, "migration %04d_%s failed", m->version, m->name);
        ct_error_detail(err, "%s", detail);
        goto rollback;
    }
    res = PQexecParams(conn, "INSERT INTO schema_migrations(version, name, checksum) VALUES ($1, $2, $3)", 3, NULL,
                       params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ct_pg_result_error(conn, res, "migration record", err);
        goto rollback;
    }
    PQclear(res);
    if (ct_pg_exec(conn, "COMMIT", err) != 0) return -1;
    CT_LOG_INFO("migrate", "applied migration version=%d name=%s", m->version, m->name);
    (*applied)++;
    return 0;
rollback:
    PQclear(PQexec(conn, "ROLLBACK"));
    return -1;
}

int ct_migrate_apply(PGconn *conn, const ct_migration *list, size_t count, int *applied, ct_error *err) {
    int n = 0;
    for (size_t i = 1; i < count; i++) {
        if (list[i].version <= list[i - 1].version) {
            CT_ERR(err, CT_ERR_FATAL, "migrations out of order: %d after %d", list[i].version, list[i - 1].version);
            return -1;
        }
    }
    if (ct_pg_exec(conn,
                   "CREATE TABLE IF NOT EXISTS schema_migrations ("
                   " version int PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
                   " applied_at timestamptz NOT NULL DEFAULT now())",
                   err) != 0) {
        /* Two migrators racing on the very first CREATE can collide; retry once. */
        if (ct_pg_exec(conn, "SELECT 1 FROM schema_migrations LIMIT 1", err) != 0) return -1;
    }
    for (size_t i = 0; i < count; i++)
        if (apply_one(conn, &list[i], &n, err) != 0) return -1;
    if (applied) *applied = n;
    return 0;
}
