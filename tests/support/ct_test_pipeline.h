/* Tests that run the whole pipeline (`concert up`) on the test cluster
 * with a fresh database of their own, driven over HTTP: tests/e2e and
 * tests/chaos. Header-only.
 *
 *   ct_test_pipeline_prepare   run id and directory, the test cluster's
 *                              brokers by address, a fresh migrated
 *                              database whose projector starts at the
 *                              topics' current ends, the invariants' scope
 *                              (this run's users, the concerts its outbox
 *                              created), admin key, projector group, ticks
 *   ct_test_pipeline_start     `concert up`, once /readyz answers
 *   ct_test_pipeline_finish    stop it cleanly, drop the database, remove
 *                              the directory */
#ifndef CT_TEST_PIPELINE_H
#define CT_TEST_PIPELINE_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_test_http.h"
#include "ct_test_invariants.h"
#include "ct_test_kafka.h"
#include "ct_test_pg.h"
#include "ct_test_projector.h"

/* The run's concerts: those its outbox created. */
#define CT_TEST_PIPELINE_CONCERTS_SQL                                                                   \
    "SELECT c.result->>'concert_id' FROM commands c JOIN outbox o ON o.command_id::text = c.command_id" \
    " WHERE c.type = 'ConcertCreated'"

typedef struct ct_test_pipeline {
    ct_config cfg;
    char run[32], dir[256], dbname[64], base[64], log_path[320];
    PGconn *db;
    pid_t up;
    ct_test_inv inv;
} ct_test_pipeline;

static inline void ct_test_pipeline_prepare(ct_test_pipeline *pl, const char *what, const char *admin_key) {
    ct_test_setup_run(&pl->cfg, what, pl->run, sizeof pl->run, pl->dir, sizeof pl->dir);
    /* The test cluster by address: the run directory has no local one. */
    char brokers[CT_CONFIG_URL_MAX];
    ct_kafka_bootstrap(&pl->cfg, brokers, sizeof brokers);
    setenv("CONCERT_KAFKA_BROKERS", brokers, 1);
    snprintf(pl->dbname, sizeof pl->dbname, "ct_test_%s_%s", what, pl->run);
    pl->db = ct_test_pg_database(&pl->cfg, pl->dbname);
    ct_test_projector_start_at_ends(&pl->cfg, pl->db);
    ct_test_inv_init(&pl->inv, &pl->cfg, pl->db, pl->run, CT_TEST_PIPELINE_CONCERTS_SQL, true);
    setenv("CONCERT_ADMIN_KEY", admin_key, 1);
    char group[96];
    snprintf(group, sizeof group, "ct-test-%s-%s", what, pl->run);
    setenv("CONCERT_PROJECTOR_GROUP", group, 1);
    /* Deadlines (hold and token expiry) advance with ticks. */
    setenv("CONCERT_TICK_MS", "200", 1);
    snprintf(pl->log_path, sizeof pl->log_path, "%s/up.log", pl->dir);
}

static inline void ct_test_pipeline_start(ct_test_pipeline *pl) {
    pl->up = ct_test_spawn_http("up", "/readyz", 120000, pl->base, sizeof pl->base, pl->log_path);
}

/* One request to the pipeline's ingress (as ct_http_do makes it), which
 * must answer `want`; its JSON answer (NULL when not JSON). With
 * exchanges_path, the exchange is also appended there as one JSON line
 * for schemas/openapi_check.py. */
static inline json_t *ct_test_pipeline_call(const ct_test_pipeline *pl, const char *method, const char *path,
                                            const char *const *h, const char *body, long want,
                                            const char *exchanges_path) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", pl->base, path);
    CURL *c = curl_easy_init();
    ct_http_resp r;
    long st = ct_http_do(c, method, url, h, body, &r);
    curl_easy_cleanup(c);
    cr_assert_eq(st, want, "%s %s: %ld %s", method, path, st, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    ct_http_free(&r);
    if (exchanges_path) {
        char bare[512];
        snprintf(bare, sizeof bare, "%s", path);
        bare[strcspn(bare, "?")] = 0;
        json_t *ex =
            json_pack("{s:s, s:s, s:I, s:O?}", "method", method, "path", bare, "status", (json_int_t)st, "body", j);
        char *line = json_dumps(ex, JSON_COMPACT);
        FILE *f = fopen(exchanges_path, "a");
        if (f && line) fprintf(f, "%s\n", line);
        if (f) fclose(f);
        free(line);
        json_decref(ex);
    }
    return j;
}

static inline void ct_test_pipeline_finish(ct_test_pipeline *pl) {
    ct_test_inv_fini(&pl->inv);
    if (pl->up > 0) ct_test_stop_clean(pl->up, "concert up", pl->log_path);
    pl->up = 0;
    ct_test_pg_drop(pl->db, &pl->cfg, pl->dbname);
    ct_test_cleanup_run(pl->dir);
}

#endif
