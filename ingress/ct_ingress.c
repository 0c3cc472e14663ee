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
#include <sys/resource.h>
#include <time.h>

#include "ct_admin.h"
#include "ct_api.h"
#include "ct_commit.h"
#include "ct_console.h"
#include "ct_kafka.h"
#include "ct_log.h"
#include "ct_trace.h"
#include "ct_outbox.h"
#include "ct_metrics.h"
#include "ct_pg.h"
#include "ct_ratelimit.h"
#include "ct_reads.h"
#include "ct_wait.h"

struct ct_ingress {
    const ct_config *cfg;
    char auth_key[CT_AUTH_KEY_BYTES_MAX]; /* empty: user endpoints disabled (403) */
    struct MHD_Daemon *mhd;
    ct_commit *commit;
    ct_commit *reads;      /* GET queries and outcome checks, never behind a write */
    ct_commit *admin_pool; /* the console's views: one worker, which alone uses `admin` */
    ct_admin *admin;
    ct_wait *wait;
    int port;
    pthread_t ready_thread;
    bool ready_thread_started;
    atomic_bool stopping; /* ct_ingress_stop began: new connections are closed at accept */
    atomic_bool pg_ok;
    atomic_bool kafka_ok;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int64_t last_ts;
    _Atomic uint64_t responses[6]; /* by status class 1xx..5xx */
    _Atomic uint64_t accepted;
    ct_histogram write_latency, read_latency;
    _Atomic int64_t open_requests;                 /* from their headers until MHD reports them completed */
    _Atomic uint64_t rate_limited;                 /* writes answered 429 by a rate limit */
    _Atomic uint64_t token_reads, token_read_sets; /* token reads, and the statements that answered them */
    ct_ratelimit *rate_user, *rate_ip;             /* NULL: no limit */
    ct_ratelimit *rate_login;                      /* console logins per address */
    unsigned conn_max;                             /* CONCERT_HTTP_CONNECTIONS_MAX, lowered to fit RLIMIT_NOFILE */
};

typedef enum req_state { R_HEADERS, R_BODY, R_QUEUED, R_DONE } req_state;

/* One HTTP request, from its headers to the end of its response. */
typedef struct req {
    ct_ingress *in;
    struct MHD_Connection *conn;
    ct_api_route route;
    char param[80];
    char param2[80];
    ct_api_page page;
    int wait_s;             /* Prefer: wait=N, 0: none */
    char last_event_id[64]; /* a token event stream's Last-Event-ID */
    bool token_waited;      /* a token read that waited once for admission: answer what the second read finds */
    _Atomic int state;
    int64_t t0_us;
    char *body;
    size_t len;
    char idem_key[CT_AUTH_USER_BYTES_MAX + 1 + CT_API_IDEMPOTENCY_KEY_BYTES_MAX + 1]; /* <user or #admin>/<key> */
    char user[CT_AUTH_USER_BYTES_MAX + 1]; /* the bearer token's user; empty for admin */
    bool admin;                            /* a user route read with the admin key */
    ct_api_command cmd;
    ct_commit_item item;
    ct_waiter waiter;
    ct_admin_request adm;
    ct_read_request read;
    bool console_login; /* POST /admin/login: answered once its form is read */
} req;

/* ---- responses ---------------------------------------------------------- */

/* retry_after_s > 0 adds Retry-After. */
static enum MHD_Result respond_retry(ct_ingress *in, struct MHD_Connection *conn, unsigned status, const char *body,
                                     const char *content_type, int retry_after_s) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", content_type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (retry_after_s > 0) {
        char retry[16];
        snprintf(retry, sizeof retry, "%d", retry_after_s);
        MHD_add_response_header(r, "Retry-After", retry);
    }
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    if (status >= 100 && status < 600) atomic_fetch_add(&in->responses[status / 100], 1);
    return ret;
}

/* Overloaded (429) and unavailable (503) answers say to come back in a second. */
static enum MHD_Result respond(ct_ingress *in, struct MHD_Connection *conn, unsigned status, const char *body,
                               const char *content_type) {
    return respond_retry(in, conn, status, body, content_type, status == 503 || status == 429 ? 1 : 0);
}

/* 429 with the Retry-After a rate limit computed. */
static enum MHD_Result respond_limited(ct_ingress *in, struct MHD_Connection *conn, int retry_after_s,
                                       const char *what) {
    char body[256];
    snprintf(body, sizeof body,
             "{\"error\":{\"code\":\"RATE_LIMITED\",\"message\":\"too many writes %s; retry in %d s\"}}", what,
             retry_after_s);
    atomic_fetch_add(&in->rate_limited, 1);
    return respond_retry(in, conn, 429, body, "application/json", retry_after_s);
}

