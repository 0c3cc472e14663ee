/*
 * `concert up`: the whole pipeline on one machine, in the foreground.
 *
 * 1. infrastructure, unless configured elsewhere: the local Postgres and the
 *    three local Kafka brokers, as supervised children (tier 0). A local
 *    cluster that is already running (started by `concert kafka start` or
 *    `concert pg start`) is used as it is and left running at exit;
 * 2. waits until Postgres accepts connections and all brokers answer, then
 *    applies migrations and ensures the topics;
 * 3. the pipeline components as supervised children (tier 1);
 * 4. prints `ready: http://<host>:<port>` on stdout once /readyz answers
 *    200 (host: CONCERT_HTTP_ADDR, or loopback when that is every address,
 *    127.0.0.1 by default), then supervises until SIGINT/SIGTERM and stops
 *    everything.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "commands.h"
#include "ct_alert.h"
#include "ct_auth.h"
#include "ct_kafka.h"
#include "ct_localkafka.h"
#include "ct_localpg.h"
#include "ct_log.h"
#include "ct_migrate.h"
#include "ct_pg.h"
#include "ct_proc.h"
#include "ct_signal.h"
#include "ct_supervisor.h"

#define INFRA_STOP_GRACE_MS (30 * 1000)
#define COMPONENT_STOP_GRACE_MS (10 * 1000)

/* The address a client on this machine reaches the ingress at: its own
 * listen address, or loopback when it listens on every address. */
static const char *probe_host(const ct_config *cfg) {
    if (strcmp(cfg->http_addr, "0.0.0.0") == 0) return "127.0.0.1";
    if (strcmp(cfg->http_addr, "::") == 0) return "::1";
    return cfg->http_addr;
}

/* Status code of GET path on the ingress, or -1 when nothing answers. */
static int http_status(const ct_config *cfg, const char *path) {
    const char *host = probe_host(cfg);
    char port[8];
    snprintf(port, sizeof port, "%d", cfg->http_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai) return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return -1;
    }
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int status = -1;
    char req[256], resp[64];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 && write(fd, req, (size_t)n) == n) {
        ssize_t r = read(fd, resp, sizeof resp - 1);
        if (r > 12) {
            resp[r] = '\0';
            if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) status = -1;
        }
    }
    close(fd);
    freeaddrinfo(ai);
    return status;
}

static int add_child(ct_supervisor *sup, const char *name, char **argv, const char *user, int sig, int grace,
                     int tier) {
    ct_error err = {0};
    ct_child_spec spec = {.name = name,
                          .argv = (const char *const *)argv,
                          .run_as_user = user,
                          .stop_signal = sig,
                          .stop_timeout_ms = grace,
                          .tier = tier};
    if (ct_supervisor_add(sup, &spec, &err) != 0) return ct_cmd_fail(name, &err);
    return 0;
}

static int start_infrastructure(const ct_config *cfg, ct_supervisor *sup) {
    ct_error err = {0};
    if (!cfg->pg_url[0]) {
        if (ct_localpg_pid(cfg)) {
            CT_LOG_INFO("up", "using the local Postgres already running pid=%d", (int)ct_localpg_pid(cfg));
        } else {
            char **argv = NULL;
            if (ct_localpg_prepare(cfg, &err) != 0 || ct_localpg_server_argv(cfg, &argv, &err) != 0)
                return ct_cmd_fail("postgres", &err);
            /* SIGINT is Postgres's fast shutdown: roll back clients, checkpoint, exit. */
            int rc = add_child(sup, "postgres", argv, ct_localpg_user(), SIGINT, INFRA_STOP_GRACE_MS, 0);
            ct_localpg_argv_free(argv);
            if (rc) return rc;
        }
    }
    if (!cfg->kafka_brokers[0]) {
        int running = ct_localkafka_running(cfg);
        if (running == CT_LOCALKAFKA_NODES) {
            CT_LOG_INFO("up", "using the local Kafka cluster already running");
        } else if (running > 0) {
            fprintf(stderr,
                    "error: the local Kafka cluster is partly running (%d of %d); run `concert kafka stop` "
                    "or `concert kafka start` first\n",
                    running, CT_LOCALKAFKA_NODES);
            return CT_EXIT_FAILURE;
        } else {
            if (ct_localkafka_prepare(cfg, &err) != 0) return ct_cmd_fail("kafka", &err);
            for (int node = 1; node <= CT_LOCALKAFKA_NODES; node++) {
                char **argv = NULL, name[16];
                snprintf(name, sizeof name, "kafka-%d", node);
                if (ct_localkafka_node_argv(cfg, node, &argv, &err) != 0) return ct_cmd_fail(name, &err);
                int rc = add_child(sup, name, argv, NULL, SIGTERM, INFRA_STOP_GRACE_MS, 0);
                ct_localkafka_argv_free(argv);
                if (rc) return rc;
            }
        }
    }
    return 0;
}

