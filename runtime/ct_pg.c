/* ct_pg: see ct_pg.h. */
#include "ct_pg.h"

#include <stdio.h>
#include <string.h>

#include "ct_log.h"

/* Server notices ("relation already exists, skipping") are debug lines,
 * not raw text on stderr. */
static void notice_to_log(void *arg, const char *message) {
    (void)arg;
    CT_LOG_DEBUG("pg", "notice: %s", message);
}

PGconn *ct_pg_connect(const ct_config *cfg, const char *dbname, ct_error *err) {
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->pg_port);
    const char *keys[8], *vals[8];
    int k = 0;
    if (cfg->pg_url[0]) {
        keys[k] = "dbname", vals[k++] = cfg->pg_url; /* expanded as a connection string */
    } else {
        keys[k] = "host", vals[k++] = "127.0.0.1";
        keys[k] = "port", vals[k++] = port;
        keys[k] = "user", vals[k++] = CT_PG_LOCAL_USER;
        keys[k] = "dbname", vals[k++] = CT_PG_LOCAL_DB;
    }
    if (dbname) keys[k] = "dbname", vals[k++] = dbname; /* a later dbname overrides */
    keys[k] = "application_name", vals[k++] = "concert";
    keys[k] = "connect_timeout", vals[k++] = "10";
    keys[k] = NULL, vals[k] = NULL;
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (!conn) {
        CT_ERR(err, CT_ERR_FATAL, "Postgres: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        CT_ERR(err, CT_ERR_RETRIABLE, "Postgres: cannot connect");
        ct_error_detail(err, "%s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, notice_to_log, NULL);
    return conn;
}

void ct_pg_result_error(PGconn *conn, PGresult *res, const char *what, ct_error *err) {
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    /* Class 08: connection; 40: transaction rollback (serialization, deadlock);
     * 57P: operator intervention (shutdown). All worth retrying. */
    int retriable = PQstatus(conn) != CONNECTION_OK || !state || strncmp(state, "08", 2) == 0 ||
                    strncmp(state, "40", 2) == 0 || strncmp(state, "57P", 3) == 0;
    CT_ERR(err, retriable ? CT_ERR_RETRIABLE : CT_ERR_PERMANENT, "Postgres: %s failed (sqlstate %s)", what,
           state ? state : "none");
    ct_error_detail(err, "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
    PQclear(res);
}

int ct_pg_check(PGconn *conn, PGresult *res, ExecStatusType want, const char *what, ct_error *err) {
    if (res && PQresultStatus(res) == want) return 0;
    ct_pg_result_error(conn, res, what, err);
    return -1;
}

int ct_pg_exec(PGconn *conn, const char *sql, ct_error *err) {
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        ct_pg_result_error(conn, res, "statement", err);
        return -1;
    }
    PQclear(res);
    return 0;
}

int ct_pg_prepare(PGconn *conn, const ct_pg_statement *stmts, size_t n, ct_error *err) {
    for (size_t i = 0; i < n; i++) {
        PGresult *res = PQprepare(conn, stmts[i].name, stmts[i].sql, 0, NULL);
        if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
            ct_pg_result_error(conn, res, stmts[i].name, err);
            return -1;
        }
        PQclear(res);
    }
    return 0;
}

static int database_ddl(const ct_config *cfg, const char *name, int create, ct_error *err) {
    PGconn *conn = ct_pg_connect(cfg, "postgres", err);
    if (!conn) return -1;
    int rc = -1;
    char *ident = NULL;
    const char *params[1] = {name};
    PGresult *res = PQexecParams(conn, "SELECT 1 FROM pg_database WHERE datname = $1", 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ct_pg_result_error(conn, res, "database lookup", err);
        goto cleanup;
    }
    int exists = PQntuples(res) > 0;
    PQclear(res);
    if (exists == create) {
        rc = 0;
        goto cleanup;
    }
    /* DDL takes no parameters: the identifier is escaped instead. */
    ident = PQescapeIdentifier(conn, name, strlen(name));
    if (!ident) {
        CT_ERR(err, CT_ERR_PERMANENT, "invalid database name");
        goto cleanup;
    }
    char sql[512];
    snprintf(sql, sizeof sql, create ? "CREATE DATABASE %s" : "DROP DATABASE %s WITH (FORCE)", ident);
    rc = ct_pg_exec(conn, sql, err);
cleanup:
    PQfreemem(ident);
    PQfinish(conn);
    return rc;
}

int ct_pg_create_database(const ct_config *cfg, const char *name, ct_error *err) {
    return database_ddl(cfg, name, 1, err);
}

int ct_pg_drop_database(const ct_config *cfg, const char *name, ct_error *err) {
    return database_ddl(cfg, name, 0, err);
}
