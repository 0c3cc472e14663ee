/*
 * ct_pg: libpq connections made from the configuration.
 *
 * With CONCERT_PG_URL set, that database is used as it is; otherwise the
 * local cluster (local/ct_localpg) on 127.0.0.1:CONCERT_PG_PORT, user and
 * database `concert`. The caller owns the PGconn (PQfinish).
 */
#ifndef CT_PG_H
#define CT_PG_H

#include <libpq-fe.h>

#include "ct_config.h"
#include "ct_error.h"

#define CT_PG_LOCAL_USER "concert"
#define CT_PG_LOCAL_DB "concert"

/* SQL: a timestamptz column as RFC 3339 in UTC with milliseconds
 * ("2026-12-06T17:04:47.546Z"), as the API shows times. */
#define CT_PG_ISO_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* Connects to the configured database, or to `dbname` on the same server
 * when dbname is not NULL. */
PGconn *ct_pg_connect(const ct_config *cfg, const char *dbname, ct_error *err);

/* Runs one statement that returns no rows (or whose rows are ignored). */
int ct_pg_exec(PGconn *conn, const char *sql, ct_error *err);

/* A statement prepared once per connection: a hot path that runs the same
 * SQL on every batch skips the server's parse and plan each time. */
typedef struct ct_pg_statement {
    const char *name;
    const char *sql;
} ct_pg_statement;

/* Prepares each of stmts[0..n) on conn (parameter types come from the
 * SQL's casts). */
int ct_pg_prepare(PGconn *conn, const ct_pg_statement *stmts, size_t n, ct_error *err);

/* 0 when res has status want (res stays the caller's to clear), else -1
 * with err (res cleared, as by ct_pg_result_error). */
int ct_pg_check(PGconn *conn, PGresult *res, ExecStatusType want, const char *what, ct_error *err);

/* Turns a failed result into err (retriable for connection and
 * serialization failures, permanent otherwise) and clears it. */
void ct_pg_result_error(PGconn *conn, PGresult *res, const char *what, ct_error *err);

/* Creates database `name` when it does not exist (connects to `postgres`). */
int ct_pg_create_database(const ct_config *cfg, const char *name, ct_error *err);
int ct_pg_drop_database(const ct_config *cfg, const char *name, ct_error *err);

#endif