/* A console answer: its security headers, and a Location (303s) and a
 * Set-Cookie when given. */
static enum MHD_Result respond_console(ct_ingress *in, struct MHD_Connection *conn, unsigned status, const char *body,
                                       const char *content_type, const char *location, const char *set_cookie) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(body ? strlen(body) : 0, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    if (content_type) MHD_add_response_header(r, "Content-Type", content_type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    const char *name, *value;
    for (size_t i = 0; ct_console_security_header(i, &name, &value); i++) MHD_add_response_header(r, name, value);
    if (location) MHD_add_response_header(r, "Location", location);
    if (set_cookie) MHD_add_response_header(r, "Set-Cookie", set_cookie);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    if (status >= 100 && status < 600) atomic_fetch_add(&in->responses[status / 100], 1);
    return ret;
}

static enum MHD_Result respond_json(ct_ingress *in, struct MHD_Connection *conn, unsigned status, const char *body) {
    char *timed = ct_api_times_rfc3339(body);
    enum MHD_Result r = respond(in, conn, status, timed ? timed : body, "application/json");
    free(timed);
    return r;
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

/* ingress/openapi.json, compiled in (cmake/embed.cmake). */
extern const char ct_ingress_openapi_json[];

/* ---- metrics ------------------------------------------------------------ */

/* The ingress's own figures, then every other component's (their files in
 * the data directory: runtime/ct_metrics). */
static enum MHD_Result respond_metrics(ct_ingress *in, struct MHD_Connection *conn) {
    ct_metrics_text t = {.cap = 256 * 1024};
    if (!(t.buf = malloc(t.cap))) return respond_error(in, conn, 500, "INTERNAL", "out of memory");
    t.buf[0] = '\0';
    ct_commit_stats s;
    ct_commit_get_stats(in->commit, &s);
    ct_wait_stats ws = {0};
    if (in->wait) ct_wait_get_stats(in->wait, &ws);
    ct_metrics_family(&t, "concert_http_responses_total", "counter", "HTTP responses by status class.");
    for (int c = 2; c <= 5; c++)
        ct_metrics_printf(&t, "concert_http_responses_total{class=\"%dxx\"} %" PRIu64 "\n", c,
                          atomic_load(&in->responses[c]));
    struct {
        const char *name, *type, *help;
        double v;
    } rows[] = {
        {"concert_ingress_commands_accepted_total", "counter", "Commands committed to the outbox and answered 202.",
         (double)atomic_load(&in->accepted)},
        {"concert_ingress_rate_limited_total", "counter",
         "Writes answered 429 by a per-user or per-address rate limit.", (double)atomic_load(&in->rate_limited)},
        {"concert_ingress_commit_batches_total", "counter", "Group-commit transactions that wrote outbox rows.",
         (double)s.batches},
        {"concert_ingress_commit_rows_total", "counter", "Outbox rows written by group commits.", (double)s.rows},
        {"concert_ingress_commit_write_seconds_total", "counter",
         "Time the writers spent in outbox transactions (a rate near CONCERT_INGRESS_PG_CONNS: writing is the"
         " bottleneck).",
         (double)s.write_us / 1e6},
        {"concert_ingress_idempotent_replays_total", "counter", "Requests answered from an earlier Idempotency-Key.",
         (double)s.replays},
        {"concert_ingress_store_failures_total", "counter", "Commands answered 503 because Postgres failed.",
         (double)s.failures},
        {"concert_ingress_queue_depth", "gauge", "Requests waiting for a group commit.", (double)s.queued},
        {"concert_ingress_waiters", "gauge", "Writes held open by Prefer: wait for their outcome.", (double)ws.waiters},
        {"concert_ingress_wait_outcomes_total", "counter", "Waiting writes answered with their outcome.",
         (double)ws.outcomes},
        {"concert_ingress_wait_timeouts_total", "counter",
         "Waiting writes answered 202 because N ran out (or at stop).", (double)ws.timeouts},
        {"concert_ingress_wait_refused_total", "counter",
         "Writes answered 202 at once: CONCERT_INGRESS_WAITERS_MAX reached.", (double)ws.refused},
        {"concert_ingress_listener_reconnects_total", "counter", "Reconnections of the command_done listener.",
         (double)ws.reconnects},
        {"concert_ingress_token_reads_total", "counter", "Queue token reads answered from Postgres.",
         (double)atomic_load(&in->token_reads)},
        {"concert_ingress_token_read_sets_total", "counter",
         "Statements that answered them (reads queued together share one).", (double)atomic_load(&in->token_read_sets)},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        ct_metrics_one(&t, rows[i].name, rows[i].type, rows[i].help, "", rows[i].v);
    ct_metrics_family(&t, "concert_ingress_write_seconds", "histogram",
                      "Latency of write requests without Prefer: wait, headers to answer.");
    ct_metrics_histogram(&t, "concert_ingress_write_seconds", "", &in->write_latency);
    ct_metrics_family(&t, "concert_ingress_read_seconds", "histogram",
                      "Latency of GET requests answered from Postgres.");
    ct_metrics_histogram(&t, "concert_ingress_read_seconds", "", &in->read_latency);
    ct_metrics_family(&t, "concert_ingress_dependency_up", "gauge",
                      "Whether Postgres and Kafka answered the last readiness probe.");
    ct_metrics_printf(&t, "concert_ingress_dependency_up{dependency=\"postgres\"} %d\n",
                      atomic_load(&in->pg_ok) ? 1 : 0);
    ct_metrics_printf(&t, "concert_ingress_dependency_up{dependency=\"kafka\"} %d\n",
                      atomic_load(&in->kafka_ok) ? 1 : 0);
    ct_metrics_collect(in->cfg, &t);
    enum MHD_Result r = respond(in, conn, 200, t.buf, "text/plain; version=0.0.4");
    free(t.buf);
    return r;
}

/* ---- queries run by the commit workers ---------------------------------- */

/* The read API and the outbox's admin views (ct_reads). */
static void query_read(PGconn *pg, ct_commit_item *it) {
    req *r = it->query_ctx;
    ct_reads_run(pg, it, &r->read);
}

/* Token reads, in sets: fans admitted together read their tokens at once. */
static void query_tokens(PGconn *pg, ct_commit_item *const *items, int n) {
    const ct_read_request *rqs[CT_COMMIT_QUERY_BATCH_MAX];
    for (int i = 0; i < n; i++) rqs[i] = &((req *)items[i]->query_ctx)->read;
    ct_reads_run_tokens(pg, items, rqs, n);
    ct_ingress *in = ((req *)items[0]->query_ctx)->in;
    atomic_fetch_add(&in->token_reads, (uint64_t)n);
    atomic_fetch_add(&in->token_read_sets, 1);
}

/* The console's views (ct_admin), in the admin pool's one worker. */
static void query_admin(PGconn *pg, ct_commit_item *it) {
    req *r = it->query_ctx;
    ct_admin_run(r->in->admin, pg, it, &r->adm);
}

/* ---- the request handler ------------------------------------------------ */

static void os_random(void *ctx, uint8_t *out, size_t n) {
    (void)ctx;
    /* getrandom(2) blocks only before the pool is initialised at boot;
     * short reads do not happen for n <= 256. */
    while (getrandom(out, n, 0) != (ssize_t)n) {}
}

static int64_t logical_now(ct_ingress *in) {
    int64_t now = ct_clock_wall_ms(), last = atomic_load(&in->last_ts);
    while (now > last && !atomic_compare_exchange_weak(&in->last_ts, &last, now)) {}
    return now > last ? now : last; /* never behind a timestamp already handed out */
}

static void on_wait_done(ct_waiter *w) {
    req *r = w->done_ctx;
    ct_trace_hop(w->command_id, strlen(w->command_id), "ingress.answer");
    atomic_store(&r->state, R_DONE);
    MHD_resume_connection(r->conn);
}

/* Runs in a commit worker. A write committed with Prefer: wait stays
 * suspended as a waiter (a replayed Idempotency-Key waits for the first
 * command's id, which its stored answer names); when the waiter table is
 * full it is answered 202 now. */
static void on_item_done(ct_commit_item *it);

/* A token read that waited for admission reads the token again (the wake
 * may be its deadline, or early after the listener reconnected) and
 * answers what it finds. Runs in the listener or a read-pool thread. */
static void on_token_wait_done(ct_waiter *w) {
    req *r = w->done_ctx;
    r->token_waited = true;
    free(r->item.body);
    r->item.body = NULL;
    r->item.status = 0;
    if (ct_commit_submit(r->in->reads, &r->item) != 0) {
        ct_commit_set_error(&r->item, 429, "OVERLOADED", "too many requests waiting for the database; retry");
        on_item_done(&r->item);
    }
}

/* A token read with Prefer: wait that found its token WAITING is held as a
 * waiter until the projector admits the token (no polling). true: held. */
static bool hold_token_read(req *r, ct_commit_item *it) {
    if ((r->route != CT_ROUTE_TOKEN_STATUS && r->route != CT_ROUTE_TOKEN_EVENTS) || r->wait_s <= 0 || r->token_waited ||
        !r->in->wait || it->status != 200 || !it->body || !strstr(it->body, "\"status\":\"WAITING\"") ||
        strlen(r->param) != CT_API_TOKEN_CHARS)
        return false;
    memcpy(r->waiter.command_id, r->param, CT_API_TOKEN_CHARS + 1);
    r->waiter.token = true;
    r->waiter.deadline_mono_ms = r->t0_us / 1000 + (int64_t)r->wait_s * 1000;
    r->waiter.done = on_token_wait_done;
    r->waiter.done_ctx = r;
    return ct_wait_register(r->in->wait, &r->waiter) == 0;
}

static void on_item_done(ct_commit_item *it) {
    req *r = it->done_ctx;
    if (hold_token_read(r, it)) return;
    if (it->cmd && it->status == 202) ct_trace_hop(it->cmd->command_id, strlen(it->cmd->command_id), "ingress.commit");
    if (r->wait_s > 0 && it->cmd && it->status == 202 && r->in->wait &&
        ct_api_command_id_of(it->body, r->waiter.command_id) == 0) {
        r->waiter.deadline_mono_ms = r->t0_us / 1000 + (int64_t)r->wait_s * 1000;
        r->waiter.done = on_wait_done;
        r->waiter.done_ctx = r;
        if (ct_wait_register(r->in->wait, &r->waiter) == 0) return;
    }
    atomic_store(&r->state, R_DONE);
    MHD_resume_connection(r->conn);
}

static enum MHD_Result submit_to(ct_ingress *in, ct_commit *pool, req *r) {
    r->item.done = on_item_done;
    r->item.done_ctx = r;
    atomic_store(&r->state, R_QUEUED);
    if (r->item.cmd) ct_trace_hop(r->item.cmd->command_id, strlen(r->item.cmd->command_id), "ingress.accept");
    /* Suspended before it is queued, so a worker can never resume it first. */
    MHD_suspend_connection(r->conn);
    if (ct_commit_submit(pool, &r->item) != 0) {
        ct_commit_set_error(&r->item, 429, "OVERLOADED", "too many requests waiting for the database; retry");
        on_item_done(&r->item);
    }
    return MHD_YES;
}

#define HTML "text/html; charset=utf-8"

/* The client's address as text into ip (empty when unknown). */
static void client_ip(struct MHD_Connection *conn, char *ip, size_t n) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    ip[0] = 0;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, (socklen_t)n);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, (socklen_t)n);
}

