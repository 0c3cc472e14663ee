/* Slack delivery end to end: a local HTTP receiver (libmicrohttpd, in this
 * process) stands in for Slack's incoming webhook; `concert projector` and
 * `concert relay` run as processes on a fresh database and the test
 * cluster.
 *
 *   causes_each_give_one_message_and_a_dead_receiver_is_waited_for
 *     - a ReservationConfirmed event -> exactly one message naming it;
 *     - an outbox row that cannot be published (a topic that does not
 *       exist, one attempt allowed) -> FAILED -> exactly one message;
 *     - the receiver down (connection refused, then HTTP 500) -> the row
 *       counts its attempts with the error and no sent_at; back up -> the
 *       message arrives once and the row is marked sent;
 *     - the webhook URL's secret path is in no log and no stored error.
 *   without_a_url_rows_stay_unsent
 *     - no CONCERT_SLACK_WEBHOOK_URL: a row stays visible, unsent,
 *       unattempted.
 *   alerts_in_a_set_write_each_dedup_key_once
 *     - concert_alerts_enqueue (the projector's confirmations) and its
 *       set of one, concert_alert_enqueue: a key taken earlier in the set
 *       or by an earlier row is not written again; NULL keys never
 *       conflict. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/ct_test_eventually.h"
#include "../support/ct_test_http.h"
#include "../support/ct_test_kafka.h"
#include "../support/ct_test_pg.h"
#include "../support/ct_test_projector.h"

static ct_config cfg;
static char run[32], dir[256], dbname[96];
static PGconn *db;

/* ---- the receiver ------------------------------------------------------------ */

#define RECEIVED_MAX 64
static struct {
    pthread_mutex_t mu;
    int status; /* what POSTs are answered with */
    int n;
    char *body[RECEIVED_MAX];
    char path[RECEIVED_MAX][256];
    char ctype[RECEIVED_MAX][64];
} rx = {.mu = PTHREAD_MUTEX_INITIALIZER, .status = 200};

typedef struct upload {
    char *p;
    size_t n;
} upload;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *data, size_t *size, void **state) {
    (void)cls, (void)version;
    upload *u = *state;
    if (!u) {
        *state = calloc(1, sizeof *u);
        return *state ? MHD_YES : MHD_NO;
    }
    if (*size) {
        char *p = realloc(u->p, u->n + *size + 1);
        if (!p) return MHD_NO;
        memcpy(p + u->n, data, *size);
        u->p = p, u->n += *size, u->p[u->n] = 0;
        *size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&rx.mu);
    int status = rx.status;
    if (status == 200 && strcmp(method, "POST") == 0 && rx.n < RECEIVED_MAX) {
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
        snprintf(rx.path[rx.n], sizeof rx.path[0], "%s", url);
        snprintf(rx.ctype[rx.n], sizeof rx.ctype[0], "%s", ct ? ct : "");
        rx.body[rx.n++] = u->p ? u->p : strdup("");
        u->p = NULL;
    }
    pthread_mutex_unlock(&rx.mu);
    const char *text = status == 200 ? "ok" : "down";
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static void on_done(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode t) {
    (void)cls, (void)c, (void)t;
    upload *u = *state;
    if (u) free(u->p), free(u);
    *state = NULL;
}

static struct MHD_Daemon *receiver_start(int port) {
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL, on_request,
                                            NULL, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
                                            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_END);
    cr_assert_not_null(d, "receiver on port %d", port);
    return d;
}

/* Messages received so far whose text contains `needle`. */
static int received_with(const char *needle) {
    int k = 0;
    pthread_mutex_lock(&rx.mu);
    for (int i = 0; i < rx.n; i++) {
        json_error_t je;
        json_t *o = json_loads(rx.body[i], 0, &je);
        const char *t = json_string_value(json_object_get(o, "text"));
        if (t && strstr(t, needle)) k++;
        json_decref(o);
    }
    pthread_mutex_unlock(&rx.mu);
    return k;
}

