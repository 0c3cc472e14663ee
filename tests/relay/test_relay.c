/* `concert relay` (and `concert ingress`) as child processes against the
 * real Postgres (a database of the test's own) and the local Kafka cluster:
 * 10,000 commands from concurrent HTTP clients all SENT, each exactly once
 * in Kafka at the offset the outbox names, in id order per key; a relay
 * SIGKILLed mid-batch loses nothing and republishes only byte-identical
 * records; two relays, one leader, takeover; the leader ticks every
 * partition of concert.commands at its cadence and a standby does not; a
 * topic that cannot take records -> growing backoff, FAILED + Slack row,
 * admin retry -> SENT; every broker stopped -> retries, then SENT; the broker
 * leading the topic killed -> SENT once each after leadership moves. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/ct_test_eventually.h"
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
    ct_proc_opts po = {
        .argv = argv, .output_path = log_of(name), .output_fd = -1, .die_with_parent = true, .null_stdin = true};
    ct_error err = {0};
    pid_t pid = ct_proc_spawn(&po, &err);
    cr_assert_gt(pid, 0, "%s", err.msg);
    return pid;
}

static pid_t start_relay(const char *name) {
    const char *argv[] = {CT_CONCERT_BIN, "relay", "--instance", name, NULL};
    return spawn(name, argv);
}

/* The relay's retry settings for a test that makes publishing fail. */
static void set_retries(const char *max_attempts, const char *backoff_base_ms, const char *backoff_max_ms,
                        const char *publish_timeout_ms) {
    setenv("CONCERT_OUTBOX_MAX_ATTEMPTS", max_attempts, 1);
    setenv("CONCERT_RELAY_BACKOFF_BASE_MS", backoff_base_ms, 1);
    setenv("CONCERT_RELAY_BACKOFF_MAX_MS", backoff_max_ms, 1);
    setenv("CONCERT_RELAY_PUBLISH_TIMEOUT_MS", publish_timeout_ms, 1);
}

static long count(const char *sql) { return ct_test_pg_count(db, sql); }

