/* ct_ingress: see ct_ingress.h. */
#include "ct_ingress.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "ct_api.h"
#include "ct_commit.h"
#include "ct_kafka.h"
#include "ct_log.h"
#include "ct_outbox.h"
#include "ct_pg.h"

/* Latency buckets of write requests, in microseconds (Prometheus le=). */
static const int64_t latency_buckets_us[] = {1000, 2000, 5000, 10000, 20000, 50000, 100000, 500000, 1000000};
#define LATENCY_BUCKETS (sizeof latency_buckets_us / sizeof latency_buckets_us[0])

struct ct_ingress {
    const ct_config *cfg;
    struct MHD_Daemon *mhd;
    ct_commit *commit;
    int port;
    pthread_t ready_thread;
    bool ready_thread_started;
    atomic_bool stopping;
    atomic_bool pg_ok;
    atomic_bool kafka_ok;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int64_t last_ts;
    _Atomic uint64_t responses[6]; /* by status class 1xx..5xx */
    _Atomic uint64_t accepted;
    _Atomic uint64_t write_latency[LATENCY_BUCKETS + 1];
    _Atomic uint64_t write_latency_sum_us;
};

typedef enum req_state { R_HEADERS, R_BODY, R_QUEUED, R_DONE } req_state;

/* One HTTP request, from its headers to the end of its response. */
typedef struct req {
    ct_ingress *in;
    struct MHD_Connection *conn;
    ct_api_route route;
    char param[80];
    _Atomic int state;
    int64_t t0_us;
    char *body;
    size_t len;
    char idem_key[CT_API_IDEMPOTENCY_KEY_BYTES_MAX + 1];
    ct_api_command cmd;
    ct_commit_item item;
} req;

static int64_t mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- responses ---------------------------------------------------------- */

static enum MHD_Result respond(ct_ingress *in, struct MHD_Connection *conn, unsigned status, const char *body,
                               const char *content_type) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", content_type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (status == 503) MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    if (status >= 100 && status < 600) atomic_fetch_add(&in->responses[status / 100], 1);
    return ret;
}

static enum MHD_Result respond_json(ct_ingress *in, struct MHD_Connection *conn, unsigned status, const char *body) {
    return respond(in, conn, status, body, "application/json");
}

static enum MHD_Result respond_api_error(ct_ingress *in, struct MHD_Connection *conn, const ct_api_error *e) {
    char *body = ct_api_error_json(e);
    enum MHD_Result r = respond_json(in, conn, e->status, body ? body : "{}");
    free(body);
    return r;
}

static enum MHD_Result respond_error(ct_ingress *in, struct MHD_Connection *conn, unsigned status, const char *code,
                                     const char *message) {
    ct_api_error e = {.status = status, .code = code};
    snprintf(e.message, sizeof e.message, "%s", message);
    return respond_api_error(in, conn, &e);
}

/* ---- metrics ------------------------------------------------------------ */

static void record_latency(ct_ingress *in, int64_t us) {
    size_t b = 0;
    while (b < LATENCY_BUCKETS && us > latency_buckets_us[b]) b++;
    atomic_fetch_add(&in->write_latency[b], 1);
    atomic_fetch_add(&in->write_latency_sum_us, (uint64_t)us);
}

