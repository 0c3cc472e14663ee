/* Tests that run `concert projector` on the test cluster. Header-only. */
#ifndef CT_TEST_PROJECTOR_H
#define CT_TEST_PROJECTOR_H

#include <criterion/criterion.h>
#include <unistd.h>
#include <libpq-fe.h>
#include <stdio.h>

#include "ct_config.h"
#include "ct_kafka.h"
#include "ct_migrate.h"
#include "ct_pg.h"
#include "ct_proc.h"
#include "ct_test_kafka.h"

/* The test cluster's topics hold what earlier tests wrote: a projector on
 * the fresh database `db` starts at their current ends, as a fresh
 * system's would on fresh topics, so its read models hold the run's events
 * only. Returns the sum of the events topics' end offsets. */
static inline int64_t ct_test_projector_start_at_ends(const ct_config *cfg, PGconn *db) {
    static const char *const topics[] = {CT_TOPIC_CONCERT_EVENTS, CT_TOPIC_WALLET_EVENTS,
                                         CT_TOPIC_CONCERT_COMMANDS ".dlq", CT_TOPIC_WALLET_COMMANDS ".dlq"};
    ct_error err = {0};
    rd_kafka_t *rk = ct_kafka_admin_new(cfg, "ct-test-projector", &err);
    cr_assert(rk, "%s", err.msg);
    int64_t sum = 0;
    for (size_t t = 0; t < sizeof topics / sizeof topics[0]; t++) {
        for (int p = 0; p < cfg->kafka_partitions; p++) {
            int64_t lo = 0, hi = 0;
            /* A broker restarted by an earlier test may still be handing
             * leadership back ("not leader"): ask again for a while. */
            rd_kafka_resp_err_t e;
            for (int attempt = 0;; attempt++) {
                e = rd_kafka_query_watermark_offsets(rk, topics[t], p, &lo, &hi, 10000);
                if (e == 0 || attempt >= 30) break;
                usleep(500 * 1000);
            }
            cr_assert_eq(e, 0, "watermarks of %s[%d]: %s", topics[t], p, rd_kafka_err2str(e));
            char sql[256];
            snprintf(sql, sizeof sql,
                     "INSERT INTO projector_offsets (topic, partition, next_offset) VALUES ('%s', %d, %lld)", topics[t],
                     p, (long long)hi);
            PGresult *r = PQexec(db, sql);
            cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQerrorMessage(db));
            PQclear(r);
            if (t < 2) sum += hi;
        }
    }
    rd_kafka_destroy(rk);
    return sum;
}

/* Creates and migrates database `name` on db's server and gives it db's
 * projector offsets, so that `concert replay read-models --into name`
 * starts where db's projector started (ct_test_projector_start_at_ends):
 * call it before db's projector has applied anything. */
static inline void ct_test_projector_replay_db(const ct_config *cfg, PGconn *db, const char *name) {
    ct_error err = {0};
    cr_assert_eq(ct_pg_create_database(cfg, name, &err), 0, "%s", err.msg);
    PGconn *rb = ct_pg_connect(cfg, name, &err);
    cr_assert_not_null(rb, "%s", err.msg);
    cr_assert_eq(ct_migrate_apply(rb, ct_migrations_embedded, ct_migrations_embedded_count, NULL, &err), 0, "%s",
                 err.msg);
    PGresult *r = PQexec(db, "SELECT topic, partition, next_offset FROM projector_offsets");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(db));
    for (int i = 0; i < PQntuples(r); i++) {
        const char *v[3] = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2)};
        PGresult *w = PQexecParams(rb,
                                   "INSERT INTO projector_offsets (topic, partition, next_offset)"
                                   " VALUES ($1, $2::int, $3::bigint)",
                                   3, NULL, v, NULL, NULL, 0);
        cr_assert_eq(PQresultStatus(w), PGRES_COMMAND_OK, "%s", PQerrorMessage(rb));
        PQclear(w);
    }
    PQclear(r);
    PQfinish(rb);
}

/* Runs `concert replay read-models --into name --compare` on the database
 * CONCERT_PG_URL names, its output in log_path; returns its exit code. */
static inline int ct_test_replay_compare(const char *name, const char *log_path) {
    const char *argv[] = {CT_CONCERT_BIN, "replay", "read-models", "--into", name, "--compare", NULL};
    return ct_test_run(argv, log_path, 600000);
}

/* `concert projector --instance instance` in consumer group `group`, on the
 * database CONCERT_PG_URL names, its output in log_path. */
static inline pid_t ct_test_projector_spawn(const char *group, const char *instance, const char *log_path) {
    setenv("CONCERT_PROJECTOR_GROUP", group, 1);
    const char *argv[] = {CT_CONCERT_BIN, "projector", "--instance", instance, NULL};
    return ct_test_spawn(argv, log_path);
}

#endif
