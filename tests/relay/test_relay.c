/* `concert relay` (and `concert ingress`) as child processes against the
 * real Postgres (a database of the test's own) and the local Kafka cluster:
 * 10,000 commands from concurrent HTTP clients all SENT, each exactly once
 * in Kafka at the offset the outbox names, in id order per key; a relay
 * SIGKILLed mid-batch loses nothing; two relays, one leader, takeover;
 * a topic that cannot take records -> backoff, FAILED + Slack row, admin
 * retry -> SENT; every broker stopped -> retries, then SENT. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/ct_test_http.h"
#include "../support/ct_test_kafka.h"
#include "../support/ct_test_pg.h"
#include "ct_localkafka.h"
#include "ct_proc.h"

#define JSON "Content-Type: application/json"

static ct_config cfg, cluster_cfg; /* cluster_cfg: before the run's own data dir */
static char run[32], dir[96], dbname[64];
static PGconn *db;

static void setup(void) {
    ct_test_load_config(&cluster_cfg);
    ct_test_setup_run(&cfg, "relay", run, sizeof run, dir, sizeof dir);
    snprintf(dbname, sizeof dbname, "ct_test_relay_%s", run);
    db = ct_test_pg_database(&cfg, dbname);
    setenv("CONCERT_LOG_LEVEL", "info", 1);
}

static void teardown(void) {
    ct_test_pg_drop(db, &cfg, dbname);
    ct_test_cleanup_run(dir);
}

static const char *log_of(const char *name) {
    static char paths[4][160];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof paths[0], "%s/%s.log", dir, name);
    return p;
}

static pid_t spawn(const char *name, const char *const *argv) {
    ct_proc_opts po = {.argv = argv, .output_path = log_of(name), .output_fd = -1, .die_with_parent = true,
                       .null_stdin = true};
    ct_error err = {0};
    pid_t pid = ct_proc_spawn(&po, &err);
    cr_assert_gt(pid, 0, "%s", err.msg);
    return pid;
}

static pid_t start_relay(const char *name) {
    const char *argv[] = {CT_CONCERT_BIN, "relay", "--instance", name, NULL};
    return spawn(name, argv);
}

static long count(const char *sql) { return ct_test_pg_count(db, sql); }

static void sleep_ms(int ms) { usleep((useconds_t)ms * 1000); }

/* Waits until `sql` counts `want`, up to timeout_ms; returns the last count. */
static long wait_count(const char *sql, long want, int timeout_ms) {
    long n = -1;
    for (int t = 0; t < timeout_ms; t += 100) {
        if ((n = count(sql)) == want) return n;
        sleep_ms(100);
    }
    return n;
}

static int lines_with(const char *name, const char *what) {
    FILE *f = fopen(log_of(name), "r");
    char line[2048];
    int n = 0;
    while (f && fgets(line, sizeof line, f)) n += strstr(line, what) != NULL;
    if (f) fclose(f);
    return n;
}

/* n ChargeBalance rows straight into the outbox (keys <prefix>-0..49). */
static void insert_rows(int n, const char *topic, const char *prefix) {
    char ns[16];
    snprintf(ns, sizeof ns, "%d", n);
    const char *p[3] = {topic, prefix, ns};
    PGresult *r = PQexecParams(
        db,
        "INSERT INTO outbox (command_id, topic, partition_key, type, payload)"
        " SELECT c, $1, k, 'ChargeBalance', jsonb_build_object('id', c, 'type', 'ChargeBalance', 'v', 1, 'ts',"
        "  (extract(epoch FROM now()) * 1000)::bigint, 'command_id', c, 'key', k, 'data',"
        "  jsonb_build_object('user_id', k, 'amount', 1))"
        " FROM (SELECT gen_random_uuid() AS c, $2 || '-' || (g % 50) AS k, g FROM generate_series(1, $3::int) g) s"
        " ORDER BY g",
        3, NULL, p, NULL, NULL, 0);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s", PQresultErrorMessage(r));
    PQclear(r);
}