static enum MHD_Result respond_metrics(ct_ingress *in, struct MHD_Connection *conn) {
    char buf[4096];
    size_t n = 0;
#define OUT(...) n += (size_t)snprintf(buf + n, n < sizeof buf ? sizeof buf - n : 0, __VA_ARGS__)
    ct_commit_stats s;
    ct_commit_get_stats(in->commit, &s);
    OUT("# HELP concert_http_responses_total HTTP responses by status class.\n"
        "# TYPE concert_http_responses_total counter\n");
    for (int c = 2; c <= 5; c++)
        OUT("concert_http_responses_total{class=\"%dxx\"} %" PRIu64 "\n", c, atomic_load(&in->responses[c]));
    OUT("# HELP concert_ingress_commands_accepted_total Commands committed to the outbox and answered 202.\n"
        "# TYPE concert_ingress_commands_accepted_total counter\n"
        "concert_ingress_commands_accepted_total %" PRIu64 "\n",
        atomic_load(&in->accepted));
    OUT("# HELP concert_ingress_commit_batches_total Group-commit transactions that wrote outbox rows.\n"
        "# TYPE concert_ingress_commit_batches_total counter\n"
        "concert_ingress_commit_batches_total %" PRIu64 "\n"
        "# HELP concert_ingress_commit_rows_total Outbox rows written by group commits.\n"
        "# TYPE concert_ingress_commit_rows_total counter\n"
        "concert_ingress_commit_rows_total %" PRIu64 "\n"
        "# HELP concert_ingress_idempotent_replays_total Requests answered from an earlier Idempotency-Key.\n"
        "# TYPE concert_ingress_idempotent_replays_total counter\n"
        "concert_ingress_idempotent_replays_total %" PRIu64 "\n"
        "# HELP concert_ingress_store_failures_total Commands answered 503 because Postgres failed.\n"
        "# TYPE concert_ingress_store_failures_total counter\n"
        "concert_ingress_store_failures_total %" PRIu64 "\n"
        "# HELP concert_ingress_queue_depth Requests waiting for a group commit.\n"
        "# TYPE concert_ingress_queue_depth gauge\n"
        "concert_ingress_queue_depth %" PRId64 "\n",
        s.batches, s.rows, s.replays, s.failures, s.queued);
    OUT("# HELP concert_ingress_write_seconds Latency of write requests, headers to answer.\n"
        "# TYPE concert_ingress_write_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t b = 0; b < LATENCY_BUCKETS; b++) {
        cum += atomic_load(&in->write_latency[b]);
        OUT("concert_ingress_write_seconds_bucket{le=\"%g\"} %" PRIu64 "\n", (double)latency_buckets_us[b] / 1e6, cum);
    }
    cum += atomic_load(&in->write_latency[LATENCY_BUCKETS]);
    OUT("concert_ingress_write_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
        "concert_ingress_write_seconds_sum %.6f\nconcert_ingress_write_seconds_count %" PRIu64 "\n",
        cum, (double)atomic_load(&in->write_latency_sum_us) / 1e6, cum);
    OUT("# HELP concert_ingress_dependency_up Whether Postgres and Kafka answered the last readiness probe.\n"
        "# TYPE concert_ingress_dependency_up gauge\n"
        "concert_ingress_dependency_up{dependency=\"postgres\"} %d\n"
        "concert_ingress_dependency_up{dependency=\"kafka\"} %d\n",
        atomic_load(&in->pg_ok) ? 1 : 0, atomic_load(&in->kafka_ok) ? 1 : 0);
#undef OUT
    return respond(in, conn, 200, buf, "text/plain; version=0.0.4");
}

/* ---- queries run by the commit workers ---------------------------------- */

static void set_body(ct_commit_item *it, unsigned status, json_t *j) {
    free(it->body);
    it->status = status;
    it->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!it->body) ct_commit_set_error(it, 500, "INTERNAL", "out of memory");
}

static void query_command_status(PGconn *pg, ct_commit_item *it) {
    req *r = it->query_ctx;
    const char *p[1] = {r->param};
    PGresult *res = PQexecParams(pg,
                                 "SELECT status, type, attempts, last_error,"
                                 " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
                                 " to_char(sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
                                 " kafka_partition, kafka_offset FROM outbox WHERE command_id = $1::uuid",
                                 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ct_commit_set_error(it, 503, "STORE_UNAVAILABLE", "cannot read the command");
    } else if (PQntuples(res) == 0) {
        ct_commit_set_error(it, 404, "NOT_FOUND", "no command %s", r->param);
    } else {
        const char *outbox = PQgetvalue(res, 0, 0);
        /* Until the projector records outcomes, what is known is whether
         * the command is stored (ACCEPTED) or in Kafka (PUBLISHED). */
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "command_id", r->param, "status",
                              strcmp(outbox, "SENT") == 0 ? "PUBLISHED" : "ACCEPTED", "type", PQgetvalue(res, 0, 1),
                              "outbox_status", outbox, "attempts", atoi(PQgetvalue(res, 0, 2)), "created_at",
                              PQgetvalue(res, 0, 4));
        if (j && !PQgetisnull(res, 0, 3)) json_object_set_new(j, "last_error", json_string(PQgetvalue(res, 0, 3)));
        if (j && !PQgetisnull(res, 0, 5)) {
            json_object_set_new(j, "sent_at", json_string(PQgetvalue(res, 0, 5)));
            json_object_set_new(j, "kafka_partition", json_integer(atoi(PQgetvalue(res, 0, 6))));
            json_object_set_new(j, "kafka_offset", json_integer(strtoll(PQgetvalue(res, 0, 7), NULL, 10)));
        }
        set_body(it, 200, j);
    }
    PQclear(res);
}