static bool console_session(ct_ingress *in, struct MHD_Connection *conn) {
    return ct_console_session_valid(in->cfg->admin_key, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cookie"),
                                    ct_clock_wall_ms() / 1000);
}

/* The console's session opens the admin API to the console's own pages:
 * no Authorization header, a valid session cookie, and for a write the
 * console's header too (a cross-site form cannot send it). */
static bool admin_by_console(ct_ingress *in, struct MHD_Connection *conn, const char *method) {
    if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization")) return false;
    bool read = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    return (read || MHD_lookup_connection_value(conn, MHD_HEADER_KIND, CT_CONSOLE_WRITE_HEADER)) &&
           console_session(in, conn);
}

/* /admin and below: the console's pages, files, login and logout. */
static enum MHD_Result on_console(ct_ingress *in, req *r, const char *method, const char *url) {
    struct MHD_Connection *conn = r->conn;
    ct_console_asset a = ct_console_asset_find(url);
    bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0, post = strcmp(method, "POST") == 0;
    char cookie[192];
    switch (a.kind) {
    case CT_CONSOLE_NONE:
        return respond_console(in, conn, 404,
                               "<!doctype html><title>Not found</title><p>No such page of the console."
                               " <a href=\"/admin/\">Console</a>",
                               HTML, NULL, NULL);
    case CT_CONSOLE_REDIRECT: return respond_console(in, conn, 303, NULL, NULL, "/admin/", NULL);
    case CT_CONSOLE_FILE:
        if (!get) break;
        return respond_console(in, conn, 200, a.body, a.content_type, NULL, NULL);
    case CT_CONSOLE_PAGE:
        if (!get) break;
        if (!console_session(in, conn)) return respond_console(in, conn, 303, NULL, NULL, "/admin/login", NULL);
        return respond_console(in, conn, 200, a.body, a.content_type, NULL, NULL);
    case CT_CONSOLE_LOGIN:
        if (get) return respond_console(in, conn, 200, a.body, a.content_type, NULL, NULL);
        if (!post) break;
        if (!in->cfg->admin_key[0])
            return respond_console(in, conn, 403, "the console is disabled: CONCERT_ADMIN_KEY is not set",
                                   "text/plain; charset=utf-8", NULL, NULL);
        /* Guessing the key from one address: CT_CONSOLE_LOGINS_PER_S tries. */
        char ip[64];
        int retry_s = 0;
        client_ip(conn, ip, sizeof ip);
        if (ip[0] && !ct_ratelimit_take(in->rate_login, ip, ct_clock_mono_ms(), &retry_s))
            return respond_retry(in, conn, 429, "too many logins from this address; retry later",
                                 "text/plain; charset=utf-8", retry_s);
        r->console_login = true; /* answered once its form is read */
        atomic_store(&r->state, R_BODY);
        return MHD_YES;
    case CT_CONSOLE_LOGOUT:
        if (!post) break;
        ct_console_set_cookie(NULL, cookie, sizeof cookie);
        return respond_console(in, conn, 303, NULL, NULL, "/admin/login", cookie);
    }
    return respond_console(in, conn, 405, "method not allowed", "text/plain; charset=utf-8", NULL, NULL);
}

