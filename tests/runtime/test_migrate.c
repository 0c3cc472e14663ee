/* Migrations against the real Postgres (the local cluster scripts/test
 * starts, or CONCERT_PG_URL): applied once, in order, idempotent, edits of
 * applied migrations refused, concurrent migrators safe. Each test works in
 * a database of its own, dropped afterwards. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ct_config.h"
#include "ct_migrate.h"
#include "ct_pg.h"

static ct_config cfg;
static char dbname[64];

static void setup(void) {
    ct_error err = {0};
    cr_assert_eq(ct_config_load_env(&cfg, &err), 0, "%s", err.msg);
    snprintf(dbname, sizeof dbname, "ct_test_migrate_%d", (int)getpid());
    cr_assert_eq(ct_pg_create_database(&cfg, dbname, &err), 0, "%s %s (is Postgres running? use scripts/test)", err.msg,
                 err.detail);
}

static void teardown(void) {
    ct_error err = {0};
    ct_pg_drop_database(&cfg, dbname, &err);
}

static PGconn *connect_test_db(void) {
    ct_error err = {0};
    PGconn *c = ct_pg_connect(&cfg, dbname, &err);
    cr_assert_not_null(c, "%s %s", err.msg, err.detail);
    return c;
}

static long count(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static const ct_migration three[] = {
    {1, "a", "CREATE TABLE a(id int PRIMARY KEY)"},
    {2, "b", "CREATE TABLE b(id int PRIMARY KEY); INSERT INTO a VALUES (1)"},
    {5, "c", "CREATE TABLE c(id int PRIMARY KEY)"},
};

Test(migrate, applies_each_once_in_order_and_rerun_is_a_noop, .init = setup, .fini = teardown) {
    PGconn *c = connect_test_db();
    ct_error err = {0};
    int applied = -1;
    cr_assert_eq(ct_migrate_apply(c, three, 3, &applied, &err), 0, "%s %s", err.msg, err.detail);
    cr_assert_eq(applied, 3);
    cr_assert_eq(count(c, "SELECT count(*) FROM schema_migrations"), 3);
    PGresult *r =
        PQexec(c, "SELECT string_agg(version::text, ',' ORDER BY applied_at, version) FROM schema_migrations");
    cr_assert_str_eq(PQgetvalue(r, 0, 0), "1,2,5", "applied in version order");
    PQclear(r);
    cr_assert_eq(ct_migrate_apply(c, three, 3, &applied, &err), 0, "%s", err.msg);
    cr_assert_eq(applied, 0, "second run applies nothing");
    cr_assert_eq(count(c, "SELECT count(*) FROM a"), 1, "migration 2 ran exactly once");
    PQfinish(c);
}

Test(migrate, applies_only_the_new_ones, .init = setup, .fini = teardown) {
    PGconn *c = connect_test_db();
    ct_error err = {0};
    int applied = 0;
    cr_assert_eq(ct_migrate_apply(c, three, 2, &applied, &err), 0, "%s", err.msg);
    cr_assert_eq(applied, 2);
    cr_assert_eq(ct_migrate_apply(c, three, 3, &applied, &err), 0, "%s", err.msg);
    cr_assert_eq(applied, 1);
    cr_assert_eq(count(c, "SELECT max(version) FROM schema_migrations"), 5);
    PQfinish(c);
}

Test(migrate, refuses_an_edited_applied_migration, .init = setup, .fini = teardown) {
    PGconn *c = connect_test_db();
    ct_error err = {0};
    cr_assert_eq(ct_migrate_apply(c, three, 3, NULL, &err), 0, "%s", err.msg);
    ct_migration edited[3] = {three[0], three[1], three[2]};
    edited[1].sql = "CREATE TABLE b(id bigint PRIMARY KEY)";
    cr_assert_eq(ct_migrate_apply(c, edited, 3, NULL, &err), -1);
    cr_assert_eq(err.klass, CT_ERR_FATAL);
    cr_assert(strstr(err.msg, "0002_b") && strstr(err.msg, "changed"), "%s", err.msg);
    PQfinish(c);
}

Test(migrate, failing_migration_is_not_recorded_and_stops, .init = setup, .fini = teardown) {
    PGconn *c = connect_test_db();
    ct_error err = {0};
    const ct_migration bad[] = {
        three[0], {2, "broken", "CREATE TABLE a(id int)"}, {3, "later", "CREATE TABLE z(i int)"}};
    cr_assert_eq(ct_migrate_apply(c, bad, 3, NULL, &err), -1);
    cr_assert(strstr(err.msg, "0002_broken failed"), "%s", err.msg);
    cr_assert(strstr(err.detail, "already exists"), "detail carries the server's message: %s", err.detail);
    cr_assert_eq(count(c, "SELECT count(*) FROM schema_migrations"), 1, "only the first is recorded");
    cr_assert_eq(count(c, "SELECT count(*) FROM pg_tables WHERE tablename = 'z'"), 0, "nothing after the failure");
    PQfinish(c);
}

Test(migrate, out_of_order_list_is_refused, .init = setup, .fini = teardown) {
    PGconn *c = connect_test_db();
    ct_error err = {0};
    const ct_migration bad[] = {three[1], three[0]};
    cr_assert_eq(ct_migrate_apply(c, bad, 2, NULL, &err), -1);
    cr_assert(strstr(err.msg, "out of order"), "%s", err.msg);
    PQfinish(c);
}

static void *migrate_thread(void *arg) {
    int *applied = arg;
    ct_error err = {0};
    PGconn *c = ct_pg_connect(&cfg, dbname, &err);
    if (!c || ct_migrate_apply(c, three, 3, applied, &err) != 0) *applied = -100;
    PQfinish(c);
    return NULL;
}

Test(migrate, concurrent_migrators_apply_each_migration_once, .init = setup, .fini = teardown) {
    PGconn *c = connect_test_db();
    ct_error err = {0};
    /* Create the bookkeeping table first, as a real first deploy would. */
    cr_assert_eq(ct_migrate_apply(c, three, 0, NULL, &err), 0, "%s", err.msg);
    int a = 0, b = 0;
    pthread_t ta, tb;
    pthread_create(&ta, NULL, migrate_thread, &a);
    pthread_create(&tb, NULL, migrate_thread, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert(a >= 0 && b >= 0, "both succeed (a=%d b=%d)", a, b);
    cr_assert_eq(a + b, 3, "each migration applied by exactly one of them (a=%d b=%d)", a, b);
    cr_assert_eq(count(c, "SELECT count(*) FROM a"), 1);
    PQfinish(c);
}

Test(migrate, project_migrations_apply_cleanly_and_idempotently, .init = setup, .fini = teardown) {
    PGconn *c = connect_test_db();
    ct_error err = {0};
    int applied = 0;
    cr_assert_gt(ct_migrations_embedded_count, 0);
    cr_assert_eq(ct_migrate_apply(c, ct_migrations_embedded, ct_migrations_embedded_count, &applied, &err), 0, "%s %s",
                 err.msg, err.detail);
    cr_assert_eq(applied, (int)ct_migrations_embedded_count);
    cr_assert_eq(ct_migrate_apply(c, ct_migrations_embedded, ct_migrations_embedded_count, &applied, &err), 0);
    cr_assert_eq(applied, 0);
    cr_assert_eq(count(c, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'outbox' "
                          "AND column_name IN ('command_id','status','attempts','next_attempt_at','kafka_offset')"),
                 5);
    PQfinish(c);
}
