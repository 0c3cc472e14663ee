/* ct_pg: see ct_pg.h. */
#include "ct_pg.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
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

/* ---- lazily prepared statements ------------------------------------------ */

/* The process's statements by address; a statement's name is its index. */
static pthread_mutex_t lazy_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *lazy_sql[CT_PG_LAZY_MAX];
static int lazy_n;

/* The index of sql, registered on first sight; -1 when the table is full. */
static int lazy_index(const char *sql) {
    pthread_mutex_lock(&lazy_mu);
    int i = 0;
    while (i < lazy_n && lazy_sql[i] != sql) i++;
    if (i == lazy_n) {
        if (lazy_n < CT_PG_LAZY_MAX)
            lazy_sql[lazy_n++] = sql;
        else
            i = -1;
    }
    pthread_mutex_unlock(&lazy_mu);
    return i;
}

/* What this thread prepared on the connection it last used: a thread uses
 * one connection at a time, so one entry suffices. */
static _Thread_local struct {
    PGconn *conn;
    bool custom; /* plan_cache_mode set on it */
    uint64_t prepared;
} lazy_tl;

static bool sqlstate_is(PGresult *res, const char *state) {
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return s && strcmp(s, state) == 0;
}

PGresult *ct_pg_exec_lazy(PGconn *conn, const char *sql, int n, const char *const *params) {
    _Static_assert(CT_PG_LAZY_MAX <= 64, "one bit a statement");
    int i = lazy_index(sql);
    if (i < 0) return PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (lazy_tl.conn != conn) lazy_tl.conn = conn, lazy_tl.custom = false, lazy_tl.prepared = 0;
    /* Plans stay per execution: after five runs Postgres may keep a generic
     * plan, and one made while a table was empty (a fresh system's first
     * seconds) kept scanning it whole as it grew, until an analyze: the
     * waiters' look-ups fell 30 s behind under a cold start's load. What
     * preparing saves is the parse. */
    if (!lazy_tl.custom) {
        PGresult *res = PQexec(conn, "SET plan_cache_mode = force_custom_plan");
        if (PQresultStatus(res) != PGRES_COMMAND_OK) return res;
        PQclear(res);
        lazy_tl.custom = true;
    }
    char name[32];
    snprintf(name, sizeof name, "ct_lazy_%d", i);
    uint64_t bit = UINT64_C(1) << i;
    for (int attempt = 0;; attempt++) {
        if (!(lazy_tl.prepared & bit)) {
            PGresult *res = PQprepare(conn, name, sql, 0, NULL);
            /* 42P05: prepared on this connection before the thread knew it
             * (another thread's turn on the same connection) */
            if (PQresultStatus(res) != PGRES_COMMAND_OK && !sqlstate_is(res, "42P05")) return res;
            PQclear(res);
            lazy_tl.prepared |= bit;
        }
        PGresult *res = PQexecPrepared(conn, name, n, params, NULL, NULL, 0);
        /* 26000: the connection does not have it (reset, or a new connection
         * at a closed one's address): prepare it again, once */
        if (attempt > 0 || !sqlstate_is(res, "26000")) return res;
        PQclear(res);
        lazy_tl.prepared &= ~bit;
        if (PQstatus(conn) == CONNECTION_OK) { /* a reset lost the session's setting too */
            res = PQexec(conn, "SET plan_cache_mode = force_custom_plan");
            bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
            if (!ok) return res;
            PQclear(res);
        }
    }
}