static void query_outbox_list(PGconn *pg, ct_commit_item *it) {
    req *r = it->query_ctx;
    const char *status = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "status");
    const char *after = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "after_id");
    const char *limit = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "limit");
    ct_outbox_status st;
    char *end = NULL;
    int64_t after_id = after ? strtoll(after, &end, 10) : 0;
    if (after && (!*after || *end || after_id < 0)) {
        ct_commit_set_error(it, 400, "INVALID_QUERY", "after_id must be a non-negative integer");
        return;
    }
    long lim = limit ? strtol(limit, &end, 10) : 100;
    if (limit && (!*limit || *end || lim < 1 || lim > 1000)) {
        ct_commit_set_error(it, 400, "INVALID_QUERY", "limit must be 1..1000");
        return;
    }
    if (status && ct_outbox_status_parse(status, &st) != 0) {
        ct_commit_set_error(it, 400, "INVALID_QUERY", "status must be PENDING, SENT or FAILED");
        return;
    }
    char *rows = NULL;
    ct_error err = {0};
    if (ct_outbox_list_json(pg, status ? &st : NULL, after_id, (int)lim, &rows, &err) != 0) {
        ct_commit_set_error(it, 503, "STORE_UNAVAILABLE", "cannot list the outbox");
        return;
    }
    json_t *arr = json_loads(rows, 0, NULL);
    free(rows);
    json_t *last = json_array_size(arr) ? json_array_get(arr, json_array_size(arr) - 1) : NULL;
    json_t *j = json_pack("{s:o}", "rows", arr ? arr : json_array());
    if (j && last && (size_t)lim == json_array_size(json_object_get(j, "rows")))
        json_object_set(j, "next_after_id", json_object_get(last, "id"));
    set_body(it, 200, j);
}

static void query_outbox_retry(PGconn *pg, ct_commit_item *it) {
    req *r = it->query_ctx;
    char *end = NULL;
    long long id = strtoll(r->param, &end, 10);
    if (!r->param[0] || *end || id <= 0) {
        ct_commit_set_error(it, 400, "INVALID_ID", "outbox id must be a positive integer");
        return;
    }
    int64_t count = 0;
    ct_error err = {0};
    if (ct_outbox_retry(pg, id, &count, &err) != 0) {
        if (err.klass != CT_ERR_PERMANENT) ct_commit_set_error(it, 503, "STORE_UNAVAILABLE", "cannot retry: %s", err.msg);
        else if (strstr(err.msg, "does not exist")) ct_commit_set_error(it, 404, "NOT_FOUND", "%s", err.msg);
        else ct_commit_set_error(it, 409, "NOT_FAILED", "%s", err.msg);
        return;
    }
    set_body(it, 200, json_pack("{s:I, s:s}", "id", (json_int_t)id, "status", "PENDING"));
}

/* ---- the request handler ------------------------------------------------ */

static void os_random(void *ctx, uint8_t *out, size_t n) {
    (void)ctx;
    /* getrandom(2) blocks only before the pool is initialised at boot;
     * short reads do not happen for n <= 256. */
    while (getrandom(out, n, 0) != (ssize_t)n) {
    }
}

static int64_t logical_now(ct_ingress *in) {
    int64_t now = ct_clock_wall_ms(), last = atomic_load(&in->last_ts);
    while (now > last && !atomic_compare_exchange_weak(&in->last_ts, &last, now)) {
    }
    return now > last ? now : last; /* never behind a timestamp already handed out */
}

static void on_item_done(ct_commit_item *it) {
    req *r = it->done_ctx;
    atomic_store(&r->state, R_DONE);
    MHD_resume_connection(r->conn);
}

static enum MHD_Result submit(ct_ingress *in, req *r) {
    r->item.done = on_item_done;
    r->item.done_ctx = r;
    atomic_store(&r->state, R_QUEUED);
    /* Suspended before it is queued, so a worker can never resume it first. */
    MHD_suspend_connection(r->conn);
    if (ct_commit_submit(in->commit, &r->item) != 0) {
        ct_commit_set_error(&r->item, 503, "OVERLOADED", "too many requests waiting for the database; retry");
        on_item_done(&r->item);
    }
    return MHD_YES;
}

