/* ct_pg_exec_lazy against the real Postgres (the local cluster
 * scripts/test starts, or CONCERT_PG_URL): each SQL runs as a statement
 * prepared on its connection, different SQL never shares one, and a
 * connection that lost its statements (DEALLOCATE, reset) or that another
 * thread prepared already still answers, and every run gets a plan of its
 * own (a generic plan kept from an empty table scanned it whole as it
 * grew). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_config.h"
#include "ct_pg.h"

static ct_config cfg;
static PGconn *conn;

static void setup(void) {
    ct_error err = {0};
    cr_assert_eq(ct_config_load_env(&cfg, &err), 0, "%s", err.msg);
    conn = ct_pg_connect(&cfg, NULL, &err);
    cr_assert_not_null(conn, "%s %s (is Postgres running? use scripts/test)", err.msg, err.detail);
}

static void teardown(void) { PQfinish(conn); }

static const char twice_sql[] = "SELECT $1::int * 2";
static const char thrice_sql[] = "SELECT $1::int * 3";

/* The one row's one value of sql run lazily with parameter v. */
static long run(PGconn *c, const char *sql, const char *v) {
    const char *p[1] = {v};
    PGresult *r = ct_pg_exec_lazy(c, sql, 1, p);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    long x = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return x;
}

static long prepared_here(const char *sql) {
    const char *p[1] = {sql};
    PGresult *r = PQexecParams(conn, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", 1, NULL, p,
                               NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

Test(pg_lazy, each_sql_is_prepared_once_and_answers_its_own, .init = setup, .fini = teardown) {
    cr_expect_eq(run(conn, twice_sql, "21"), 42);
    cr_expect_eq(run(conn, thrice_sql, "5"), 15);
    cr_expect_eq(run(conn, twice_sql, "4"), 8);
    cr_expect_eq(prepared_here(twice_sql), 1, "prepared, and only once");
    cr_expect_eq(prepared_here(thrice_sql), 1);
}

Test(pg_lazy, a_connection_that_lost_its_statements_prepares_them_again, .init = setup, .fini = teardown) {
    cr_expect_eq(run(conn, twice_sql, "1"), 2);
    PQclear(PQexec(conn, "DEALLOCATE ALL"));
    cr_expect_eq(prepared_here(twice_sql), 0);
    cr_expect_eq(run(conn, twice_sql, "2"), 4, "the missing statement is prepared again");
    PQreset(conn);
    cr_assert_eq(PQstatus(conn), CONNECTION_OK);
    cr_expect_eq(run(conn, twice_sql, "3"), 6, "after a reset too");
}

static void *other_thread(void *arg) {
    (void)arg;
    return (void *)run(conn, twice_sql, "50");
}

Test(pg_lazy, another_thread_on_the_same_connection_uses_its_statement, .init = setup, .fini = teardown) {
    cr_expect_eq(run(conn, twice_sql, "7"), 14);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
    void *got = NULL;
    pthread_join(t, &got);
    cr_expect_eq((long)got, 100, "a thread that did not prepare it finds it prepared");
    cr_expect_eq(prepared_here(twice_sql), 1);
}

/* The statement's plans so far, of the kind `which` (generic_plans or
 * custom_plans). */
static long plans(const char *which, const char *sql) {
    char q[160];
    snprintf(q, sizeof q, "SELECT %s FROM pg_prepared_statements WHERE statement = $1", which);
    const char *p[1] = {sql};
    PGresult *r = PQexecParams(conn, q, 1, NULL, p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    cr_assert_eq(PQntuples(r), 1, "not prepared");
    long n = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

Test(pg_lazy, every_run_is_planned_for_the_tables_as_they_are, .init = setup, .fini = teardown) {
    for (int i = 0; i < 8; i++) cr_expect_eq(run(conn, thrice_sql, "1"), 3);
    cr_expect_eq(plans("generic_plans", thrice_sql), 0, "a generic plan outlives the table it was made for");
    cr_expect_eq(plans("custom_plans", thrice_sql), 8);
    PQreset(conn);
    cr_assert_eq(PQstatus(conn), CONNECTION_OK);
    for (int i = 0; i < 8; i++) cr_expect_eq(run(conn, thrice_sql, "2"), 6);
    cr_expect_eq(plans("generic_plans", thrice_sql), 0, "after a reset as well");
}
