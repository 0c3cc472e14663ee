/* ct_ingress: see ct_ingress.h. */
#include "ct_ingress.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ct_kafka.h"
#include "ct_log.h"
#include "ct_pg.h"

struct ct_ingress {
    const ct_config *cfg;
    struct MHD_Daemon *mhd;
    int port;
    pthread_t ready_thread;
    bool ready_thread_started;
    atomic_bool stopping;
    atomic_bool pg_ok;
    atomic_bool kafka_ok;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static enum MHD_Result respond_json(struct MHD_Connection *conn, unsigned status, const char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_error(struct MHD_Connection *conn, unsigned status, const char *code,
                                     const char *message) {
    char body[512];
    snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, message);
    return respond_json(conn, status, body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
    ct_ingress *in = cls;
    if (*req_cls == NULL) { /* first call: headers only */
        *req_cls = in;
        return MHD_YES;
    }
    bool is_get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    if (strcmp(url, "/healthz") == 0) {
        if (!is_get) return respond_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "use GET");
        return respond_json(conn, MHD_HTTP_OK, "{\"status\":\"ok\"}");
    }
    if (strcmp(url, "/readyz") == 0) {
        if (!is_get) return respond_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", "use GET");
        bool pg = atomic_load(&in->pg_ok), kafka = atomic_load(&in->kafka_ok);
        char body[128];
        snprintf(body, sizeof body, "{\"status\":\"%s\",\"postgres\":\"%s\",\"kafka\":\"%s\"}",
                 pg && kafka ? "ready" : "not_ready", pg ? "ok" : "down", kafka ? "ok" : "down");
        return respond_json(conn, pg && kafka ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body);
    }
    if (*upload_data_size != 0) { /* discard bodies of requests we do not serve */
        *upload_data_size = 0;
        return MHD_YES;
    }
    (void)upload_data;
    return respond_error(conn, MHD_HTTP_NOT_FOUND, "NOT_FOUND", "no such endpoint");
}

/* Measures readiness off the request path. */
static void *ready_loop(void *arg) {
    ct_ingress *in = arg;
    PGconn *pg = NULL;
    ct_error err = {0};
    rd_kafka_t *rk = ct_kafka_admin_new(in->cfg, "concert-ingress-ready", &err);
    if (!rk) CT_LOG_ERROR("ready", "cannot create Kafka handle: %s %s", err.msg, err.detail);
    while (!atomic_load(&in->stopping)) {
        bool pg_ok = false, kafka_ok = false;
        if (pg && PQstatus(pg) != CONNECTION_OK) {
            PQfinish(pg);
            pg = NULL;
        }
        if (!pg) pg = ct_pg_connect(in->cfg, NULL, &err);
        if (pg) {
            PGresult *res = PQexec(pg, "SELECT 1");
            pg_ok = PQresultStatus(res) == PGRES_TUPLES_OK;
            PQclear(res);
        }
        if (rk) {
            const struct rd_kafka_metadata *md = NULL;
            if (rd_kafka_metadata(rk, 0, NULL, &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                kafka_ok = md->broker_cnt > 0;
                rd_kafka_metadata_destroy(md);
            }
        }
        if (pg_ok != atomic_load(&in->pg_ok) || kafka_ok != atomic_load(&in->kafka_ok))
            CT_LOG_INFO("ready", "readiness changed postgres=%s kafka=%s", pg_ok ? "ok" : "down",
                        kafka_ok ? "ok" : "down");
        atomic_store(&in->pg_ok, pg_ok);
        atomic_store(&in->kafka_ok, kafka_ok);
        pthread_mutex_lock(&in->mu);
        if (!atomic_load(&in->stopping)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += CT_INGRESS_READY_INTERVAL_MS / 1000;
            pthread_cond_timedwait(&in->cv, &in->mu, &ts);
        }
        pthread_mutex_unlock(&in->mu);
    }
    if (pg) PQfinish(pg);
    if (rk) rd_kafka_destroy(rk);
    return NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    CT_LOG_RATELIMITED(CT_LOG_WARN, "http", 1000, "%s", buf);
}

ct_ingress *ct_ingress_start(const ct_config *cfg, ct_error *err) {
    ct_ingress *in = calloc(1, sizeof *in);
    if (!in) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return NULL;
    }
    in->cfg = cfg;
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cv, NULL);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)cfg->http_port);
    if (inet_pton(AF_INET, cfg->http_addr, &addr.sin_addr) != 1) {
        CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_HTTP_ADDR: '%s' is not an IPv4 address", cfg->http_addr);
        goto fail;
    }
    in->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, (uint16_t)cfg->http_port, NULL, NULL,
        on_request, in, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->http_connections_max, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CT_INGRESS_CONN_MEMORY_BYTES,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CT_INGRESS_IDLE_TIMEOUT_S, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_END);
    if (!in->mhd) {
        CT_ERR(err, CT_ERR_FATAL, "cannot listen on %s:%d (in use?)", cfg->http_addr, cfg->http_port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(in->mhd, MHD_DAEMON_INFO_BIND_PORT);
    in->port = info ? info->port : cfg->http_port;
    if (pthread_create(&in->ready_thread, NULL, ready_loop, in) != 0) {
        CT_ERR(err, CT_ERR_FATAL, "cannot start the readiness thread");
        goto fail;
    }
    in->ready_thread_started = true;
    return in;
fail:
    ct_ingress_stop(in);
    return NULL;
}

int ct_ingress_port(const ct_ingress *in) { return in->port; }

void ct_ingress_stop(ct_ingress *in) {
    if (!in) return;
    if (in->mhd) MHD_stop_daemon(in->mhd);
    atomic_store(&in->stopping, true);
    if (in->ready_thread_started) {
        pthread_mutex_lock(&in->mu);
        pthread_cond_broadcast(&in->cv);
        pthread_mutex_unlock(&in->mu);
        pthread_join(in->ready_thread, NULL);
    }
    pthread_cond_destroy(&in->cv);
    pthread_mutex_destroy(&in->mu);
    free(in);
}