static void await_received(const char *needle, int timeout_ms) {
    ct_test_eventually(timeout_ms, received_with(needle) > 0, "no message with '%s' within %d ms", needle, timeout_ms);
    cr_assert_eq(received_with(needle), 1, "more than one message with '%s'", needle);
    /* And no second one for it afterwards. */
    sleep(2);
    cr_assert_eq(received_with(needle), 1, "a second message with '%s'", needle);
}

/* ---- processes and rows ------------------------------------------------------- */

static pid_t spawn(const char *sub, const char *log_path) {
    const char *argv[] = {CT_CONCERT_BIN, sub, NULL};
    return ct_test_spawn(argv, log_path);
}

static long sql_long(const char *fmt, const char *arg) {
    char sql[1024];
    snprintf(sql, sizeof sql, fmt, arg);
    return ct_test_pg_count(db, sql);
}

static char *sql_text(const char *fmt, const char *arg) {
    char sql[1024];
    snprintf(sql, sizeof sql, fmt, arg);
    PGresult *r = PQexec(db, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    char *v = strdup(PQntuples(r) && !PQgetisnull(r, 0, 0) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return v;
}

static void exec_sql(const char *fmt, const char *arg) {
    char sql[2048];
    snprintf(sql, sizeof sql, fmt, arg);
    PGresult *r = PQexec(db, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

static bool file_contains(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static void setup(void) {
    ct_test_setup_run(&cfg, "slack", run, sizeof run, dir, sizeof dir);
    snprintf(dbname, sizeof dbname, "ct_test_slack_%s", run);
    db = ct_test_pg_database(&cfg, dbname);
    ct_test_projector_start_at_ends(&cfg, db);
    char group[96];
    snprintf(group, sizeof group, "ct-test-slack-%s", run);
    setenv("CONCERT_PROJECTOR_GROUP", group, 1);
    setenv("CONCERT_SLACK_POLL_MS", "100", 1);
    setenv("CONCERT_SLACK_BACKOFF_BASE_MS", "100", 1);
    setenv("CONCERT_SLACK_BACKOFF_MAX_MS", "400", 1);
    setenv("CONCERT_LOG_LEVEL", "info", 1);
}

static void teardown(void) {
    ct_test_pg_drop(db, &cfg, dbname);
    ct_test_cleanup_run(dir);
}

Test(slack, causes_each_give_one_message_and_a_dead_receiver_is_waited_for, .init = setup, .fini = teardown,
     .timeout = 180) {
    int port = ct_test_free_port();
    char secret[64], url[256], log_p[320], log_r[320];
    snprintf(secret, sizeof secret, "XsecretX%s", run);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/services/T0/B0/%s", port, secret);
    setenv("CONCERT_SLACK_WEBHOOK_URL", url, 1);
    snprintf(log_p, sizeof log_p, "%s/projector.log", dir);
    snprintf(log_r, sizeof log_r, "%s/relay.log", dir);
    struct MHD_Daemon *rcv = receiver_start(port);
    pid_t projector = spawn("projector", log_p);

    /* 1. A confirmed reservation. */
    char rid[96], ev[1024];
    snprintf(rid, sizeof rid, "%s-res-1", run);
    snprintf(ev, sizeof ev,
             "{\"id\":\"%s-ev-1\",\"type\":\"ReservationConfirmed\",\"v\":1,\"ts\":1000,\"command_id\":\"%s-cmd-1\","
             "\"key\":\"%s-c\",\"data\":{\"reservation_id\":\"%s\",\"payment_id\":\"%s-pay\",\"concert_id\":\"%s-c\","
             "\"schedule_id\":\"1\",\"seat_no\":3,\"user_id\":\"%s-u\",\"token\":\"%s-t\",\"amount\":5000,"
             "\"terminal\":true}}",
             run, run, run, rid, run, run, run, run);
    ct_error err = {0};
    ct_kafka_producer_opts po = {.client_id = "ct-test-slack", .linger_ms = 0};
    rd_kafka_t *prod = ct_kafka_producer_new(&cfg, &po, &err);
    cr_assert(prod, "%s", err.msg);
    char key[64];
    snprintf(key, sizeof key, "%s-c", run);
    cr_assert_eq(rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(CT_TOPIC_CONCERT_EVENTS), RD_KAFKA_V_KEY(key, strlen(key)),
                                   RD_KAFKA_V_VALUE(ev, strlen(ev)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                   RD_KAFKA_V_END),
                 0);
    cr_assert_eq(rd_kafka_flush(prod, 30000), 0);
    rd_kafka_destroy(prod);
    await_received(rid, 30000);
    pthread_mutex_lock(&rx.mu);
    cr_assert(strstr(rx.path[0], secret) != NULL, "posted to the configured URL (%s)", rx.path[0]);
    cr_assert(strncmp(rx.ctype[0], "application/json", 16) == 0, "Content-Type %s", rx.ctype[0]);
    pthread_mutex_unlock(&rx.mu);
    cr_assert_eq(sql_long("SELECT count(*) FROM slack_notifications WHERE kind = 'reservation_confirmed'"
                          " AND text LIKE '%%%s%%' AND sent_at IS NOT NULL AND attempts = 1",
                          rid),
                 1);

    /* 2. An outbox row the relay cannot publish: FAILED after one attempt. */
    setenv("CONCERT_OUTBOX_MAX_ATTEMPTS", "1", 1);
    setenv("CONCERT_RELAY_PUBLISH_TIMEOUT_MS", "1000", 1);
    setenv("CONCERT_RELAY_POLL_MS", "100", 1);
    exec_sql("INSERT INTO outbox (command_id, topic, partition_key, type, payload)"
             " VALUES (gen_random_uuid(), 'ct-test-no-such-topic-%s', 'k', 'ChargeBalance', '{}')",
             run);
    char *oid = sql_text("SELECT id::text FROM outbox WHERE topic = 'ct-test-no-such-topic-%s'", run);
    pid_t relay = spawn("relay", log_r);
    char needle[64];
    snprintf(needle, sizeof needle, "Outbox row %s ", oid);
    await_received(needle, 60000);
    cr_assert_eq(sql_long("SELECT count(*) FROM outbox WHERE id = %s AND status = 'FAILED'", oid), 1);
    cr_assert_eq(sql_long("SELECT count(*) FROM slack_notifications WHERE kind = 'outbox_failed' AND text LIKE"
                          " 'Outbox row %s %%' AND sent_at IS NOT NULL",
                          oid),
                 1);
    ct_test_stop_clean(relay, "relay", log_r);
    free(oid);

    /* 3. The receiver goes away: refused connections, then HTTP 500. */
    MHD_stop_daemon(rcv);
    char down[64];
    snprintf(down, sizeof down, "down-%s", run);
    exec_sql("INSERT INTO slack_notifications (kind, text) VALUES ('test', '%s')", down);
    ct_test_eventually(
        20000, sql_long("SELECT count(*) FROM slack_notifications WHERE text = '%s' AND attempts >= 2", down) > 0,
        "no second attempt to deliver '%s' within 20 s", down);
    cr_assert_eq(sql_long("SELECT count(*) FROM slack_notifications WHERE text = '%s' AND attempts >= 2"
                          " AND sent_at IS NULL AND last_error IS NOT NULL",
                          down),
                 1, "failed attempts are counted, with their error, and nothing is marked sent");
    pthread_mutex_lock(&rx.mu);
    rx.status = 500;
    pthread_mutex_unlock(&rx.mu);
    rcv = receiver_start(port);
    ct_test_eventually(
        20000,
        sql_long("SELECT count(*) FROM slack_notifications WHERE text = '%s' AND last_error = 'HTTP 500'", down) > 0,
        "no attempt to deliver '%s' failed with HTTP 500 within 20 s", down);
    cr_assert_eq(sql_long("SELECT count(*) FROM slack_notifications WHERE text = '%s' AND last_error = 'HTTP 500'"
                          " AND sent_at IS NULL",
                          down),
                 1, "a 500 is a failed delivery");
    cr_assert_eq(received_with(down), 0);
    pthread_mutex_lock(&rx.mu);
    rx.status = 200;
    pthread_mutex_unlock(&rx.mu);
    await_received(down, 20000);
    cr_assert_eq(sql_long("SELECT count(*) FROM slack_notifications WHERE text = '%s' AND sent_at IS NOT NULL"
                          " AND attempts >= 3",
                          down),
                 1);

    /* The URL is a secret. */
    cr_assert_eq(sql_long("SELECT count(*) FROM slack_notifications WHERE last_error LIKE '%%%s%%'", secret), 0);
    ct_test_stop_clean(projector, "projector", log_p);
    cr_assert(!file_contains(log_p, secret), "the webhook URL is in the projector's log");
    cr_assert(!file_contains(log_r, secret), "the webhook URL is in the relay's log");
    cr_assert(file_contains(log_p, "delivered notification"), "the projector's log shows deliveries");
    MHD_stop_daemon(rcv);
    pthread_mutex_lock(&rx.mu);
    for (int i = 0; i < rx.n; i++) free(rx.body[i]);
    rx.n = 0;
    pthread_mutex_unlock(&rx.mu);
}

Test(slack, without_a_url_rows_stay_unsent, .init = setup, .fini = teardown, .timeout = 60) {
    unsetenv("CONCERT_SLACK_WEBHOOK_URL");
    char log_p[320], text[64];
    snprintf(log_p, sizeof log_p, "%s/projector.log", dir);
    snprintf(text, sizeof text, "kept-%s", run);
    pid_t projector = spawn("projector", log_p);
    ct_test_eventually(20000, file_contains(log_p, "notifications are kept unsent"),
                       "the projector does not say why it does not send (within 20 s)");
    exec_sql("INSERT INTO slack_notifications (kind, text) VALUES ('test', '%s')", text);
    sleep(2); /* twenty poll intervals */
    cr_assert_eq(sql_long("SELECT count(*) FROM slack_notifications WHERE text = '%s' AND sent_at IS NULL"
                          " AND attempts = 0",
                          text),
                 1);
    ct_test_stop_clean(projector, "projector", log_p);
}

Test(slack, alerts_in_a_set_write_each_dedup_key_once, .init = setup, .fini = teardown) {
    cr_assert_eq(ct_test_pg_count(db, "SELECT count(*) FROM concert_alerts_enqueue('set', ARRAY['a', 'b', 'c', 'd'],"
                                      " ARRAY['k1', 'k1', NULL, NULL])"),
                 3, "the second k1 and only it is a duplicate");
    cr_assert_eq(
        ct_test_pg_count(db, "SELECT count(*) FROM concert_alerts_enqueue('set', ARRAY['e', 'f'], ARRAY['k1', 'k2'])"),
        1, "k1 was taken by the set before");
    cr_assert_eq(ct_test_pg_count(db, "SELECT count(*) FROM (SELECT concert_alert_enqueue('set', 'g', 'k2') AS id) x"
                                      " WHERE id IS NULL"),
                 1, "one alert: a taken key gives NULL");
    cr_assert_eq(ct_test_pg_count(db, "SELECT count(*) FROM (SELECT concert_alert_enqueue('set', 'h', 'k3') AS id) x"
                                      " WHERE id IS NOT NULL"),
                 1);
    cr_assert_eq(ct_test_pg_count(db, "SELECT count(*) FROM slack_notifications WHERE kind = 'set'"
                                      " AND text = ANY (ARRAY['a', 'c', 'd', 'f', 'h'])"),
                 5);
    cr_assert_eq(ct_test_pg_count(db, "SELECT count(*) FROM slack_notifications WHERE kind = 'set'"), 5);
}