static enum MHD_Result on_headers(ct_ingress *in, req *r, const char *method, const char *url) {
    struct MHD_Connection *conn = r->conn;
    ct_api_error e = {0};
    r->route = ct_api_match(method, url, r->param, sizeof r->param, &e);
    if (r->route == CT_ROUTE_NONE) return respond_api_error(in, conn, &e);
    if (ct_api_route_is_admin(r->route) &&
        ct_api_check_admin(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"), in->cfg->admin_key,
                           &e) != 0)
        return respond_api_error(in, conn, &e);
    if (ct_api_route_is_write(r->route)) {
        if (ct_api_check_content_type(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"), &e) != 0)
            return respond_api_error(in, conn, &e);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > CT_API_BODY_BYTES_MAX)
            return respond_error(in, conn, 413, "BODY_TOO_LARGE", "request body over 16384 bytes");
        const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
        if (ct_api_check_idempotency_key(key, &e) != 0) return respond_api_error(in, conn, &e);
        if (key) snprintf(r->idem_key, sizeof r->idem_key, "%s", key);
    }
    atomic_store(&r->state, R_BODY);
    return MHD_YES;
}

static enum MHD_Result on_complete(ct_ingress *in, req *r) {
    struct MHD_Connection *conn = r->conn;
    switch (r->route) {
    case CT_ROUTE_HEALTHZ:
        return respond_json(in, conn, 200, "{\"status\":\"ok\"}");
    case CT_ROUTE_READYZ: {
        bool pg = atomic_load(&in->pg_ok), kafka = atomic_load(&in->kafka_ok);
        char body[128];
        snprintf(body, sizeof body, "{\"status\":\"%s\",\"postgres\":\"%s\",\"kafka\":\"%s\"}",
                 pg && kafka ? "ready" : "not_ready", pg ? "ok" : "down", kafka ? "ok" : "down");
        return respond_json(in, conn, pg && kafka ? 200 : 503, body);
    }
    case CT_ROUTE_METRICS:
        return respond_metrics(in, conn);
    case CT_ROUTE_COMMAND_STATUS:
        if (!ct_api_uuid_valid(r->param))
            return respond_error(in, conn, 404, "NOT_FOUND", "command ids are lowercase UUIDs");
        r->item.query = query_command_status;
        break;
    case CT_ROUTE_OUTBOX_LIST:
        r->item.query = query_outbox_list;
        break;
    case CT_ROUTE_OUTBOX_RETRY:
        r->item.query = query_outbox_retry;
        break;
    default: {
        if (r->len > CT_API_BODY_BYTES_MAX)
            return respond_error(in, conn, 413, "BODY_TOO_LARGE", "request body over 16384 bytes");
        const char *token = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Queue-Token");
        ct_api_request rq = {.route = r->route, .param = r->param, .queue_token = token, .body = r->body,
                             .body_len = r->len, .ts_ms = logical_now(in), .random = os_random};
        ct_api_error e = {0};
        if (ct_api_build_command(&rq, &r->cmd, &e) != 0) return respond_api_error(in, conn, &e);
        r->item.cmd = &r->cmd;
        if (r->idem_key[0]) {
            r->item.idem_key = r->idem_key;
            ct_api_fingerprint(r->route, r->param, token, r->body, r->len, r->item.fingerprint);
        }
        break;
    }
    }
    r->item.query_ctx = r;
    return submit(in, r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
    (void)version;
    ct_ingress *in = cls;
    req *r = *req_cls;
    if (!r) { /* first call: headers only */
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        r->in = in, r->conn = conn, r->t0_us = mono_us();
        *req_cls = r;
        return on_headers(in, r, method, url);
    }
    if (*upload_data_size != 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->len + n > CT_API_BODY_BYTES_MAX) { /* no Content-Length told us: count, keep nothing more */
            r->len += n;
            return MHD_YES;
        }
        char *b = realloc(r->body, r->len + n + 1);
        if (!b) return MHD_NO;
        memcpy(b + r->len, upload_data, n);
        r->len += n;
        b[r->len] = 0;
        r->body = b;
        return MHD_YES;
    }
    if (atomic_load(&r->state) == R_DONE) {
        if (r->item.status == 202) atomic_fetch_add(&in->accepted, 1);
        if (r->item.cmd) record_latency(in, mono_us() - r->t0_us);
        return respond_json(in, conn, r->item.status ? r->item.status : 500, r->item.body ? r->item.body : "{}");
    }
    return on_complete(in, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)conn, (void)toe;
    req *r = *req_cls;
    if (!r) return;
    ct_api_command_clear(&r->cmd);
    free(r->item.body);
    free(r->body);
    free(r);
    *req_cls = NULL;
}

/* ---- readiness ---------------------------------------------------------- */

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
    (void)cls;
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
    if (!(in->commit = ct_commit_start(cfg, err))) goto fail;
    in->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
        (uint16_t)cfg->http_port, NULL, NULL, on_request, in, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)CT_INGRESS_HTTP_THREADS, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->http_connections_max, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CT_INGRESS_CONN_MEMORY_BYTES,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CT_INGRESS_IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        in, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
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
    if (in->mhd) MHD_quiesce_daemon(in->mhd); /* no new connections */
    /* Every queued request gets its answer and its connection resumed:
     * MHD must not be stopped with connections suspended. */
    if (in->commit) ct_commit_stop(in->commit);
    if (in->mhd) MHD_stop_daemon(in->mhd);
    ct_commit_destroy(in->commit);
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