static void exec_ok(const char *sql) {
    PGresult *r = PQexec(db, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

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

#define TICK_PARTS_MAX 64

/* The partition count of `topic` and each partition's end (high
 * watermark), through rk (an admin handle kept by a caller that asks often)
 * or a handle of its own when rk is NULL. */
static int end_offsets_with(rd_kafka_t *rk, const char *topic, int64_t *end, int end_cap) {
    ct_error err = {0};
    rd_kafka_t *own = rk ? NULL : ct_kafka_admin_new(&cfg, "ct-test-relay-offsets", &err);
    if (!rk) cr_assert_not_null(rk = own, "%s", err.msg);
    int parts = 0, replicas = 0, isr = 0;
    cr_assert_eq(ct_kafka_describe_topic(rk, topic, &parts, &replicas, &isr, 10000, &err), 0, "%s", err.msg);
    cr_assert(parts > 0 && parts <= end_cap, "%s has %d partitions", topic, parts);
    for (int p = 0; p < parts; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e;
        /* A leader moving (the brokers' preferred-leader rebalance after an
         * earlier test's broker restart) answers NOT_LEADER until librdkafka
         * has the new metadata: ask again for up to 10 s. */
        for (int64_t until = ct_clock_mono_ms() + 10000;;) {
            e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
            if ((e != RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION && e != RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) ||
                ct_clock_mono_ms() >= until)
                break;
            usleep(200 * 1000);
        }
        cr_assert_eq(e, RD_KAFKA_RESP_ERR_NO_ERROR, "watermarks of %s [%d]: %s", topic, p, rd_kafka_err2str(e));
        end[p] = hi;
    }
    if (own) rd_kafka_destroy(own);
    return parts;
}

static int end_offsets(const char *topic, int64_t *end, int end_cap) {
    return end_offsets_with(NULL, topic, end, end_cap);
}

typedef struct seen {
    char **ids;      /* sorted */
    char **payloads; /* the rows' payload::text, what the relay publishes */
    int *hits;
    long n;
    /* Records in the read range whose key is this run's (the topics are
     * shared: other tests' records sit between ours). */
    long run_records, duplicates;
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
 * recorded (partition, offset) pairs whose record is not that row's. Every
 * record in the range whose key starts with `run_key_prefix` belongs to this
 * run: it must carry an outbox row's id and be byte for byte that row's
 * payload, so a duplicate is only ever the same record again. */
static void read_back(const char *topic, const char *run_key_prefix, seen *s, long *mismatched) {
    PGresult *r = PQexec(db, "SELECT command_id, kafka_partition, kafka_offset, payload::text FROM outbox"
                             " WHERE status = 'SENT' ORDER BY 1");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    s->n = PQntuples(r);
    s->ids = calloc((size_t)s->n, sizeof *s->ids);
    s->payloads = calloc((size_t)s->n, sizeof *s->payloads);
    s->hits = calloc((size_t)s->n, sizeof *s->hits);
    placed *at = calloc((size_t)s->n, sizeof *at);
    int64_t lo[64], hi[64];
    for (int p = 0; p < 64; p++) lo[p] = INT64_MAX, hi[p] = -1;
    for (long i = 0; i < s->n; i++) {
        s->ids[i] = strdup(PQgetvalue(r, (int)i, 0));
        s->payloads[i] = strdup(PQgetvalue(r, (int)i, 3));
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
    int parts = 0, reached = 0;
    bool at_hi[64] = {0};
    for (int p = 0; p < 64; p++)
        if (hi[p] >= 0)
            rd_kafka_topic_partition_list_add(l, topic, p)->offset = lo[p], expected += hi[p] - lo[p] + 1, parts++;
    cr_assert_eq(rd_kafka_assign(c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    long got = 0, matched = 0, unknown = 0, altered = 0;
    size_t prefix_len = strlen(run_key_prefix);
    char first_unknown[200] = "";
    s->run_records = s->duplicates = 0;
    *mismatched = 0;
    int64_t deadline = ct_clock_mono_ms() + 60000;
    /* Until each partition's highest recorded offset, which holds a record
     * of ours; offsets of other writers' transaction markers in between are
     * never delivered, so fewer records than offsets may come back. */
    while (reached < parts && ct_clock_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
        if (!m) continue;
        if (!m->err && m->partition >= 0 && m->partition < 64 && m->offset <= hi[m->partition]) {
            got++;
            if (m->offset == hi[m->partition] && !at_hi[m->partition]) at_hi[m->partition] = true, reached++;
            rd_kafka_headers_t *h = NULL;
            const void *v = NULL;
            size_t vl = 0;
            char id[64] = {0};
            if (rd_kafka_message_headers(m, &h) == 0 && rd_kafka_header_get_last(h, "id", &v, &vl) == 0 &&
                vl < sizeof id)
                memcpy(id, v, vl);
            char *key = id;
            char **f = bsearch(&key, s->ids, (size_t)s->n, sizeof *s->ids, cmp_str);
            if (f) s->hits[f - s->ids]++;
            if (m->key && m->key_len > prefix_len && memcmp(m->key, run_key_prefix, prefix_len) == 0) {
                s->run_records++;
                if (!f) {
                    if (unknown++ == 0)
                        snprintf(first_unknown, sizeof first_unknown,
                                 "partition %d offset %" PRId64 " key %.*s id '%s'", (int)m->partition,
                                 (int64_t)m->offset, (int)m->key_len, (const char *)m->key, id);
                } else {
                    const char *want = s->payloads[f - s->ids];
                    if (m->len != strlen(want) || memcmp(m->payload, want, m->len) != 0) altered++;
                    if (s->hits[f - s->ids] > 1) s->duplicates++;
                }
            }
            placed probe = {m->partition, m->offset, NULL};
            placed *pl = bsearch(&probe, at, (size_t)s->n, sizeof *at, cmp_placed);
            if (pl) {
                matched++;
                if (strcmp(pl->id, id) != 0) (*mismatched)++;
            }
        }
        rd_kafka_message_destroy(m);
    }
    cr_assert_eq(reached, parts, "read back to the last recorded offset of %d of %d partitions (%ld of %ld offsets)",
                 reached, parts, got, expected);
    cr_assert_leq(got, expected);
    cr_assert_eq(matched, s->n, "%ld of %ld recorded offsets read", matched, s->n);
    cr_assert_eq(*mismatched, 0, "%ld recorded offsets hold another record", *mismatched);
    cr_assert_eq(unknown, 0, "%ld of this run's records carry no outbox row's id (first: %s)", unknown, first_unknown);
    cr_assert_eq(altered, 0, "%ld of this run's records differ from their outbox row's payload", altered);
    cr_assert_geq(s->run_records, s->n, "only %ld of this run's records for %ld SENT rows", s->run_records, s->n);
    ct_test_consumer_close(c);
    free(at);
}

static void seen_free(seen *s) {
    for (long i = 0; i < s->n; i++) free(s->ids[i]), free(s->payloads[i]);
    free(s->ids);
    free(s->payloads);
    free(s->hits);
}

/* Every outbox row of this run (keys starting with run_key_prefix) is in
 * wallet.commands: exactly once, except the rows retry_sql lists (command
 * ids of rows whose publish was retried), which may be there more than once:
 * a publish that timed out after the broker had written it is sent again,
 * with the same id and bytes (read_back checks those), as at-least-once
 * publication allows. Returns how many rows were there more than once. */
static long assert_sent(const char *run_key_prefix, const char *retry_sql) {
    seen s = {0};
    long mismatched = 0;
    read_back(CT_TOPIC_WALLET_COMMANDS, run_key_prefix, &s, &mismatched);
    PGresult *r = NULL;
    if (retry_sql) {
        r = PQexec(db, retry_sql);
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(db));
    }
    long missing = 0, twice = 0, twice_unretried = 0;
    for (long i = 0; i < s.n; i++) {
        missing += s.hits[i] == 0;
        if (s.hits[i] <= 1) continue;
        twice++;
        bool retried = false;
        for (int k = 0; r && k < PQntuples(r) && !retried; k++) retried = strcmp(PQgetvalue(r, k, 0), s.ids[i]) == 0;
        twice_unretried += !retried;
    }
    if (r) PQclear(r);
    cr_assert_eq(missing, 0, "%ld rows not in Kafka", missing);
    cr_assert_eq(twice_unretried, 0, "%ld rows in Kafka more than once without a retried publish", twice_unretried);
    seen_free(&s);
    return twice;
}

static void assert_each_once(const char *run_key_prefix) { assert_sent(run_key_prefix, NULL); }

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
    int port = 31000 + (int)(getpid() % 1000); /* below the ephemeral ports, as in test_up */
    char ps[16], base[64];
    snprintf(ps, sizeof ps, "%d", port);
    setenv("CONCERT_HTTP_PORT", ps, 1);
    /* 10,000 writes of 40 users in seconds: the relay's test, not the rate limit's. */
    setenv("CONCERT_RATE_USER_WRITES", "0", 1);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    const char *ia[] = {CT_CONCERT_BIN, "ingress", NULL};
    ct_test_auth_env();
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
    char user_prefix[48];
    snprintf(user_prefix, sizeof user_prefix, "u%sx", run);
    assert_each_once(user_prefix);
    cr_assert_gt(lines_with("r1", "leader instance=r1"), 0);
    ct_test_stop_clean(relay, "the relay", log_of("r1"));
    ct_test_stop_clean(ingress, "the ingress", log_of("ingress"));
}

Test(relay, a_relay_killed_mid_batch_loses_nothing, .init = setup, .fini = teardown, .timeout = 300) {
    enum { N = 20000, BATCH = 500 };
    insert_rows(N, CT_TOPIC_WALLET_COMMANDS, run);
    char batch[16];
    snprintf(batch, sizeof batch, "%d", BATCH);
    setenv("CONCERT_RELAY_BATCH_MAX", batch, 1);
    /* Kill in the middle of a batch: once one partition holds more of this
     * run's records than the outbox has marked SENT there (a batch
     * published, not yet recorded). One partition, so that each look is a
     * single round trip against a window of some milliseconds. Its end
     * counts every writer's records: another test writing to it meanwhile
     * can only bring the kill early. */
    int64_t base[TICK_PARTS_MAX];
    end_offsets(CT_TOPIC_WALLET_COMMANDS, base, TICK_PARTS_MAX);
    ct_error err = {0};
    rd_kafka_t *admin = ct_kafka_admin_new(&cfg, "ct-test-relay-offsets", &err);
    cr_assert_not_null(admin, "%s", err.msg);
    pid_t relay = start_relay("k1");
    int watched = -1;
    long marked = 0, in_kafka = 0;
    char marked_sql[128];
    for (int64_t until = ct_clock_mono_ms() + 60000; ct_clock_mono_ms() < until;) {
        if (watched < 0) {
            if (count("SELECT count(*) FROM outbox WHERE status = 'SENT'") < 3000) {
                sleep_ms(1);
                continue;
            }
            watched = (int)count("SELECT kafka_partition FROM outbox WHERE status = 'SENT' ORDER BY id LIMIT 1");
            cr_assert(watched >= 0 && watched < TICK_PARTS_MAX);
            snprintf(marked_sql, sizeof marked_sql,
                     "SELECT count(*) FROM outbox WHERE status = 'SENT' AND kafka_partition = %d", watched);
        }
        int64_t lo = 0, hi = 0;
        cr_assert_eq(rd_kafka_query_watermark_offsets(admin, CT_TOPIC_WALLET_COMMANDS, watched, &lo, &hi, 10000), 0);
        in_kafka = hi - base[watched];
        marked = count(marked_sql);
        if (in_kafka >= marked + 5 || count("SELECT count(*) FROM outbox WHERE status = 'SENT'") >= N - BATCH) break;
    }
    kill(relay, SIGKILL);
    waitpid(relay, NULL, 0);
    rd_kafka_destroy(admin);
    long at_kill = count("SELECT count(*) FROM outbox WHERE status = 'SENT'");
    cr_assert_lt(at_kill, N, "the kill came after the end");
    relay = start_relay("k2");
    long sent = wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", N, 120000);
    cr_assert_eq(sent, N, "%ld of %d SENT after the restart", sent, N);
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE status <> 'SENT'"), 0);
    seen s = {0};
    long mismatched = 0;
    char key_prefix[48];
    snprintf(key_prefix, sizeof key_prefix, "%s-", run);
    /* read_back also holds every record of this run's keys in the range to
     * a known row id and that row's exact payload. */
    read_back(CT_TOPIC_WALLET_COMMANDS, key_prefix, &s, &mismatched);
    long missing = 0, extra = 0, rows_twice = 0;
    for (long i = 0; i < s.n; i++)
        missing += s.hits[i] == 0, extra += s.hits[i] > 1 ? s.hits[i] - 1 : 0, rows_twice += s.hits[i] > 1;
    cr_log_info("killed at %ld SENT (partition %d: %ld marked, %ld records in Kafka just before); after restart:"
                " %ld records of this run for %ld rows, missing=%ld, duplicates (same id, same bytes)=%ld of %ld rows",
                at_kill, watched, marked, in_kafka, s.run_records, s.n, missing, extra, rows_twice);
    cr_assert_eq(missing, 0);
    /* Every record of this run is a row's first copy or a repeat of it. */
    cr_assert_eq(s.run_records, s.n + extra, "%ld records of this run, %ld rows, %ld repeats", s.run_records, s.n,
                 extra);
    cr_assert_eq(s.duplicates, extra);
    /* Only the batch in flight at the kill (published, not yet marked SENT)
     * can repeat: at most CONCERT_RELAY_BATCH_MAX rows. */
    cr_assert_leq(rows_twice, BATCH, "%ld rows published twice; one batch is %d", rows_twice, BATCH);
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
    ct_test_eventually(30000, lines_with(standby_name, "leader instance=") > 0,
                       "the standby did not take over within 30 s");
    cr_assert_eq(lines_with(standby_name, "leader instance="), 1, "the standby took over more than once");
    cr_log_info("takeover %lld ms after the leader's SIGKILL", (long long)(ct_clock_mono_ms() - t0));
    insert_rows(500, CT_TOPIC_WALLET_COMMANDS, run);
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", 1000, 60000), 1000);
    ct_test_stop_clean(standby, "the surviving relay", log_of(standby_name));
}

/* Retention runs in the leader: rows it published go once they are older
 * than CONCERT_OUTBOX_RETENTION_S, rows just published stay. */
Test(relay, the_leader_deletes_SENT_rows_past_the_retention, .init = setup, .fini = teardown, .timeout = 120) {
    setenv("CONCERT_OUTBOX_RETENTION_S", "3600", 1);
    insert_rows(300, CT_TOPIC_WALLET_COMMANDS, run);
    pid_t relay = start_relay("a");
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", 300, 60000), 300);
    /* Their publication two hours ago, as far as retention can tell. */
    exec_ok("UPDATE outbox SET sent_at = sent_at - interval '2 hours'"
            " WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 200)");
    ct_test_stop_clean(relay, "the relay", log_of("a"));
    insert_rows(50, CT_TOPIC_WALLET_COMMANDS, run);
    relay = start_relay("b"); /* a new leader's first pass runs at once */
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox", 150, 60000), 150);
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", 150, 60000), 150);
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE sent_at < now() - interval '1 hour'"), 0);
    cr_assert_eq(lines_with("b", "retention: deleted 200 SENT rows"), 1);
    ct_test_stop_clean(relay, "the relay", log_of("b"));
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
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
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
    /* Delays before attempts 2, 3, 4 and after the last: 300 * 2^k capped
     * at 1200 ms, jittered into [step / 2, step]. */
    enum { ATTEMPTS = 4, BASE_MS = 300, MAX_MS = 1200 };
    set_retries("4", "300", "1200", "1000");
    setenv("CONCERT_RELAY_POLL_MS", "100", 1);
    pid_t relay = start_relay("f");
    insert_rows(1, topic, run);
    insert_rows(5, CT_TOPIC_WALLET_COMMANDS, run);
    /* Watch the failing row: right after each failure, how long until its
     * next attempt is due (left_ms, never more than the delay the relay
     * chose), and when that is (at_ms). */
    double left_ms[ATTEMPTS + 1] = {0}, at_ms[ATTEMPTS + 1] = {0};
    bool seen_attempt[ATTEMPTS + 1] = {0};
    char q[256];
    snprintf(q, sizeof q,
             "SELECT attempts, status, extract(epoch FROM next_attempt_at - clock_timestamp()) * 1000,"
             " extract(epoch FROM next_attempt_at) * 1000 FROM outbox WHERE topic = '%s'",
             topic);
    bool failed = false;
    for (int64_t until = ct_clock_mono_ms() + 60000; !failed && ct_clock_mono_ms() < until;) {
        PGresult *w = PQexec(db, q);
        cr_assert_eq(PQresultStatus(w), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(w));
        cr_assert_eq(PQntuples(w), 1);
        int a = atoi(PQgetvalue(w, 0, 0));
        cr_assert_leq(a, ATTEMPTS, "attempts went past CONCERT_OUTBOX_MAX_ATTEMPTS");
        if (a > 0 && !seen_attempt[a])
            seen_attempt[a] = true, left_ms[a] = atof(PQgetvalue(w, 0, 2)), at_ms[a] = atof(PQgetvalue(w, 0, 3));
        failed = strcmp(PQgetvalue(w, 0, 1), "FAILED") == 0;
        PQclear(w);
        if (!failed) sleep_ms(10);
    }
    cr_assert(failed, "no row FAILED");
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE status = 'FAILED' AND attempts = 4 AND last_error <> ''"), 1);
    cr_log_info("after failures 1..4 the next attempt was due in %.0f, %.0f, %.0f, %.0f ms", left_ms[1], left_ms[2],
                left_ms[3], left_ms[4]);
    for (int a = 1; a <= ATTEMPTS; a++) {
        cr_assert(seen_attempt[a], "attempt %d never seen (attempts jumped)", a);
        /* The delay after failure a is at most base * 2^(a-1), capped. */
        double step = BASE_MS << (a - 1);
        if (step > MAX_MS) step = MAX_MS;
        cr_assert_leq(left_ms[a], step + 1, "after failure %d the next attempt was %.0f ms away, the step is %.0f", a,
                      left_ms[a], step);
        if (a > 1) cr_assert_gt(at_ms[a], at_ms[a - 1], "next_attempt_at did not move later at attempt %d", a);
    }
    /* Two doublings apart the jittered ranges no longer touch: [150, 300]
     * after the first failure, [600, 1200] after the third and fourth. The
     * 100 ms margin leaves 200 ms for this loop to notice a failure late. */
    cr_assert_gt(left_ms[3], left_ms[1] + 100, "backoff did not grow: %.0f then %.0f ms", left_ms[1], left_ms[3]);
    cr_assert_gt(left_ms[4], left_ms[1] + 100, "backoff did not grow: %.0f then %.0f ms", left_ms[1], left_ms[4]);
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
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", 6, 60000), 6,
                 "the re-driven row was not sent");
    cr_assert_eq(count("SELECT count(*) FROM slack_notifications"), 1, "one alert only");
    ct_test_stop_clean(relay, "the relay", log_of("f"));
}

/* Per-key order through a failure: a key whose first row waits out its
 * backoff holds the key's later rows back (parked: retry_at set, never
 * attempted) while other keys go on; once the first row goes out, the
 * parked ones follow it in id order. */
Test(relay, a_key_in_backoff_parks_its_later_rows_and_they_follow_in_order, .init = setup, .fini = teardown,
     .timeout = 300) {
    char topic[64], q[512];
    snprintf(topic, sizeof topic, "ct-test-late-%s", run);
    set_retries("1000", "4000", "4000", "1000");
    setenv("CONCERT_RELAY_POLL_MS", "100", 1);
    pid_t relay = start_relay("k");
    insert_rows(1, topic, run); /* key <run>-1, to a topic that does not exist yet */
    snprintf(q, sizeof q, "SELECT count(*) FROM outbox WHERE topic = '%s' AND attempts >= 1", topic);
    cr_assert_eq(wait_count(q, 1, 30000), 1, "the first row never failed");
    for (int i = 0; i < 3; i++) insert_rows(1, topic, run); /* the same key */
    insert_rows(5, CT_TOPIC_WALLET_COMMANDS, run);
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", 5, 30000), 5,
                 "a key in backoff held other keys back");
    snprintf(q, sizeof q,
             "SELECT count(*) FROM outbox WHERE topic = '%s' AND attempts = 0 AND retry_at IS NOT NULL"
             " AND status = 'PENDING'",
             topic);
    cr_assert_eq(wait_count(q, 3, 2000), 3, "the key's later rows were not parked behind its first");
    snprintf(q, sizeof q, "SELECT count(*) FROM outbox WHERE topic = '%s' AND attempts = 1 AND retry_at > now()",
             topic);
    cr_assert_eq(count(q), 1, "the first row was no longer waiting: the test saw nothing");
    create_topic(topic);
    snprintf(q, sizeof q, "SELECT count(*) FROM outbox WHERE topic = '%s' AND status = 'SENT'", topic);
    cr_assert_eq(wait_count(q, 4, 60000), 4, "the key's rows were not all sent");
    snprintf(q, sizeof q,
             "SELECT count(*) FROM (SELECT kafka_partition, kafka_offset, lag(kafka_offset) OVER (ORDER BY id) AS prev,"
             " lag(kafka_partition) OVER (ORDER BY id) AS prev_p FROM outbox WHERE topic = '%s') x"
             " WHERE prev IS NOT NULL AND (kafka_offset <= prev OR kafka_partition <> prev_p)",
             topic);
    cr_assert_eq(count(q), 0, "the key's rows reached Kafka out of id order");
    ct_test_stop_clean(relay, "the relay", log_of("k"));
}

/* A relay that retries quickly and never gives a row up, with 100 rows
 * SENT through it before the outage a test is about to cause. */
/* A publish gives up after 1 s: the killed broker is fenced, and its
 * partitions get a new leader, only when its 6 s session runs out, 4-6 s
 * after the kill (it heartbeats every 2 s), so the first attempt at a row
 * written after the kill must fail inside that window even when a tick to
 * the dead broker's partitions holds the relay for its own second first.
 * With 2 s, one CI run saw every row's first attempt succeed (0 retried). */
static pid_t start_relay_for_outage(const char *name) {
    set_retries("1000", "100", "1000", "1000");
    pid_t relay = start_relay(name);
    insert_rows(100, CT_TOPIC_WALLET_COMMANDS, run);
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", 100, 60000), 100);
    return relay;
}

Test(relay, with_every_broker_stopped_rows_wait_and_are_sent_once_the_cluster_is_back, .init = setup, .fini = teardown,
     .timeout = 400) {
    if (cluster_cfg.kafka_brokers[0]) cr_skip_test("stops the local cluster: runs only on the one scripts/test starts");
    pid_t relay = start_relay_for_outage("o");
    ct_error err = {0};
    cr_assert_eq(ct_localkafka_stop(&cluster_cfg, &err), 0, "%s", err.msg);
    insert_rows(300, CT_TOPIC_WALLET_COMMANDS, run);
    long retried = 0;
    ct_test_eventually(30000,
                       (retried = count("SELECT count(*) FROM outbox WHERE status = 'PENDING' AND attempts > 0"
                                        " AND last_error IS NOT NULL")) > 0,
                       "no failed attempt recorded within 30 s while the brokers were down");
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE status = 'SENT'"), 100);
    cr_assert_eq(ct_localkafka_start(&cluster_cfg, &err), 0, "%s %s", err.msg, err.detail);
    cr_assert_eq(wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", 400, 120000), 400,
                 "rows not sent after the cluster came back");
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE status = 'FAILED'"), 0);
    cr_log_info("rows retried during the outage: %ld; max attempts of a row: %ld", retried,
                count("SELECT max(attempts) FROM outbox"));
    seen s = {0};
    long mismatched = 0;
    char key_prefix[48];
    snprintf(key_prefix, sizeof key_prefix, "%s-", run);
    read_back(CT_TOPIC_WALLET_COMMANDS, key_prefix, &s, &mismatched);
    long missing = 0;
    for (long i = 0; i < s.n; i++) missing += s.hits[i] == 0;
    cr_assert_eq(missing, 0);
    seen_free(&s);
    ct_test_stop_clean(relay, "the relay", log_of("o"));
}

/* ---- the ticker ----------------------------------------------------------- */

/* The Tick records of concert.commands from given offsets to the end. */
typedef struct tick_log {
    int parts;
    int64_t *ts[TICK_PARTS_MAX]; /* per partition, in offset order */
    int n[TICK_PARTS_MAX], cap[TICK_PARTS_MAX];
    int64_t end[TICK_PARTS_MAX]; /* where reading stopped */
    long bad;                    /* Ticks whose id, partition or envelope disagree */
    char first_bad[256];
} tick_log;

static void tick_bad(tick_log *t, const rd_kafka_message_t *m, const char *id, const char *why) {
    if (t->bad++ == 0)
        snprintf(t->first_bad, sizeof t->first_bad, "partition %d offset %" PRId64 " id '%s': %s", (int)m->partition,
                 (int64_t)m->offset, id, why);
}

/* Checks one Tick against what relay/ct_relay.c writes: header id
 * tick:<partition>:<ts>, sent to that partition, and a DESIGN.md section 3
 * envelope with the same id and ts, type Tick, v 1, an empty data object. */
static void tick_add(tick_log *t, const rd_kafka_message_t *m, const char *id) {
    int p = -1, used = 0;
    long long ts = 0;
    if (sscanf(id, "tick:%d:%lld%n", &p, &ts, &used) != 2 || id[used] != 0 || ts <= 0) {
        tick_bad(t, m, id, "id is not tick:<partition>:<ts>");
        return;
    }
    if (p != m->partition) {
        tick_bad(t, m, id, "id names another partition");
        return;
    }
    json_error_t je;
    json_t *v = json_loadb(m->payload, m->len, 0, &je);
    if (!v) {
        tick_bad(t, m, id, "value is not JSON");
        return;
    }
    json_t *vid = json_object_get(v, "id"), *vts = json_object_get(v, "ts"), *data = json_object_get(v, "data");
    bool ok = json_is_string(vid) && strcmp(json_string_value(vid), id) == 0 && json_is_integer(vts) &&
              json_integer_value(vts) == ts && json_is_string(json_object_get(v, "type")) &&
              strcmp(json_string_value(json_object_get(v, "type")), "Tick") == 0 &&
              json_is_integer(json_object_get(v, "v")) && json_integer_value(json_object_get(v, "v")) == 1 &&
              json_is_object(data) && json_object_size(data) == 0;
    json_decref(v);
    if (!ok) {
        tick_bad(t, m, id, "envelope disagrees with the id (id, type Tick, v 1, ts, data {})");
        return;
    }
    if (t->n[p] == t->cap[p]) {
        t->cap[p] = t->cap[p] ? 2 * t->cap[p] : 64;
        t->ts[p] = realloc(t->ts[p], (size_t)t->cap[p] * sizeof *t->ts[p]);
        cr_assert_not_null(t->ts[p]);
    }
    t->ts[p][t->n[p]++] = ts;
}

static void read_ticks(const int64_t *from, int parts, tick_log *t) {
    memset(t, 0, sizeof *t);
    t->parts = parts;
    /* A consumer of our own, for enable.partition.eof: the topic's end can
     * be a transaction marker, which is never delivered. */
    char bootstrap[1024], es[256];
    ct_kafka_bootstrap(&cfg, bootstrap, sizeof bootstrap);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[] = {"bootstrap.servers",
                        bootstrap,
                        "group.id",
                        "ct-test-relay-ticks",
                        "enable.partition.eof",
                        "true",
                        "enable.auto.commit",
                        "false",
                        "isolation.level",
                        "read_uncommitted",
                        NULL};
    for (int i = 0; kv[i]; i += 2)
        cr_assert_eq(rd_kafka_conf_set(conf, kv[i], kv[i + 1], es, sizeof es), RD_KAFKA_CONF_OK, "%s", es);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, es, sizeof es);
    cr_assert_not_null(c, "%s", es);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(l, CT_TOPIC_CONCERT_COMMANDS, p)->offset = from[p];
    cr_assert_eq(rd_kafka_assign(c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    bool at_end[TICK_PARTS_MAX] = {0};
    int ended = 0;
    for (int64_t until = ct_clock_mono_ms() + 60000; ended < parts && ct_clock_mono_ms() < until;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
        if (!m) continue;
        int p = m->partition;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF && p >= 0 && p < parts) {
            if (!at_end[p]) at_end[p] = true, ended++, t->end[p] = m->offset;
        } else if (!m->err && p >= 0 && p < parts && !at_end[p]) {
            rd_kafka_headers_t *h = NULL;
            const void *v = NULL;
            size_t vl = 0;
            char type[32] = "", id[96] = "";
            if (rd_kafka_message_headers(m, &h) == 0) {
                if (rd_kafka_header_get_last(h, "type", &v, &vl) == 0 && vl < sizeof type) memcpy(type, v, vl);
                if (rd_kafka_header_get_last(h, "id", &v, &vl) == 0 && vl < sizeof id) memcpy(id, v, vl);
            }
            if (strcmp(type, "Tick") == 0) tick_add(t, m, id);
        }
        rd_kafka_message_destroy(m);
    }
    cr_assert_eq(ended, parts, "reached the end of %d of %d partitions of %s", ended, parts, CT_TOPIC_CONCERT_COMMANDS);
    rd_kafka_destroy(c);
}

static void tick_log_free(tick_log *t) {
    for (int p = 0; p < t->parts; p++) free(t->ts[p]);
}

/* Ticks of partition p with ts in [lo, hi], in offset order, into out. */
static int ticks_between(const tick_log *t, int p, int64_t lo, int64_t hi, int64_t *out, int out_cap) {
    int n = 0;
    for (int i = 0; i < t->n[p]; i++)
        if (t->ts[p][i] >= lo && t->ts[p][i] <= hi) {
            cr_assert_lt(n, out_cap);
            out[n++] = t->ts[p][i];
        }
    return n;
}

/* The tick count a relay reports as it stops ("stopping ... ticks=N"). */
static long reported_ticks(const char *name) {
    FILE *f = fopen(log_of(name), "r");
    char line[2048];
    long n = -1;
    while (f && fgets(line, sizeof line, f)) {
        const char *t = strstr(line, "stopping sent=") ? strstr(line, " ticks=") : NULL;
        if (t) n = strtol(t + 7, NULL, 10);
    }
    if (f) fclose(f);
    return n;
}

static void wait_line(const char *name, const char *what, int timeout_ms) {
    ct_test_eventually(timeout_ms, lines_with(name, what) > 0, "no '%s' in the log of %s within %d ms", what, name,
                       timeout_ms);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

Test(relay, the_leader_ticks_every_partition_of_concert_commands_and_a_standby_does_not, .init = setup,
     .fini = teardown, .timeout = 180) {
    enum { TICK_MS = 200, WATCH_MS = 2500, ROUNDS_MAX = 4096 };
    setenv("CONCERT_TICK_MS", "200", 1);
    int64_t from[TICK_PARTS_MAX];
    int parts = end_offsets(CT_TOPIC_CONCERT_COMMANDS, from, TICK_PARTS_MAX);
    cr_assert_eq(parts, cfg.kafka_partitions, "%s has %d partitions, configured %d", CT_TOPIC_CONCERT_COMMANDS, parts,
                 cfg.kafka_partitions);
    int64_t t_start = ct_clock_wall_ms();
    pid_t leader = start_relay("t1");
    wait_line("t1", "leader instance=t1", 30000);
    pid_t standby = start_relay("t2");
    wait_line("t2", "standby instance=t2", 30000);
    sleep_ms(WATCH_MS);
    /* The standby first, so that it never takes over. */
    ct_test_stop_clean(standby, "the standby relay", log_of("t2"));
    ct_test_stop_clean(leader, "the leader relay", log_of("t1"));
    int64_t t_end = ct_clock_wall_ms();
    long leader_ticks = reported_ticks("t1"), standby_ticks = reported_ticks("t2");
    cr_assert_eq(lines_with("t2", "leader instance="), 0, "the standby led");
    cr_assert_eq(standby_ticks, 0, "the standby reports %ld ticks", standby_ticks);
    cr_assert_gt(leader_ticks, 0, "the leader reports %ld ticks", leader_ticks);

    tick_log t;
    read_ticks(from, parts, &t);
    cr_assert_eq(t.bad, 0, "%ld malformed ticks, first: %s", t.bad, t.first_bad);
    /* This test's relays ticked within [t_start, t_end] (wall clock). */
    static int64_t win[TICK_PARTS_MAX][ROUNDS_MAX];
    int n[TICK_PARTS_MAX] = {0};
    bool same = true;
    for (int p = 0; p < parts; p++) {
        n[p] = ticks_between(&t, p, t_start, t_end, win[p], ROUNDS_MAX);
        same &= n[p] == n[0] && memcmp(win[p], win[0], (size_t)n[0] * sizeof win[0][0]) == 0;
    }
    long rounds = n[0];
    cr_log_info("leader reported %ld ticks, the standby %ld; %ld rounds of %d partitions in Kafka within %lld ms",
                leader_ticks, standby_ticks, rounds, parts, (long long)(t_end - t_start));
    if (!same || rounds * parts != leader_ticks) {
        /* Either a relay of this test sent ticks the leader does not count
         * (the standby), or another relay ticks on this shared cluster:
         * look for ticks after both of ours stopped. */
        sleep_ms(1500);
        tick_log after;
        read_ticks(t.end, parts, &after);
        long foreign = 0;
        for (int p = 0; p < parts; p++)
            for (int i = 0; i < after.n[p]; i++) foreign += after.ts[p][i] > t_end;
        tick_log_free(&after);
        cr_assert_gt(foreign, 0,
                     "ticks in Kafka (%ld per partition, partitions %s) are not the leader's %ld / %d,"
                     " and no other relay ticks on the cluster",
                     rounds, same ? "alike" : "differ", leader_ticks, parts);
        /* Someone else's ticks are mixed in: only the leader's own count
         * can be held to the cadence, and each partition holds at least it. */
        cr_log_warn("another relay ticks on this cluster (%ld ticks after ours stopped): weaker checks", foreign);
        for (int p = 0; p < parts; p++)
            cr_assert_geq(n[p] * parts, leader_ticks, "partition %d holds %d ticks; the leader sent %ld over %d", p,
                          n[p], leader_ticks, parts);
        cr_assert_eq(leader_ticks % parts, 0, "the leader's %ld ticks do not cover %d partitions evenly", leader_ticks,
                     parts);
        rounds = leader_ticks / parts;
        cr_assert_geq(rounds, WATCH_MS / TICK_MS / 2, "%ld tick rounds while leading for over %d ms", rounds, WATCH_MS);
        cr_assert_leq(rounds, (t_end - t_start) / TICK_MS + 2, "%ld rounds in %lld ms: more than one per %d ms", rounds,
                      (long long)(t_end - t_start), TICK_MS);
        tick_log_free(&t);
        return;
    }
    /* One producer: every partition got the same rounds in the same order,
     * exactly the ticks the leader counted, with ts rising... */
    static int64_t gaps[ROUNDS_MAX];
    for (long i = 1; i < rounds; i++) {
        cr_assert_gt(win[0][i], win[0][i - 1], "tick ts went from %" PRId64 " to %" PRId64, win[0][i - 1], win[0][i]);
        gaps[i - 1] = win[0][i] - win[0][i - 1];
    }
    /* ...at about one round per CONCERT_TICK_MS: at least half the rounds
     * the watch alone would give, no more than the whole window allows, and
     * a typical gap near the setting (a second ticker would halve it). */
    cr_assert_geq(rounds, WATCH_MS / TICK_MS / 2, "%ld tick rounds while leading for over %d ms", rounds, WATCH_MS);
    cr_assert_leq(rounds, (t_end - t_start) / TICK_MS + 2, "%ld rounds in %lld ms: more than one per %d ms", rounds,
                  (long long)(t_end - t_start), TICK_MS);
    qsort(gaps, (size_t)rounds - 1, sizeof gaps[0], cmp_i64);
    int64_t median = gaps[(rounds - 1) / 2];
    cr_log_info("tick gaps: min %" PRId64 " median %" PRId64 " max %" PRId64 " ms", gaps[0], median, gaps[rounds - 2]);
    cr_assert(median >= TICK_MS * 3 / 4 && median <= TICK_MS * 2, "median gap between ticks %" PRId64 " ms, set %d",
              median, TICK_MS);
    tick_log_free(&t);
}

/* ---- one broker down: the one leading the topic --------------------------- */

static int victim_node;    /* a local broker this test killed (1..3), 0: none */
static pid_t broker_guard; /* restarts it should this test's process die */

/* The broker leading most partitions of `topic`, and which ones it leads. */
static int busiest_leader(const char *topic, bool *led, int led_cap, int *parts_out) {
    ct_error err = {0};
    rd_kafka_t *rk = ct_kafka_admin_new(&cfg, "ct-test-relay-leaders", &err);
    cr_assert_not_null(rk, "%s", err.msg);
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 10000);
    cr_assert_eq(e, RD_KAFKA_RESP_ERR_NO_ERROR, "metadata of %s: %s", topic, rd_kafka_err2str(e));
    cr_assert(md->topic_cnt == 1 && md->topics[0].err == 0 && md->topics[0].partition_cnt <= led_cap);
    int leads[CT_LOCALKAFKA_NODES + 1] = {0}, best = 0;
    const rd_kafka_metadata_topic_t *mt = &md->topics[0];
    for (int i = 0; i < mt->partition_cnt; i++) {
        int l = mt->partitions[i].leader;
        if (l >= 1 && l <= CT_LOCALKAFKA_NODES && ++leads[l] > leads[best]) best = l;
    }
    for (int i = 0; i < mt->partition_cnt; i++)
        led[mt->partitions[i].id] = best > 0 && mt->partitions[i].leader == best;
    *parts_out = mt->partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk);
    return best;
}

/* Waits until every partition of the system's topics has its whole ISR. */
static void wait_isr_whole(int timeout_ms) {
    ct_error err = {0};
    rd_kafka_t *rk = ct_kafka_admin_new(&cluster_cfg, "ct-test-relay-isr", &err);
    cr_assert_not_null(rk, "%s", err.msg);
    size_t nt = 0;
    const ct_topic_spec *topics = ct_kafka_topics(&nt);
    for (size_t i = 0; i < nt; i++) {
        int parts = 0, replicas = 0, isr = 0;
        ct_test_eventually(timeout_ms,
                           ct_kafka_describe_topic(rk, topics[i].name, &parts, &replicas, &isr, 5000, &err) == 0 &&
                               replicas > 0 && isr == replicas,
                           "%s: in-sync replicas %d of %d within %d ms of the restart", topics[i].name, isr, replicas,
                           timeout_ms);
    }
    rd_kafka_destroy(rk);
}

/* Brings the killed broker back (when it is still down) and stops the
 * guard. Called by the test and, should an assertion end it early, by its
 * fini: later tests need all three brokers. */
static void restore_broker(void) {
    if (victim_node && ct_localkafka_node_pid(&cluster_cfg, victim_node) == 0) {
        ct_error err = {0};
        if (ct_localkafka_start(&cluster_cfg, &err) != 0)
            cr_log_error("could not restart local broker %d: %s %s", victim_node, err.msg, err.detail);
    }
    if (broker_guard > 0) kill(-broker_guard, SIGKILL), waitpid(broker_guard, NULL, 0), broker_guard = 0;
}

static void teardown_broker(void) {
    restore_broker();
    teardown();
}

Test(relay, with_the_broker_leading_the_topic_killed_every_row_is_sent_and_only_retried_ones_twice, .init = setup,
     .fini = teardown_broker, .timeout = 400) {
    if (cluster_cfg.kafka_brokers[0])
        cr_skip_test("kills a local broker: runs only on the cluster scripts/test starts");
    cr_assert_eq(ct_localkafka_running(&cluster_cfg), CT_LOCALKAFKA_NODES, "needs all local brokers running");
    pid_t relay = start_relay_for_outage("v");
    long last_before = count("SELECT max(id) FROM outbox");

    bool led[TICK_PARTS_MAX] = {0};
    int parts = 0;
    int victim = busiest_leader(CT_TOPIC_WALLET_COMMANDS, led, TICK_PARTS_MAX, &parts);
    cr_assert_gt(victim, 0, "no local broker leads %s", CT_TOPIC_WALLET_COMMANDS);
    pid_t victim_pid = ct_localkafka_node_pid(&cluster_cfg, victim);
    cr_assert_gt(victim_pid, 0, "local broker %d is not a daemon of this cluster", victim);
    char led_list[256] = "";
    for (int p = 0, at = 0; p < parts; p++)
        if (led[p]) at += snprintf(led_list + at, sizeof led_list - (size_t)at, "%s%d", at ? "," : "", p);
    /* Should this process die before it restarts the broker (a timeout),
     * the guard does: `concert kafka start` starts only missing nodes. */
    char script[CT_CONFIG_PATH_MAX + 512];
    snprintf(script, sizeof script,
             "while kill -0 %d 2>/dev/null; do sleep 1; done; CONCERT_DATA_DIR='%s' exec '%s' kafka start",
             (int)getpid(), cluster_cfg.data_dir, CT_CONCERT_BIN);
    const char *gargv[] = {"sh", "-c", script, NULL};
    ct_proc_opts go = {
        .argv = gargv, .output_path = "/dev/null", .output_fd = -1, .new_session = true, .null_stdin = true};
    ct_error err = {0};
    broker_guard = ct_proc_spawn(&go, &err);
    cr_assert_gt(broker_guard, 0, "%s", err.msg);

    victim_node = victim;
    cr_assert_eq(kill(victim_pid, SIGKILL), 0);
    while (ct_proc_alive(victim_pid)) sleep_ms(20);
    int64_t t_kill = ct_clock_mono_ms();
    insert_rows(300, CT_TOPIC_WALLET_COMMANDS, run);
    long sent = wait_count("SELECT count(*) FROM outbox WHERE status = 'SENT'", 400, 90000);
    int64_t took = ct_clock_mono_ms() - t_kill;
    cr_assert_eq(sent, 400, "%ld of 400 SENT with broker %d down", sent, victim);
    cr_assert_eq(ct_localkafka_node_pid(&cluster_cfg, victim), 0, "broker %d came back before the rows were sent",
                 victim);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM outbox WHERE id > %ld AND kafka_partition IN (%s)", last_before,
             led_list);
    long on_victims = count(sql);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM outbox WHERE id > %ld AND attempts > 0", last_before);
    long retried = count(sql);
    cr_log_info("broker %d (leader of partitions %s) killed; 300 rows SENT %lld ms later, %ld of them on its"
                " partitions, %ld retried, max attempts %ld",
                victim, led_list, (long long)took, on_victims, retried, count("SELECT max(attempts) FROM outbox"));
    cr_assert_gt(on_victims, 0, "no row went to a partition broker %d led", victim);
    cr_assert_gt(retried, 0, "no publish failed while broker %d's partitions had no leader", victim);
    cr_assert_eq(count("SELECT count(*) FROM outbox WHERE status = 'FAILED'"), 0);
    bool still[TICK_PARTS_MAX] = {0};
    int now_leader = busiest_leader(CT_TOPIC_WALLET_COMMANDS, still, TICK_PARTS_MAX, &parts);
    cr_assert_neq(now_leader, victim, "broker %d still leads %s", victim, CT_TOPIC_WALLET_COMMANDS);

    /* The broker back, every partition's ISR whole, for the tests after. */
    int64_t t_restart = ct_clock_mono_ms();
    cr_assert_eq(ct_localkafka_start(&cluster_cfg, &err), 0, "%s %s", err.msg, err.detail);
    cr_assert_gt(ct_localkafka_node_pid(&cluster_cfg, victim), 0);
    wait_isr_whole(120000);
    restore_broker();
    cr_log_info("broker %d back with every ISR whole in %lld ms", victim, (long long)(ct_clock_mono_ms() - t_restart));

    char key_prefix[48];
    snprintf(key_prefix, sizeof key_prefix, "%s-", run);
    snprintf(sql, sizeof sql, "SELECT command_id FROM outbox WHERE id > %ld AND attempts > 0", last_before);
    long again = assert_sent(key_prefix, sql);
    cr_log_info("rows in Kafka twice (retried after a timed-out publish, same id and bytes): %ld", again);
    ct_test_stop_clean(relay, "the relay", log_of("v"));
}