typedef struct seen {
    char **ids; /* sorted */
    int *hits;
    long n;
} seen;

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct placed {
    int p;
    int64_t o;
    const char *id;
} placed;

static int cmp_placed(const void *a, const void *b) {
    const placed *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? -1 : 1;
    return x->o < y->o ? -1 : x->o > y->o;
}

/* Reads back, from Kafka, every record between the lowest and highest
 * offsets the outbox recorded per partition of `topic`; counts how often
 * each outbox command_id occurs (by the record's id header), and counts the
 * recorded (partition, offset) pairs whose record is not that row's. */
static void read_back(const char *topic, seen *s, long *mismatched) {
    PGresult *r = PQexec(db, "SELECT command_id, kafka_partition, kafka_offset FROM outbox WHERE status = 'SENT' ORDER BY 1");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    s->n = PQntuples(r);
    s->ids = calloc((size_t)s->n, sizeof *s->ids);
    s->hits = calloc((size_t)s->n, sizeof *s->hits);
    placed *at = calloc((size_t)s->n, sizeof *at);
    int64_t lo[64], hi[64];
    for (int p = 0; p < 64; p++) lo[p] = INT64_MAX, hi[p] = -1;
    for (long i = 0; i < s->n; i++) {
        s->ids[i] = strdup(PQgetvalue(r, (int)i, 0));
        int p = atoi(PQgetvalue(r, (int)i, 1));
        int64_t o = strtoll(PQgetvalue(r, (int)i, 2), NULL, 10);
        cr_assert(p >= 0 && p < 64);
        if (o < lo[p]) lo[p] = o;
        if (o > hi[p]) hi[p] = o;
        at[i] = (placed){p, o, s->ids[i]};
    }
    PQclear(r);
    qsort(at, (size_t)s->n, sizeof *at, cmp_placed);
    ct_error err = {0};
    ct_kafka_consumer_opts co = {.client_id = "ct-test-relay", .group_id = "ct-test-relay-readback"};
    rd_kafka_t *c = ct_kafka_consumer_new(&cfg, &co, &err);
    cr_assert_not_null(c, "%s", err.msg);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    long expected = 0;
    for (int p = 0; p < 64; p++)
        if (hi[p] >= 0) rd_kafka_topic_partition_list_add(l, topic, p)->offset = lo[p], expected += hi[p] - lo[p] + 1;
    cr_assert_eq(rd_kafka_assign(c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    long got = 0, matched = 0;
    *mismatched = 0;
    int64_t deadline = ct_clock_mono_ms() + 60000;
    while (got < expected && ct_clock_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
        if (!m) continue;
        if (!m->err && m->partition >= 0 && m->partition < 64 && m->offset <= hi[m->partition]) {
            got++;
            rd_kafka_headers_t *h = NULL;
            const void *v = NULL;
            size_t vl = 0;
            char id[64] = {0};
            if (rd_kafka_message_headers(m, &h) == 0 && rd_kafka_header_get_last(h, "id", &v, &vl) == 0 && vl < sizeof id)
                memcpy(id, v, vl);
            char *key = id;
            char **f = bsearch(&key, s->ids, (size_t)s->n, sizeof *s->ids, cmp_str);
            if (f) s->hits[f - s->ids]++;
            placed probe = {m->partition, m->offset, NULL};
            placed *pl = bsearch(&probe, at, (size_t)s->n, sizeof *at, cmp_placed);
            if (pl) {
                matched++;
                if (strcmp(pl->id, id) != 0) (*mismatched)++;
            }
        }
        rd_kafka_message_destroy(m);
    }
    cr_assert_eq(got, expected, "read %ld of %ld records back", got, expected);
    cr_assert_eq(matched, s->n, "%ld of %ld recorded offsets read", matched, s->n);
    cr_assert_eq(*mismatched, 0, "%ld recorded offsets hold another record", *mismatched);
    ct_test_consumer_close(c);
    free(at);
}

static void seen_free(seen *s) {
    for (long i = 0; i < s->n; i++) free(s->ids[i]);
    free(s->ids);
    free(s->hits);
}

/* ---- 10,000 commands over HTTP ------------------------------------------- */

typedef struct client {
    const char *base;
    int index, count, accepted;
} client;

static void *post_charges(void *arg) {
    client *cl = arg;
    CURL *c = curl_easy_init();
    const char *h[] = {JSON, NULL};
    for (int i = 0; i < cl->count; i++) {
        char url[160];
        snprintf(url, sizeof url, "%s/v1/users/u%sx%d/balance/charge", cl->base, run, (cl->index * cl->count + i) % 40);
        ct_http_resp r;
        if (ct_http_do(c, "POST", url, h, "{\"amount\":1}", &r) == 202) cl->accepted++;
        ct_http_free(&r);
    }
    curl_easy_cleanup(c);
    return NULL;
}

Test(relay, ten_thousand_commands_are_published_once_each_in_key_order, .init = setup, .fini = teardown,
     .timeout = 300) {
    int port = 43000 + (int)(getpid() % 2000);
    char ps[16], base[64];
    snprintf(ps, sizeof ps, "%d", port);
    setenv("CONCERT_HTTP_PORT", ps, 1);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    const char *ia[] = {CT_CONCERT_BIN, "ingress", NULL};
    pid_t ingress = spawn("ingress", ia);
    pid_t relay = start_relay("r1");
    char hz[96];
    snprintf(hz, sizeof hz, "%s/healthz", base);
    ct_http_wait_ok(hz, 20000);
    enum { CLIENTS = 16, EACH = 625 };
    client cl[CLIENTS];
    pthread_t t[CLIENTS];
    int64_t t0 = ct_clock_mono_ms();
    for (int i = 0; i < CLIENTS; i++) {
        cl[i] = (client){.base = base, .index = i, .count = EACH};
        pthread_create(&t[i], NULL, post_charges, &cl[i]);
    }
    int accepted = 0;
    for (int i = 0; i < CLIENTS; i++) pthread_join(t[i], NULL), accepted += cl[i].accepted;
    int64_t posted_ms = ct_clock_mono_ms() - t0;
    cr_assert_eq(accepted, CLIENTS * EACH);
    long sent = wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", CLIENTS * EACH, 120000);
    cr_log_info("10000 POSTs in %lld ms (16 clients); all SENT after %lld ms", (long long)posted_ms,
                (long long)(ct_clock_mono_ms() - t0));
    cr_assert_eq(sent, CLIENTS * EACH, "%ld of 10000 SENT", sent);
    cr_assert_eq(count("SELECT count(*) FROM outbox"), CLIENTS * EACH);
    /* Per key: later rows at later offsets of the same partition. */
    cr_assert_eq(count("SELECT count(*) FROM (SELECT kafka_partition AS p, kafka_offset AS o,"
                       " lag(kafka_partition) OVER w AS pp, lag(kafka_offset) OVER w AS po FROM outbox"
                       " WINDOW w AS (PARTITION BY partition_key ORDER BY id)) s"
                       " WHERE pp IS NOT NULL AND (pp <> p OR o <= po)"),
                 0, "a key's rows are out of id order in Kafka");
    seen s = {0};
    long mismatched = 0;
    read_back(CT_TOPIC_WALLET_COMMANDS, &s, &mismatched);
    long missing = 0, twice = 0;
    for (long i = 0; i < s.n; i++) missing += s.hits[i] == 0, twice += s.hits[i] > 1;
    cr_assert_eq(missing, 0, "%ld commands not in Kafka", missing);
    cr_assert_eq(twice, 0, "%ld commands in Kafka more than once", twice);
    seen_free(&s);
    cr_assert_gt(lines_with("r1", "leader instance=r1"), 0);
    ct_test_stop_clean(relay, "the relay", log_of("r1"));
    ct_test_stop_clean(ingress, "the ingress", log_of("ingress"));
}

Test(relay, a_relay_killed_mid_batch_loses_nothing, .init = setup, .fini = teardown, .timeout = 300) {
    enum { N = 20000 };
    insert_rows(N, CT_TOPIC_WALLET_COMMANDS, run);
    setenv("CONCERT_RELAY_BATCH_MAX", "500", 1);
    pid_t relay = start_relay("k1");
    for (int t = 0; t < 60000 && count("SELECT count(*) FROM outbox WHERE status = 'SENT'") < 3000; t += 20) sleep_ms(20);
    kill(relay, SIGKILL);
    waitpid(relay, NULL, 0);
    long at_kill = count("SELECT count(*) FROM outbox WHERE status = 'SENT'");
    cr_assert_lt(at_kill, N, "the kill came after the end");
    relay = start_relay("k2");
    long sent = wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", N, 120000);
    cr_assert_eq(sent, N, "%ld of %d SENT after the restart", sent, N);
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE status <> 'SENT'"), 0);
    seen s = {0};
    long mismatched = 0;
    read_back(CT_TOPIC_WALLET_COMMANDS, &s, &mismatched);
    long missing = 0, extra = 0;
    for (long i = 0; i < s.n; i++) missing += s.hits[i] == 0, extra += s.hits[i] > 1 ? s.hits[i] - 1 : 0;
    cr_log_info("killed at %ld SENT; after restart: missing=%ld republished (same id)=%ld", at_kill, missing, extra);
    cr_assert_eq(missing, 0);
    seen_free(&s);
    ct_test_stop_clean(relay, "the relay", log_of("k2"));
}

Test(relay, two_relays_one_leader_and_a_takeover, .init = setup, .fini = teardown, .timeout = 300) {
    pid_t a = start_relay("a"), b = start_relay("b");
    insert_rows(500, CT_TOPIC_WALLET_COMMANDS, run);
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", 500, 60000), 500);
    int la = lines_with("a", "leader instance="), lb = lines_with("b", "leader instance=");
    cr_assert_eq(la + lb, 1, "exactly one leader: a=%d b=%d", la, lb);
    pid_t leader = la ? a : b, standby = la ? b : a;
    const char *standby_name = la ? "b" : "a";
    cr_assert_eq(lines_with(standby_name, "standby instance="), 1);
    kill(leader, SIGKILL);
    waitpid(leader, NULL, 0);
    int64_t t0 = ct_clock_mono_ms();
    while (lines_with(standby_name, "leader instance=") == 0 && ct_clock_mono_ms() - t0 < 30000) sleep_ms(50);
    cr_assert_eq(lines_with(standby_name, "leader instance="), 1, "the standby never took over");
    cr_log_info("takeover %lld ms after the leader's SIGKILL", (long long)(ct_clock_mono_ms() - t0));
    insert_rows(500, CT_TOPIC_WALLET_COMMANDS, run);
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", 1000, 60000), 1000);
    ct_test_stop_clean(standby, "the surviving relay", log_of(standby_name));
}

static void create_topic(const char *name) {
    ct_error err = {0};
    rd_kafka_t *rk = ct_kafka_admin_new(&cfg, "ct-test-relay-admin", &err);
    cr_assert_not_null(rk);
    char es[256];
    rd_kafka_NewTopic_t *t = rd_kafka_NewTopic_new(name, 3, 3, es, sizeof es);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &t, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    cr_assert_not_null(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(rd_kafka_topic_result_error(res[0]), 0, "%s", rd_kafka_topic_result_error_string(res[0]));
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(t);
    rd_kafka_destroy(rk);
}

Test(relay, a_persistent_failure_becomes_FAILED_with_a_slack_row_and_an_admin_retry_sends_it, .init = setup,
     .fini = teardown, .timeout = 300) {
    char topic[64];
    snprintf(topic, sizeof topic, "ct-test-missing-%s", run);
    setenv("CONCERT_OUTBOX_MAX_ATTEMPTS", "3", 1);
    setenv("CONCERT_RELAY_BACKOFF_BASE_MS", "200", 1);
    setenv("CONCERT_RELAY_BACKOFF_MAX_MS", "400", 1);
    setenv("CONCERT_RELAY_PUBLISH_TIMEOUT_MS", "1000", 1);
    setenv("CONCERT_RELAY_POLL_MS", "100", 1);
    pid_t relay = start_relay("f");
    insert_rows(1, topic, run);
    insert_rows(5, CT_TOPIC_WALLET_COMMANDS, run);
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox WHERE status = 'FAILED'", 1, 60000), 1, "no row FAILED");
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE status = 'FAILED' AND attempts = 3 AND last_error <> ''"), 1);
    cr_assert_eq(count("SELECT count(*) FROM slack_notifications WHERE kind = 'outbox_failed' AND sent_at IS NULL"), 1);
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", 5, 30000), 5,
                 "a failing row of another topic blocked the rest");
    /* The cause fixed, the operator re-drives the row. */
    create_topic(topic);
    PGresult *r = PQexec(db, "SELECT id FROM outbox WHERE status = 'FAILED'");
    const char *argv[] = {CT_CONCERT_BIN, "outbox", "retry", PQgetvalue(r, 0, 0), NULL};
    ct_proc_opts po = {.argv = argv, .output_path = log_of("retry"), .output_fd = -1, .null_stdin = true};
    ct_error err = {0};
    cr_assert_eq(ct_proc_run(&po, 30000, &err), 0, "concert outbox retry: %s", err.msg);
    PQclear(r);
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", 6, 60000), 6, "the re-driven row was not sent");
    cr_assert_eq(count("SELECT count(*) FROM slack_notifications"), 1, "one alert only");
    ct_test_stop_clean(relay, "the relay", log_of("f"));
}

Test(relay, with_every_broker_stopped_rows_wait_and_are_sent_once_the_cluster_is_back, .init = setup,
     .fini = teardown, .timeout = 400) {
    if (cluster_cfg.kafka_brokers[0]) cr_skip_test("stops the local cluster: runs only on the one scripts/test starts");
    setenv("CONCERT_OUTBOX_MAX_ATTEMPTS", "1000", 1);
    setenv("CONCERT_RELAY_BACKOFF_BASE_MS", "100", 1);
    setenv("CONCERT_RELAY_BACKOFF_MAX_MS", "1000", 1);
    setenv("CONCERT_RELAY_PUBLISH_TIMEOUT_MS", "2000", 1);
    pid_t relay = start_relay("o");
    insert_rows(100, CT_TOPIC_WALLET_COMMANDS, run);
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", 100, 60000), 100);
    ct_error err = {0};
    cr_assert_eq(ct_localkafka_stop(&cluster_cfg, &err), 0, "%s", err.msg);
    insert_rows(300, CT_TOPIC_WALLET_COMMANDS, run);
    long retried = 0;
    for (int t = 0; t < 30000 && retried == 0; t += 200) {
        retried = count("SELECT count(*) FROM outbox WHERE status = 'PENDING' AND attempts > 0 AND last_error IS NOT NULL");
        sleep_ms(200);
    }
    cr_assert_gt(retried, 0, "no failed attempt recorded while the brokers were down");
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE status = 'SENT'"), 100);
    cr_assert_eq(ct_localkafka_start(&cluster_cfg, &err), 0, "%s %s", err.msg, err.detail);
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", 400, 120000), 400,
                 "rows not sent after the cluster came back");
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE status = 'FAILED'"), 0);
    cr_log_info("rows retried during the outage: %ld; max attempts of a row: %ld", retried,
                count("SELECT max(attempts) FROM outbox"));
    seen s = {0};
    long mismatched = 0;
    read_back(CT_TOPIC_WALLET_COMMANDS, &s, &mismatched);
    long missing = 0;
    for (long i = 0; i < s.n; i++) missing += s.hits[i] == 0;
    cr_assert_eq(missing, 0);
    seen_free(&s);
    ct_test_stop_clean(relay, "the relay", log_of("o"));
}