/* Supervises while waiting for Postgres and Kafka; then migrations and topics. */
static int wait_infrastructure(const ct_config *cfg, ct_supervisor *sup, int64_t deadline) {
    ct_error err = {0};
    rd_kafka_t *rk = ct_kafka_admin_new(cfg, "concert-up", &err);
    if (!rk) return ct_cmd_fail("kafka", &err);
    int brokers_min = cfg->kafka_brokers[0] ? 1 : CT_LOCALKAFKA_NODES;
    bool pg_ready = false, kafka_ready = false, topics_ready = false;
    int rc = CT_EXIT_FAILURE;
    while (!ct_signal_stop_requested()) {
        if (ct_clock_mono_ms() >= deadline) {
            fprintf(stderr, "error: not ready within %d ms (postgres=%s kafka=%s topics=%s): %s %s\n",
                    cfg->up_ready_timeout_ms, pg_ready ? "ok" : "waiting", kafka_ready ? "ok" : "waiting",
                    topics_ready ? "ok" : "waiting", err.msg, err.detail);
            goto done;
        }
        if (!pg_ready) {
            PGconn *conn = NULL;
            pg_ready = (cfg->pg_url[0] ? 0 : ct_localpg_wait_ready(cfg, 0, &err)) == 0 &&
                       (conn = ct_pg_connect(cfg, NULL, &err)) != NULL;
            if (pg_ready) {
                int applied = 0;
                if (ct_migrate_apply(conn, ct_migrations_embedded, ct_migrations_embedded_count, &applied, &err)) {
                    PQfinish(conn);
                    rc = ct_cmd_fail("migrate", &err);
                    goto done;
                }
                CT_LOG_INFO("up", "postgres ready migrations_applied=%d", applied);
            }
            PQfinish(conn);
        }
        if (!kafka_ready) kafka_ready = ct_kafka_wait_brokers(rk, brokers_min, 500, &err) == 0;
        if (kafka_ready && !topics_ready) {
            topics_ready = ct_kafka_ensure_topics(rk, cfg, &err) == 0;
            if (!topics_ready && err.klass != CT_ERR_RETRIABLE) {
                rc = ct_cmd_fail("kafka topics", &err);
                goto done;
            }
            if (topics_ready) CT_LOG_INFO("up", "kafka ready brokers>=%d topics ensured", brokers_min);
        }
        if (pg_ready && topics_ready) {
            rc = 0;
            goto done;
        }
        ct_supervisor_poll(sup, 250);
    }
    rc = 0; /* asked to stop while waiting: not a failure */
done:
    rd_kafka_destroy(rk);
    return rc;
}

/* A crash loop becomes a Slack row (delivered by the projector's sender).
 * When the database itself is what keeps crashing the row cannot be
 * written: the log line the supervisor wrote stays the record. */
static void crashloop_alert(const char *name, int restarts, const char *last_exit, void *ctx) {
    const ct_config *cfg = ctx;
    ct_error err = {0};
    PGconn *pg = ct_pg_connect(cfg, NULL, &err);
    if (!pg) {
        CT_LOG_WARN("up", "crash-loop alert not stored component=%s: %s", name, err.msg);
        return;
    }
    char host[128] = "?", text[512];
    gethostname(host, sizeof host - 1);
    snprintf(text, sizeof text,
             "Component %s of concert up on %s is crash-looping: %d restarts within %d s (last: %s). See its log"
             " lines (prefixed with its name).",
             name, host, restarts, CT_SUPERVISOR_CRASHLOOP_WINDOW_MS / 1000, last_exit);
    if (ct_alert_enqueue(pg, "crash_loop", text, NULL, &err) != 0)
        CT_LOG_WARN("up", "crash-loop alert not stored component=%s: %s", name, err.msg);
    PQfinish(pg);
}

