/* Tests that need the real Postgres: a database of the test's own, with
 * the project's migrations applied, and CONCERT_PG_URL pointing at it so
 * the `concert` children the test starts use it too. Header-only. */
#ifndef CT_TEST_PG_H
#define CT_TEST_PG_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "ct_config.h"
#include "ct_migrate.h"
#include "ct_pg.h"

/* Creates and migrates database `name`, exports CONCERT_PG_URL for it, and
 * returns a connection to it. cfg must be loaded before (it is reloaded so
 * its pg_url names the new database). */
static inline PGconn *ct_test_pg_database(ct_config *cfg, const char *name) {
    ct_error err = {0};
    cr_assert_eq(ct_pg_create_database(cfg, name, &err), 0, "%s %s (is Postgres running? use scripts/test)", err.msg,
                 err.detail);
    PGconn *c = ct_pg_connect(cfg, name, &err);
    cr_assert_not_null(c, "%s %s", err.msg, err.detail);
    int applied = 0;
    cr_assert_eq(ct_migrate_apply(c, ct_migrations_embedded, ct_migrations_embedded_count, &applied, &err), 0, "%s %s",
                 err.msg, err.detail);
    char url[1024];
    const char *pass = PQpass(c);
    snprintf(url, sizeof url, "host=%s port=%s user=%s dbname=%s%s%s", PQhost(c), PQport(c), PQuser(c), PQdb(c),
             pass && pass[0] ? " password=" : "", pass && pass[0] ? pass : "");
    setenv("CONCERT_PG_URL", url, 1);
    cr_assert_eq(ct_config_load_env(cfg, &err), 0, "%s", err.msg);
    return c;
}

/* Closes db (may be NULL) and drops database `name`. */
static inline void ct_test_pg_drop(PGconn *db, const ct_config *cfg, const char *name) {
    if (db) PQfinish(db);
    ct_error err = {0};
    ct_pg_drop_database(cfg, name, &err);
}

/* Runs sql (a command or a query whose rows are dropped); fails the test
 * when it fails. */
static inline void ct_test_pg_exec(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK, "%s: %s", sql,
              PQresultErrorMessage(r));
    PQclear(r);
}

static inline long ct_test_pg_count(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

#endif