/* A login form: the admin key typed in, checked as the API checks it;
 * right -> a session cookie and the console, wrong -> the form again. */
static enum MHD_Result on_console_login(ct_ingress *in, req *r) {
    char key[CT_AUTH_KEY_BYTES_MAX + 16], bearer[CT_AUTH_KEY_BYTES_MAX + 32], session[CT_CONSOLE_SESSION_CHARS + 1],
        cookie[192];
    ct_api_error e = {0};
    strcpy(bearer, "Bearer ");
    bool ok = r->len <= CT_API_BODY_BYTES_MAX && r->body &&
              ct_console_form_value(r->body, r->len, "key", key, sizeof key) == 0 &&
              snprintf(bearer + 7, sizeof bearer - 7, "%s", key) > 0 &&
              ct_api_check_admin(bearer, in->cfg->admin_key, &e) == 0 &&
              ct_console_session_new(in->cfg->admin_key, ct_clock_wall_ms() / 1000, session) == 0;
    if (!ok) {
        CT_LOG_RATELIMITED(CT_LOG_WARN, "console", 5000, "%s", "a console login with a wrong key");
        return respond_console(in, r->conn, 303, NULL, NULL, "/admin/login?failed=1", NULL);
    }
    ct_console_set_cookie(session, cookie, sizeof cookie);
    CT_LOG_INFO("console", "a console session began");
    return respond_console(in, r->conn, 303, NULL, NULL, "/admin/", cookie);
}