int ct_cmd_up(const ct_config *cfg, int argc, char **argv) {
    ct_error err = {0};
    if (cfg->http_port == 0) {
        fprintf(stderr, "error: CONCERT_HTTP_PORT: concert up needs a fixed port\n");
        return CT_EXIT_USAGE;
    }
    if (ct_signal_install(&err) != 0) return ct_cmd_fail("up", &err);
    char self[CT_CONFIG_PATH_MAX];
    if (ct_proc_self_exe(self, sizeof self, &err) != 0) return ct_cmd_fail("up", &err);
    ct_supervisor *sup = ct_supervisor_new(cfg->up_restart_backoff_max_ms, &err);
    if (!sup) return ct_cmd_fail("up", &err);
    ct_supervisor_on_crashloop(sup, crashloop_alert, (void *)cfg);
    int64_t deadline = ct_clock_mono_ms() + cfg->up_ready_timeout_ms;
    /* Users' tokens need a key: without CONCERT_AUTH_KEY, one of 256 random
     * bits under the data directory, which the ingress and `concert auth
     * token` find there. */
    char auth_key[CT_AUTH_KEY_BYTES_MAX];
    if (ct_auth_key_load(cfg, true, auth_key, &err) < 0) {
        ct_supervisor_destroy(sup);
        return ct_cmd_fail("up", &err);
    }
    int rc = start_infrastructure(cfg, sup);
    if (rc == 0) rc = wait_infrastructure(cfg, sup, deadline);
    if (rc == 0 && !ct_signal_stop_requested()) {
        char *ingress[] = {self, "ingress", NULL};
        char *concert[] = {self, "processor", "--role", "concert", NULL};
        char *wallet[] = {self, "processor", "--role", "wallet", NULL};
        char *relay[] = {self, "relay", NULL};
        char *projector[] = {self, "projector", NULL};
        rc = add_child(sup, "ingress", ingress, NULL, SIGTERM, COMPONENT_STOP_GRACE_MS, 1);
        if (rc == 0) rc = add_child(sup, "relay", relay, NULL, SIGTERM, COMPONENT_STOP_GRACE_MS, 1);
        if (rc == 0) rc = add_child(sup, "p-concert", concert, NULL, SIGTERM, COMPONENT_STOP_GRACE_MS, 1);
        if (rc == 0) rc = add_child(sup, "p-wallet", wallet, NULL, SIGTERM, COMPONENT_STOP_GRACE_MS, 1);
        if (rc == 0) rc = add_child(sup, "projector", projector, NULL, SIGTERM, COMPONENT_STOP_GRACE_MS, 1);
    }
    bool ready = false;
    while (rc == 0 && !ct_signal_stop_requested()) {
        if (!ready && http_status(cfg, "/readyz") == 200) {
            ready = true;
            const char *host = probe_host(cfg);
            bool v6 = strchr(host, ':') != NULL;
            printf("ready: http://%s%s%s:%d\n", v6 ? "[" : "", host, v6 ? "]" : "", cfg->http_port);
            printf("a user's token: concert auth token USER (Authorization: Bearer <token>)\n");
            fflush(stdout);
        }
        if (!ready && ct_clock_mono_ms() >= deadline) {
            fprintf(stderr, "error: the ingress did not become ready within %d ms\n", cfg->up_ready_timeout_ms);
            rc = CT_EXIT_FAILURE;
            break;
        }
        ct_supervisor_poll(sup, ready ? 1000 : 200);
    }
    if (ct_signal_stop_requested()) CT_LOG_INFO("up", "stopping signal=%d", ct_signal_received());
    ct_supervisor_stop_all(sup);
    ct_supervisor_destroy(sup);
    CT_LOG_INFO("up", "stopped");
    return rc;
}
