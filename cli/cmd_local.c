/* `concert kafka`, `concert pg`, `concert migrate`: local infrastructure. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "ct_kafka.h"
#include "ct_localkafka.h"
#include "ct_localpg.h"
#include "ct_log.h"
#include "ct_migrate.h"
#include "ct_pg.h"

static int ensure_remote_topics(const ct_config *cfg) {
    ct_error err = {0};
    rd_kafka_t *rk = ct_kafka_admin_new(cfg, "concert-admin", &err);
    if (!rk) return ct_cmd_fail("kafka", &err);
    int rc =
        ct_kafka_wait_brokers(rk, 1, cfg->kafka_timeout_ms, &err) == 0 ? ct_kafka_ensure_topics(rk, cfg, &err) : -1;
    rd_kafka_destroy(rk);
    if (rc != 0) return ct_cmd_fail("kafka topics", &err);
    printf("topics ensured on %s\n", cfg->kafka_brokers);
    return CT_EXIT_OK;
}

int ct_cmd_kafka(const ct_config *cfg, int argc, char **argv) {
    const char *verb = argc > 1 ? argv[1] : "";
    ct_error err = {0};
    bool external = cfg->kafka_brokers[0] != '\0';
    if (strcmp(verb, "start") == 0) {
        if (external) return ensure_remote_topics(cfg);
        if (ct_localkafka_start(cfg, &err) != 0) return ct_cmd_fail("kafka start", &err);
        char bootstrap[CT_CONFIG_URL_MAX];
        ct_kafka_bootstrap(cfg, bootstrap, sizeof bootstrap);
        printf("kafka: 3 brokers up at %s\n", bootstrap);
        return CT_EXIT_OK;
    }
    if (strcmp(verb, "stop") == 0) {
        if (external) {
            fprintf(stderr, "error: CONCERT_KAFKA_BROKERS is set: the cluster is not ours to stop\n");
            return CT_EXIT_USAGE;
        }
        return ct_localkafka_stop(cfg, &err) == 0 ? CT_EXIT_OK : ct_cmd_fail("kafka stop", &err);
    }
    if (strcmp(verb, "status") == 0) {
        int up = 0;
        if (!external) {
            for (int node = 1; node <= CT_LOCALKAFKA_NODES; node++) {
                pid_t pid = ct_localkafka_node_pid(cfg, node);
                printf("node %d: %s pid=%d port=%d\n", node, pid ? "running" : "stopped", (int)pid,
                       cfg->kafka_base_port + node - 1);
            }
        }
        rd_kafka_t *rk = ct_kafka_admin_new(cfg, "concert-status", &err);
        if (rk) {
            const struct rd_kafka_metadata *md = NULL;
            if (rd_kafka_metadata(rk, 0, NULL, &md, 3000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                up = md->broker_cnt;
                rd_kafka_metadata_destroy(md);
            }
            rd_kafka_destroy(rk);
        }
        printf("brokers answering metadata: %d\n", up);
        return up >= (external ? 1 : CT_LOCALKAFKA_NODES) ? CT_EXIT_OK : CT_EXIT_FAILURE;
    }
    fprintf(stderr, "usage: concert kafka start|stop|status\n");
    return CT_EXIT_USAGE;
}

int ct_cmd_pg(const ct_config *cfg, int argc, char **argv) {
    const char *verb = argc > 1 ? argv[1] : "";
    ct_error err = {0};
    bool external = cfg->pg_url[0] != '\0';
    if (strcmp(verb, "url") == 0) {
        if (external)
            printf("%s\n", cfg->pg_url); /* asked for explicitly: not a log line */
        else
            printf("postgresql://%s@127.0.0.1:%d/%s\n", CT_PG_LOCAL_USER, cfg->pg_port, CT_PG_LOCAL_DB);
        return CT_EXIT_OK;
    }
    if (external && strcmp(verb, "status") != 0) {
        fprintf(stderr, "error: CONCERT_PG_URL is set: the database is not ours to %s\n", verb);
        return CT_EXIT_USAGE;
    }
    if (strcmp(verb, "start") == 0) {
        if (ct_localpg_start(cfg, &err) != 0) return ct_cmd_fail("pg start", &err);
        printf("postgres: up at 127.0.0.1:%d\n", cfg->pg_port);
        return CT_EXIT_OK;
    }
    if (strcmp(verb, "stop") == 0) return ct_localpg_stop(cfg, &err) == 0 ? CT_EXIT_OK : ct_cmd_fail("pg stop", &err);
    if (strcmp(verb, "status") == 0) {
        PGconn *conn = ct_pg_connect(cfg, NULL, &err);
        if (!external) printf("postmaster pid=%d\n", (int)ct_localpg_pid(cfg));
        printf("database: %s\n", conn ? "reachable" : "unreachable");
        PQfinish(conn);
        return conn ? CT_EXIT_OK : CT_EXIT_FAILURE;
    }
    fprintf(stderr, "usage: concert pg start|stop|status|url\n");
    return CT_EXIT_USAGE;
}

int ct_cmd_migrate(const ct_config *cfg, int argc, char **argv) {
    ct_error err = {0};
    PGconn *conn = ct_pg_connect(cfg, NULL, &err);
    if (!conn) return ct_cmd_fail("migrate", &err);
    int applied = 0;
    int rc = ct_migrate_apply(conn, ct_migrations_embedded, ct_migrations_embedded_count, &applied, &err);
    PQfinish(conn);
    if (rc != 0) return ct_cmd_fail("migrate", &err);
    printf("migrations: %d applied, %zu known\n", applied, ct_migrations_embedded_count);
    return CT_EXIT_OK;
}