static enum MHD_Result on_headers(ct_ingress *in, req *r, const char *method, const char *url) {
    struct MHD_Connection *conn = r->conn;
    ct_api_error e = {0};
    if (ct_console_is_path(url)) return on_console(in, r, method, url);
    r->route = ct_api_match2(method, url, r->param, r->param2, sizeof r->param, &e);
    if (r->route == CT_ROUTE_NONE) return respond_api_error(in, conn, &e);
    if (ct_api_route_is_read(r->route)) {
        if (ct_api_check_read_params(r->route, r->param, r->param2, &e) != 0) return respond_api_error(in, conn, &e);
        if ((r->route == CT_ROUTE_CONCERTS || r->route == CT_ROUTE_SEATS || r->route == CT_ROUTE_USER_RESERVATIONS) &&
            ct_api_parse_page(r->route, MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit"),
                              MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "after"), &r->page, &e) != 0)
            return respond_api_error(in, conn, &e);
    }
    /* The metrics tell how busy and how big the service is: operators only. */
    if ((ct_api_route_is_admin(r->route) || r->route == CT_ROUTE_METRICS) && !admin_by_console(in, conn, method) &&
        ct_api_check_admin(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"), in->cfg->admin_key,
                           &e) != 0)
        return respond_api_error(in, conn, &e);
    if (ct_api_route_is_user(r->route)) {
        const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        ct_api_error ae = {0};
        r->admin = ct_api_route_admin_may_read(r->route) && in->cfg->admin_key[0] &&
                   ct_api_check_admin(authz, in->cfg->admin_key, &ae) == 0;
        if (!r->admin) {
            if (!in->auth_key[0])
                return respond_error(
                    in, conn, 403, "AUTH_DISABLED",
                    "user endpoints are disabled: no CONCERT_AUTH_KEY (or auth.key in the data directory)");
            if (ct_api_auth_error(ct_auth_verify(in->auth_key, authz, ct_clock_wall_ms() / 1000, r->user), &e) != 0 ||
                ct_api_check_user(r->route, r->user, r->param, &e) != 0)
                return respond_api_error(in, conn, &e);
        }
    }
    if (ct_api_route_is_write(r->route)) {
        int retry_s = 0;
        char ip[64] = "";
        client_ip(conn, ip, sizeof ip);
        int64_t now = ct_clock_mono_ms();
        if (r->user[0] && !ct_ratelimit_take(in->rate_user, r->user, now, &retry_s))
            return respond_limited(in, conn, retry_s, "by this user");
        if (ip[0] && !ct_ratelimit_take(in->rate_ip, ip, now, &retry_s))
            return respond_limited(in, conn, retry_s, "from this address");
        if (ct_api_check_content_type(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"), &e) != 0)
            return respond_api_error(in, conn, &e);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > CT_API_BODY_BYTES_MAX)
            return respond_error(in, conn, 413, "BODY_TOO_LARGE", "request body over 16384 bytes");
        const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
        if (ct_api_check_idempotency_key(key, &e) != 0) return respond_api_error(in, conn, &e);
        /* Scoped to the caller: another user's same key is another request. */
        if (key) snprintf(r->idem_key, sizeof r->idem_key, "%s/%s", r->user[0] ? r->user : "#admin", key);
    }
    /* Writes wait for their outcome; a waiting fan's client long-polls its
     * token instead of polling it. */
    if ((ct_api_route_is_write(r->route) || r->route == CT_ROUTE_TOKEN_STATUS) &&
        ct_api_parse_prefer_wait(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Prefer"), &r->wait_s, &e) != 0)
        return respond_api_error(in, conn, &e);
    if (r->route == CT_ROUTE_TOKEN_EVENTS) { /* an event stream: each answer waits for the next change */
        r->wait_s = CT_API_TOKEN_EVENTS_WAIT_S;
        const char *last = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
        snprintf(r->last_event_id, sizeof r->last_event_id, "%s", last ? last : "");
    }
    atomic_store(&r->state, R_BODY);
    return MHD_YES;
}

static const char *query_arg(struct MHD_Connection *conn, const char *name) {
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
}

static ct_read_request read_request(req *r) {
    return (ct_read_request){.route = r->route,
                             .param = r->param,
                             .param2 = r->param2,
                             .page = r->page,
                             .user = r->user,
                             .admin = r->admin,
                             .status = query_arg(r->conn, "status"),
                             .after_id = query_arg(r->conn, "after_id"),
                             .limit = query_arg(r->conn, "limit")};
}

static enum MHD_Result on_complete(ct_ingress *in, req *r) {
    struct MHD_Connection *conn = r->conn;
    if (r->console_login) return on_console_login(in, r);
    switch (r->route) {
    case CT_ROUTE_HEALTHZ: return respond_json(in, conn, 200, "{\"status\":\"ok\"}");
    case CT_ROUTE_READYZ: {
        bool pg = atomic_load(&in->pg_ok), kafka = atomic_load(&in->kafka_ok);
        char body[128];
        snprintf(body, sizeof body, "{\"status\":\"%s\",\"postgres\":\"%s\",\"kafka\":\"%s\"}",
                 pg && kafka ? "ready" : "not_ready", pg ? "ok" : "down", kafka ? "ok" : "down");
        return respond_json(in, conn, pg && kafka ? 200 : 503, body);
    }
    case CT_ROUTE_METRICS: return respond_metrics(in, conn);
    case CT_ROUTE_OPENAPI: return respond(in, conn, 200, ct_ingress_openapi_json, "application/json");
    case CT_ROUTE_COMMAND_STATUS:
    case CT_ROUTE_TOKEN_STATUS:
    case CT_ROUTE_TOKEN_EVENTS:
    case CT_ROUTE_CONCERTS:
    case CT_ROUTE_SCHEDULES:
    case CT_ROUTE_SEATS:
    case CT_ROUTE_RESERVATION:
    case CT_ROUTE_USER_RESERVATIONS:
    case CT_ROUTE_BALANCE:
        r->read = read_request(r);
        r->item.query = query_read;
        if (r->route == CT_ROUTE_TOKEN_STATUS || r->route == CT_ROUTE_TOKEN_EVENTS) r->item.query_batch = query_tokens;
        r->item.query_ctx = r;
        return submit_to(in, in->reads, r);
    case CT_ROUTE_OUTBOX_RETRY_FAILED:
    case CT_ROUTE_ADMIN_TOPICS:
    case CT_ROUTE_ADMIN_RECORDS:
    case CT_ROUTE_ADMIN_PRODUCE:
    case CT_ROUTE_ADMIN_CONSUMERS:
    case CT_ROUTE_ADMIN_QUEUES:
    case CT_ROUTE_ADMIN_SLACK:
        if (r->len > CT_API_BODY_BYTES_MAX)
            return respond_error(in, conn, 413, "BODY_TOO_LARGE", "request body over 16384 bytes");
        r->adm = (ct_admin_request){.route = r->route,
                                    .topic = r->param,
                                    .partition = query_arg(conn, "partition"),
                                    .offset = query_arg(conn, "offset"),
                                    .limit = query_arg(conn, "limit"),
                                    .key = query_arg(conn, "key"),
                                    .status = query_arg(conn, "status"),
                                    .body = r->body,
                                    .body_len = r->len};
        r->item.query = query_admin;
        r->item.query_ctx = r;
        return submit_to(in, in->admin_pool, r);
    case CT_ROUTE_OUTBOX_LIST:
    case CT_ROUTE_OUTBOX_RETRY:
        r->read = read_request(r);
        r->item.query = query_read;
        break;
    default: {
        if (r->len > CT_API_BODY_BYTES_MAX)
            return respond_error(in, conn, 413, "BODY_TOO_LARGE", "request body over 16384 bytes");
        const char *token = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Queue-Token");
        ct_api_request rq = {.route = r->route,
                             .param = r->param,
                             .user = r->user[0] ? r->user : NULL,
                             .queue_token = token,
                             .body = r->body,
                             .body_len = r->len,
                             .ts_ms = logical_now(in),
                             .random = os_random};
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
    return submit_to(in, in->commit, r);
}

/* MHD's accept policy: once stopping, a new connection is closed at once. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
    (void)addr, (void)addrlen;
    const ct_ingress *in = cls;
    return atomic_load(&in->stopping) ? MHD_NO : MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **req_cls) {
    (void)version;
    ct_ingress *in = cls;
    req *r = *req_cls;
    if (!r) { /* first call: headers only */
        if (!(r = calloc(1, sizeof *r))) return MHD_NO;
        r->in = in, r->conn = conn, r->t0_us = ct_clock_mono_us();
        *req_cls = r;
        atomic_fetch_add(&in->open_requests, 1);
        return on_headers(in, r, method, url);
    }
    if (*upload_data_size != 0) {
        /* A body trickled in must not hold its connection for long. */
        if (ct_clock_mono_us() - r->t0_us > (int64_t)in->cfg->http_request_timeout_ms * 1000) {
            CT_LOG_RATELIMITED(CT_LOG_INFO, "http", 5000, "request body not complete within %d ms: connection cut",
                               in->cfg->http_request_timeout_ms);
            return MHD_NO;
        }
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
        if (r->item.cmd && r->wait_s == 0) ct_histogram_observe_us(&in->write_latency, ct_clock_mono_us() - r->t0_us);
        if (ct_api_route_is_read(r->route)) ct_histogram_observe_us(&in->read_latency, ct_clock_mono_us() - r->t0_us);
        if (r->waiter.found && !r->waiter.token) {
            unsigned status = 0;
            char *body = NULL;
            if (ct_api_outcome_response(r->route, r->item.body, r->waiter.command_id, r->waiter.status,
                                        r->waiter.reason, r->waiter.result, &status, &body) == 0) {
                enum MHD_Result ret = respond_json(in, conn, status, body);
                free(body);
                return ret;
            }
            /* Out of memory: the 202 below is still true. */
        }
        if (r->route == CT_ROUTE_TOKEN_EVENTS && r->item.status == 200) {
            char *event = NULL;
            unsigned status = ct_api_token_event(r->item.body, r->last_event_id, &event);
            enum MHD_Result ret = status ? respond(in, conn, status, event, "text/event-stream")
                                         : respond_error(in, conn, 500, "INTERNAL", "cannot write the event");
            free(event);
            return ret;
        }
        return respond_json(in, conn, r->item.status ? r->item.status : 500, r->item.body ? r->item.body : "{}");
    }
    return on_complete(in, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)conn, (void)toe;
    req *r = *req_cls;
    if (!r) return;
    atomic_fetch_sub(&r->in->open_requests, 1);
    ct_api_command_clear(&r->cmd);
    ct_waiter_clear(&r->waiter);
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

/* Connections need file descriptors: the soft RLIMIT_NOFILE is raised to
 * the hard one, and the connection limit lowered to what then fits beside
 * the process's other descriptors (Postgres, Kafka, logs), so a flood is
 * refused at accept rather than failing accept() with EMFILE for all. */
static unsigned connection_budget(const ct_config *cfg) {
    struct rlimit rl;
    unsigned want = (unsigned)cfg->http_connections_max;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return want;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) rl.rlim_cur = was;
    }
    rlim_t room = rl.rlim_cur > CT_INGRESS_FD_RESERVE ? rl.rlim_cur - CT_INGRESS_FD_RESERVE : 16;
    if ((rlim_t)want <= room) return want;
    CT_LOG_WARN("ingress", "CONCERT_HTTP_CONNECTIONS_MAX=%u lowered to %u: the open-file limit is %llu", want,
                (unsigned)room, (unsigned long long)rl.rlim_cur);
    return (unsigned)room;
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
    /* The configuration checked it already; a cfg built another way is
     * checked here by the same function. */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    if (ct_config_listen_addr(cfg->http_addr, cfg->http_port, &addr, &addr_len) != 0) {
        CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_HTTP_ADDR: '%s' is not an IPv4 or IPv6 address literal", cfg->http_addr);
        goto fail;
    }
    int keyed = ct_auth_key_load(cfg, false, in->auth_key, err);
    if (keyed < 0) goto fail;
    if (keyed == 0)
        CT_LOG_WARN("ingress", "no CONCERT_AUTH_KEY and no auth.key in %s: user endpoints answer 403", cfg->data_dir);
    bool oom = false;
    in->rate_user = ct_ratelimit_new(cfg->rate_user_writes, &oom);
    if (!oom) in->rate_ip = ct_ratelimit_new(cfg->rate_ip_writes, &oom);
    if (!oom) in->rate_login = ct_ratelimit_new(CT_CONSOLE_LOGINS_PER_S, &oom);
    if (oom) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        goto fail;
    }
    in->conn_max = connection_budget(cfg);
    if (!(in->commit = ct_commit_start(cfg, err))) goto fail;
    if (!(in->reads = ct_commit_start_pool(cfg, cfg->ingress_read_conns, 1, err))) goto fail;
    if (!(in->wait = ct_wait_start(cfg, err))) goto fail;
    if (!(in->admin = ct_admin_new(cfg))) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        goto fail;
    }
    if (!(in->admin_pool = ct_commit_start_pool(cfg, 1, 1, err))) goto fail;
    in->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
            (addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        (uint16_t)cfg->http_port, on_accept, in, on_request, in, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)CT_INGRESS_HTTP_THREADS, MHD_OPTION_CONNECTION_LIMIT, in->conn_max,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->http_connections_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CT_INGRESS_CONN_MEMORY_BYTES, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CT_INGRESS_IDLE_TIMEOUT_S,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, in, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
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
    /* No new connections. Not MHD_quiesce_daemon: with a thread pool and
     * epoll, libmicrohttpd 0.9.75 takes the listen socket out of each
     * worker's epoll set from this thread while the worker may be doing it
     * itself, and aborts the process when the second removal fails (seen
     * in CI: "Failed to remove listen FD from epoll set"). */
    atomic_store(&in->stopping, true); /* also ends the readiness thread's loop */
    /* Every queued request gets its answer and its connection resumed:
     * MHD must not be stopped with connections suspended. */
    if (in->commit) ct_commit_stop(in->commit);
    /* After the writer (whose last commits may still register waiters) and
     * before the read pool (which finishes the waiters' checks in flight). */
    ct_wait_stop(in->wait);
    if (in->reads) ct_commit_stop(in->reads);
    if (in->admin_pool) ct_commit_stop(in->admin_pool);
    /* Every request has its answer now, but a resumed connection is written
     * by MHD's threads a moment later: stopping MHD at once could close it
     * with the answer unsent (a waiting write saw an empty reply). */
    struct timespec tick = {.tv_nsec = 10 * 1000 * 1000};
    for (int64_t until = ct_clock_mono_ms() + CT_INGRESS_STOP_FLUSH_MS;
         in->mhd && atomic_load(&in->open_requests) > 0 && ct_clock_mono_ms() < until;)
        nanosleep(&tick, NULL);
    if (in->mhd) MHD_stop_daemon(in->mhd);
    ct_wait_destroy(in->wait);
    ct_ratelimit_destroy(in->rate_user);
    ct_ratelimit_destroy(in->rate_ip);
    ct_ratelimit_destroy(in->rate_login);
    ct_commit_destroy(in->reads);
    ct_commit_destroy(in->admin_pool); /* its worker used `admin` last */
    ct_admin_destroy(in->admin);
    ct_commit_destroy(in->commit);
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
