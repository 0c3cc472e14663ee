/* The operator's console in a real browser: `concert up` on the test
 * cluster, some traffic (a concert, fans who charge, queue, hold and pay, an
 * outbox row that FAILED), then headless Chromium (Debian's, driven by
 * tests/browser/console.mjs through puppeteer-core) logs in and opens every
 * page; what each page showed is checked here against Postgres and Kafka.
 * Through the page it retries the FAILED row (which then publishes and
 * takes effect) and produces a test record (read back from Kafka). The
 * screenshots stay in console-screenshots/ beside the test binary. The
 * admin API's answers behind the pages are also checked against
 * ingress/openapi.json. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/ct_test_eventually.h"
#include "../support/ct_test_pipeline.h"

#define ADMIN_KEY "console-admin-key"
#define JSON_CT "Content-Type: application/json"
#define ADMIN_H "Authorization: Bearer " ADMIN_KEY
#define SHOTS "console-screenshots"
#define FANS 4

static ct_test_pipeline pl;
static char concert[64], failed_user[64], failed_id[24], exchanges[320];

static void setup(void) {
    ct_test_pipeline_prepare(&pl, "console", ADMIN_KEY);
    ct_test_pipeline_start(&pl);
    snprintf(exchanges, sizeof exchanges, "%s/exchanges.jsonl", pl.dir);
}

static void teardown(void) { ct_test_pipeline_finish(&pl); }

/* ---- HTTP ------------------------------------------------------------------------ */

/* A call whose answer is recorded for the OpenAPI check; its JSON. */
static json_t *call(const char *method, const char *path, const char *const *h, const char *body, long want) {
    return ct_test_pipeline_call(&pl, method, path, h, body, want, exchanges);
}

static const char *field(json_t *j, const char *k) {
    const char *v = json_string_value(json_object_get(j, k));
    cr_assert(v, "no %s", k);
    return v;
}

static long sql_long(const char *fmt, const char *arg) {
    char sql[2048];
    snprintf(sql, sizeof sql, fmt, arg);
    return ct_test_pg_count(pl.db, sql);
}

/* A concert, and FANS fans who charge and queue; the two admitted hold a
 * seat each, the first pays (its slot then admits the third). */
static void traffic(void) {
    const char *wait[] = {JSON_CT, "Prefer: wait=30", NULL};
    const char *admin[] = {JSON_CT, ADMIN_H, "Prefer: wait=30", NULL};
    char body[512], path[160];
    snprintf(body, sizeof body,
             "{\"title\":\"console %s\",\"max_active\":2,\"active_ttl_ms\":600000,\"hold_ttl_ms\":600000,"
             "\"schedules\":[{\"starts_at\":\"2030-01-01T19:00:00Z\",\"seats\":10,\"price\":1000},"
             "{\"starts_at\":\"2030-01-02T19:00:00Z\",\"seats\":5,\"price\":2000}]}",
             pl.run);
    json_t *c = call("POST", "/v1/admin/concerts", admin, body, 201);
    snprintf(concert, sizeof concert, "%s", field(c, "concert_id"));
    json_decref(c);
    for (int u = 0; u < FANS; u++) {
        char user[64], token[64], qt[96];
        snprintf(user, sizeof user, "fan%d-%s", u, pl.run);
        snprintf(path, sizeof path, "/v1/users/%s/balance/charge", user);
        json_decref(call("POST", path, wait, "{\"amount\":5000}", 200));
        snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"concert_id\":\"%s\"}", user, concert);
        json_t *t = call("POST", "/v1/queue/tokens", wait, body, 201);
        snprintf(token, sizeof token, "%s", field(t, "token"));
        json_decref(t);
        if (u >= 2) continue; /* max_active 2: the others wait */
        snprintf(path, sizeof path, "/v1/queue/tokens/%s", token);
        const char *lp[] = {"Prefer: wait=10", NULL};
        bool active = false;
        for (int i = 0; i < 6 && !active; i++) {
            json_t *st = call("GET", path, lp, NULL, 200);
            active = strcmp(field(st, "status"), "ACTIVE") == 0;
            json_decref(st);
        }
        cr_assert(active, "%s was not admitted", user);
        snprintf(qt, sizeof qt, "X-Queue-Token: %s", token);
        const char *hh[] = {JSON_CT, "Prefer: wait=30", qt, NULL};
        snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"concert_id\":\"%s\",\"schedule_id\":\"1\",\"seat_no\":%d}",
                 user, concert, u + 1);
        json_t *h = call("POST", "/v1/reservations", hh, body, 201);
        snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"reservation_id\":\"%s\"}", user, field(h, "reservation_id"));
        json_decref(h);
        if (u == 0) {
            json_decref(call("POST", "/v1/payments", hh, body, 200));
            /* The answer is the wallet's decision; the settlement that
             * frees the token's slot (for the third fan) follows a hop later. */
            ct_test_eventually(
                15000,
                sql_long("SELECT count(*) FROM queue_tokens WHERE concert_id = '%s' AND status = 'DONE'", concert) == 1,
                "the payer's token is not DONE");
        }
    }
}

/* An outbox row the relay gave up on (as after CONCERT_OUTBOX_MAX_ATTEMPTS
 * failures): a charge of its own user, so it blocks no one else's rows. */
static void failed_row(void) {
    snprintf(failed_user, sizeof failed_user, "failed-%s", pl.run);
    char sql[2048];
    snprintf(
        sql, sizeof sql,
        "WITH n AS (SELECT gen_random_uuid() AS u)"
        " INSERT INTO outbox (command_id, topic, partition_key, type, payload, status, attempts, last_error,"
        "  retry_at)"
        " SELECT n.u, o.topic, '%s', o.type, jsonb_set(jsonb_set(o.payload || jsonb_build_object('id', n.u::text,"
        "  'command_id', n.u::text, 'key', '%s'), '{data,user_id}', to_jsonb('%s'::text)), '{data,amount}', '777'),"
        "  'FAILED', 5, 'Local: Message timed out (a test row)', 'infinity'"
        " FROM outbox o, n WHERE o.type = 'ChargeBalance' ORDER BY o.id LIMIT 1 RETURNING id",
        failed_user, failed_user, failed_user);
    PGresult *r = PQexec(pl.db, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pl.db));
    cr_assert_eq(PQntuples(r), 1);
    snprintf(failed_id, sizeof failed_id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

/* ---- Kafka ----------------------------------------------------------------------- */

static int64_t high_of(rd_kafka_t *rk, const char *topic, int partition) {
    int64_t lo = 0, hi = 0;
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi, 10000);
    cr_assert_eq(e, 0, "%s/%d: %s", topic, partition, rd_kafka_err2str(e));
    return hi;
}

/* The record at topic/partition@offset (read_committed): its key and value. */
static void read_record(const char *topic, int partition, int64_t offset, char *key, size_t kn, char *value,
                        size_t vn) {
    char group[96];
    snprintf(group, sizeof group, "ct-test-console-read-%s", pl.run);
    rd_kafka_t *c = ct_test_consumer(&pl.cfg, group, 1);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    cr_assert_eq(rd_kafka_assign(c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    bool got = false;
    for (int i = 0; i < 100 && !got; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m) continue;
        if (!m->err && m->offset == offset) {
            snprintf(key, kn, "%.*s", (int)m->key_len, m->key ? (const char *)m->key : "");
            snprintf(value, vn, "%.*s", (int)m->len, (const char *)m->payload);
            got = true;
        }
        rd_kafka_message_destroy(m);
    }
    ct_test_consumer_close(c);
    cr_assert(got, "no record at %s/%d@%lld", topic, partition, (long long)offset);
}

/* ---- what the browser saw -------------------------------------------------------- */

static json_t *table(json_t *seen, const char *page, const char *name) {
    json_t *t = json_object_get(json_object_get(json_object_get(seen, page), "tables"), name);
    cr_assert(json_is_array(t), "page %s has no table %s", page, name);
    return t;
}

static const char *cell(json_t *row, const char *col) {
    const char *v = json_string_value(json_object_get(row, col));
    cr_assert(v, "no column %s", col);
    return v;
}

static long long cell_ll(json_t *row, const char *col) { return strtoll(cell(row, col), NULL, 10); }

static json_t *run_browser(void) {
    mkdir(SHOTS, 0755);
    int browse_partition = (int)ct_test_pg_count(
        pl.db, "SELECT kafka_partition FROM outbox WHERE type = 'CreateConcert' ORDER BY id DESC LIMIT 1");
    long long browse_offset = ct_test_pg_count(
        pl.db, "SELECT kafka_offset FROM outbox WHERE type = 'CreateConcert' ORDER BY id DESC LIMIT 1");
    char args[1024], out[320], err[320], fan0[64], produce_key[64];
    snprintf(fan0, sizeof fan0, "fan0-%s", pl.run);
    snprintf(produce_key, sizeof produce_key, "console-%s", pl.run);
    snprintf(args, sizeof args,
             "{\"failed_id\":%s,\"browse_topic\":\"concert.commands\",\"browse_partition\":%d,\"browse_offset\":%lld,"
             "\"search_topic\":\"wallet.commands\",\"search_key\":\"%s\",\"produce_key\":\"%s\"}",
             failed_id, browse_partition, browse_offset, fan0, produce_key);
    snprintf(out, sizeof out, "%s/browser.json", pl.dir);
    snprintf(err, sizeof err, "%s/browser.log", pl.dir);
    char cmd[4096], cwd[512];
    cr_assert(getcwd(cwd, sizeof cwd));
    snprintf(cmd, sizeof cmd, "cd %s/tests/browser && timeout 180 node console.mjs '%s' '%s' '%s/%s' '%s' > %s 2> %s",
             CT_SOURCE_DIR, pl.base, ADMIN_KEY, cwd, SHOTS, args, out, err);
    int rc = system(cmd);
    if (rc != 0) ct_test_print_log_tail(err, 30);
    cr_assert_eq(rc, 0, "the browser run failed (above); node and tests/browser/node_modules (npm ci) needed");
    json_error_t je;
    json_t *seen = json_load_file(out, 0, &je);
    cr_assert(seen, "browser output: %s", je.text);
    return seen;
}

Test(console, every_page_shows_what_postgres_and_kafka_hold, .init = setup, .fini = teardown, .timeout = 600) {
    traffic();
    failed_row();
    ct_error kerr = {0};
    rd_kafka_t *rk = ct_kafka_admin_new(&pl.cfg, "ct-test-console", &kerr);
    cr_assert(rk, "%s", kerr.msg);
    const char *topics[] = {"concert.commands", "wallet.commands", "concert.events", "wallet.events", "test-topic"};
    int64_t before[5][6];
    for (int t = 0; t < 5; t++)
        for (int p = 0; p < 6; p++) before[t][p] = high_of(rk, topics[t], p);
    long long proj_before = ct_test_pg_count(pl.db, "SELECT coalesce(sum(next_offset), 0) FROM projector_offsets");

    json_t *seen = run_browser();

    /* Login: pages send to the form; a wrong key says so; the cookie is
     * HttpOnly (the page's scripts do not see it) and SameSite=Strict. */
    cr_assert_str_eq(json_string_value(json_object_get(seen, "redirected_to")), "/admin/login");
    cr_assert(json_is_true(json_object_get(json_object_get(seen, "wrong_key"), "error_shown")));
    cr_assert_str_eq(json_string_value(json_object_get(seen, "after_login")), "/admin/");
    json_t *ck = json_object_get(seen, "cookie");
    cr_assert(json_is_true(json_object_get(ck, "httpOnly")), "cookie not HttpOnly");
    cr_assert_str_eq(json_string_value(json_object_get(ck, "sameSite")), "Strict");
    cr_assert_str_eq(json_string_value(json_object_get(seen, "document_cookie")), "");
    cr_assert_str_eq(json_string_value(json_object_get(seen, "after_logout")), "/admin/login");
    cr_assert_eq(json_array_size(json_object_get(seen, "console_errors")), 0, "errors in the browser: %s",
                 json_dumps(json_object_get(seen, "console_errors"), 0));
    const char *pages[] = {"outbox", "topics", "consumers", "queues", "slack", "browse", "search"};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++)
        cr_assert(json_is_null(json_object_get(json_object_get(seen, pages[i]), "error")), "page %s: %s", pages[i],
                  json_string_value(json_object_get(json_object_get(seen, pages[i]), "error")));

    /* Outbox: the first 100 rows by id, as the table has them. */
    json_t *rows = table(seen, "outbox", "outbox"), *row;
    size_t i;
    long long n_rows = ct_test_pg_count(pl.db, "SELECT count(*) FROM (SELECT 1 FROM outbox LIMIT 100) x");
    cr_assert_eq((long long)json_array_size(rows), n_rows);
    json_array_foreach(rows, i, row) {
        char q[256];
        snprintf(q, sizeof q, "SELECT count(*) FROM outbox WHERE id = %lld AND type = '%s' AND partition_key = '%s'",
                 cell_ll(row, "id"), cell(row, "type"), cell(row, "key"));
        cr_assert_eq(ct_test_pg_count(pl.db, q), 1, "outbox row %s as shown is not in the table", cell(row, "id"));
        if (strcmp(cell(row, "status"), "SENT") == 0) {
            snprintf(q, sizeof q,
                     "SELECT count(*) FROM outbox WHERE id = %lld AND status = 'SENT' AND"
                     " kafka_partition = %lld AND kafka_offset = %lld",
                     cell_ll(row, "id"), cell_ll(row, "partition"), cell_ll(row, "offset"));
            cr_assert_eq(ct_test_pg_count(pl.db, q), 1, "row %s: partition/offset", cell(row, "id"));
        }
    }
    /* Filtered to FAILED: the one row; retried through the page, it is
     * published and its charge takes effect. */
    rows = table(seen, "outbox_failed", "outbox");
    cr_assert_eq(json_array_size(rows), 1);
    cr_assert_str_eq(cell(json_array_get(rows, 0), "id"), failed_id);
    cr_assert_str_eq(cell(json_array_get(rows, 0), "status"), "FAILED");
    cr_assert_str_eq(cell(json_array_get(rows, 0), "last error"), "Local: Message timed out (a test row)");
    cr_assert_eq(json_array_size(table(seen, "outbox_after_retry", "outbox")), 0, "the FAILED filter still shows it");
    ct_test_eventually(30000,
                       sql_long("SELECT count(*) FROM outbox o JOIN commands c ON c.command_id = o.command_id::text"
                                " WHERE o.id = %s AND o.status = 'SENT' AND c.status = 'SUCCEEDED'",
                                failed_id) > 0,
                       "the retried row was not published and applied within 30 s");
    char path[160];
    snprintf(path, sizeof path, "/v1/users/%s/balance", failed_user);
    json_t *b = call("GET", path, NULL, NULL, 200);
    cr_assert_eq(json_integer_value(json_object_get(b, "balance")), 777);
    json_decref(b);

    /* Topics: each partition's leader, replicas, ISR as the cluster says;
     * the high watermark between the ones read before and after. */
    const struct rd_kafka_metadata *md = NULL;
    cr_assert_eq(rd_kafka_metadata(rk, 1, NULL, &md, 10000), 0);
    for (int t = 0; t < 5; t++) {
        char name[96];
        snprintf(name, sizeof name, "partitions:%s", topics[t]);
        rows = table(seen, "topics", name);
        cr_assert_eq(json_array_size(rows), 6, "%s", topics[t]);
        const rd_kafka_metadata_topic_t *mt = NULL;
        for (int k = 0; k < md->topic_cnt; k++)
            if (strcmp(md->topics[k].topic, topics[t]) == 0) mt = &md->topics[k];
        cr_assert(mt);
        json_array_foreach(rows, i, row) {
            int p = (int)cell_ll(row, "partition");
            const rd_kafka_metadata_partition_t *mp = NULL;
            for (int k = 0; k < mt->partition_cnt; k++)
                if (mt->partitions[k].id == p) mp = &mt->partitions[k];
            cr_assert(mp);
            cr_assert_eq(cell_ll(row, "leader"), mp->leader, "%s/%d leader", topics[t], p);
            cr_assert_eq((long long)strlen(cell(row, "replicas")), 2LL * mp->replica_cnt - 1, "%s/%d", topics[t], p);
            cr_assert_eq((long long)strlen(cell(row, "ISR")), 2LL * mp->isr_cnt - 1, "%s/%d", topics[t], p);
            long long hi = cell_ll(row, "high"), after = high_of(rk, topics[t], p);
            cr_assert(hi >= before[t][p] && hi <= after, "%s/%d high %lld not in [%lld, %lld]", topics[t], p, hi,
                      (long long)before[t][p], after);
        }
    }
    rd_kafka_metadata_destroy(md);

    /* Browsing concert.commands from the concert's command: that record first. */
    json_t *recs = json_object_get(json_object_get(seen, "browse"), "records");
    cr_assert_gt(json_array_size(recs), 0);
    json_t *first = json_array_get(recs, 0);
    long long off = ct_test_pg_count(
        pl.db, "SELECT kafka_offset FROM outbox WHERE type = 'CreateConcert' ORDER BY id DESC LIMIT 1");
    cr_assert_eq(json_integer_value(json_object_get(first, "offset")), off);
    char cid[64];
    PGresult *r = PQexec(pl.db, "SELECT command_id FROM outbox WHERE type = 'CreateConcert' ORDER BY id DESC LIMIT 1");
    snprintf(cid, sizeof cid, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    cr_assert(strstr(json_string_value(json_object_get(first, "value")), cid), "the record shown is not the command");
    cr_assert(strstr(json_string_value(json_object_get(first, "value")), "\n  \"type\": \"CreateConcert\""),
              "value not pretty-printed: %s", json_string_value(json_object_get(first, "value")));

    /* Searching wallet.commands by a fan's key: every charge the outbox sent
     * for them, and one DebitRequested per payment. */
    recs = json_object_get(json_object_get(seen, "search"), "records");
    char fan0[64];
    snprintf(fan0, sizeof fan0, "fan0-%s", pl.run);
    long charges = sql_long("SELECT count(*) FROM outbox WHERE partition_key = '%s' AND type = 'ChargeBalance'", fan0);
    long payments = sql_long("SELECT count(*) FROM payments WHERE user_id = '%s'", fan0);
    cr_assert_eq(charges, 1, "%ld charges of %s", charges, fan0);
    cr_assert_eq(payments, 1, "%ld payments of %s", payments, fan0);
    long seen_charges = 0, seen_debits = 0;
    json_array_foreach(recs, i, row) {
        const char *v = json_string_value(json_object_get(row, "value"));
        seen_charges += strstr(v, "\"type\": \"ChargeBalance\"") != NULL;
        seen_debits += strstr(v, "\"type\": \"DebitRequested\"") != NULL;
        cr_assert(strstr(v, fan0), "a record without the key: %s", v);
    }
    cr_assert_eq(seen_charges, charges);
    cr_assert_eq(seen_debits, payments);

    /* The test record produced through the page is in Kafka where it says. */
    int pp = -1;
    long long po = -1;
    cr_assert_eq(sscanf(json_string_value(json_object_get(seen, "produced")), "produced to partition %d at offset %lld",
                        &pp, &po),
                 2, "%s", json_string_value(json_object_get(seen, "produced")));
    char key[128], value[256];
    read_record("test-topic", pp, po, key, sizeof key, value, sizeof value);
    char want_key[64];
    snprintf(want_key, sizeof want_key, "console-%s", pl.run);
    cr_assert_str_eq(key, want_key);
    cr_assert_str_eq(value, "hello from the console");

    /* Consumers: the three groups, every partition owned by a member the
     * page lists; the projector's positions are its Postgres offsets. */
    const char *groups[] = {"concert-processor-concert", "concert-processor-wallet", getenv("CONCERT_PROJECTOR_GROUP")};
    for (int g = 0; g < 3; g++) {
        char name[160];
        snprintf(name, sizeof name, "members:%s", groups[g]);
        json_t *members = table(seen, "consumers", name);
        cr_assert_gt(json_array_size(members), 0, "%s has no member", groups[g]);
        snprintf(name, sizeof name, "lag:%s", groups[g]);
        rows = table(seen, "consumers", name);
        cr_assert_geq(json_array_size(rows), 6, "%s", groups[g]);
        long long sum = 0;
        json_array_foreach(rows, i, row) {
            bool owned = false;
            size_t k;
            json_t *m;
            json_array_foreach(members, k, m) { owned |= strcmp(cell(m, "client"), cell(row, "owner")) == 0; }
            cr_assert(owned, "%s %s/%s: owner %s", groups[g], cell(row, "topic"), cell(row, "partition"),
                      cell(row, "owner"));
            sum += cell_ll(row, "committed");
            cr_assert_leq(cell_ll(row, "committed"), cell_ll(row, "end"));
            cr_assert_eq(cell_ll(row, "lag"), cell_ll(row, "end") - cell_ll(row, "committed"));
        }
        if (g == 2) {
            long long after = ct_test_pg_count(pl.db, "SELECT coalesce(sum(next_offset), 0) FROM projector_offsets");
            cr_assert(sum >= proj_before && sum <= after, "projector positions %lld not in [%lld, %lld]", sum,
                      proj_before, after);
        }
    }

    /* Queues and sales: the concert's figures as the read models count. */
    json_t *fig = json_object_get(json_object_get(json_object_get(seen, "queues"), "figures"), concert);
    cr_assert(fig, "the concert is not on the page");
    cr_assert_eq(strtoll(json_string_value(json_object_get(fig, "waiting")), NULL, 10),
                 sql_long("SELECT count(*) FROM queue_tokens WHERE concert_id = '%s' AND status = 'WAITING'", concert));
    cr_assert_eq(strtoll(json_string_value(json_object_get(fig, "active")), NULL, 10),
                 sql_long("SELECT count(*) FROM queue_tokens WHERE concert_id = '%s' AND status = 'ACTIVE'", concert));
    cr_assert_eq(strtoll(json_string_value(json_object_get(fig, "done")), NULL, 10),
                 sql_long("SELECT count(*) FROM queue_tokens WHERE concert_id = '%s' AND status = 'DONE'", concert));
    cr_assert_eq(strtoll(json_string_value(json_object_get(fig, "waiting")), NULL, 10), 1, "the fourth fan waits");
    cr_assert_eq(strtoll(json_string_value(json_object_get(fig, "active")), NULL, 10), 2);
    cr_assert_eq(strtoll(json_string_value(json_object_get(fig, "done")), NULL, 10), 1);
    char name[128];
    snprintf(name, sizeof name, "schedules:%s", concert);
    rows = table(seen, "queues", name);
    cr_assert_eq(json_array_size(rows), 2);
    json_array_foreach(rows, i, row) {
        char q[512];
        snprintf(q, sizeof q,
                 "SELECT count(*) FROM seats WHERE concert_id = '%s' AND schedule_id = '%s' AND status = 'SOLD'",
                 concert, cell(row, "schedule"));
        cr_assert_eq(cell_ll(row, "sold"), ct_test_pg_count(pl.db, q));
        snprintf(q, sizeof q,
                 "SELECT count(*) FROM seats WHERE concert_id = '%s' AND schedule_id = '%s' AND status <> 'SOLD'",
                 concert, cell(row, "schedule"));
        cr_assert_eq(cell_ll(row, "held"), ct_test_pg_count(pl.db, q));
        cr_assert_eq(cell_ll(row, "left"), cell_ll(row, "seats") - cell_ll(row, "sold") - cell_ll(row, "held"));
    }
    cr_assert_eq(cell_ll(json_array_get(rows, 0), "sold"), 1);
    cr_assert_eq(cell_ll(json_array_get(rows, 0), "held"), 1);
    cr_assert_str_eq(cell(json_array_get(rows, 0), "starts"), "2030-01-01T19:00:00.000Z");

    /* Slack: the latest notifications as the table has them (a pending one
     * may have been delivered since). */
    rows = table(seen, "slack", "slack");
    cr_assert_eq((long long)json_array_size(rows),
                 ct_test_pg_count(pl.db, "SELECT count(*) FROM (SELECT 1 FROM slack_notifications LIMIT 100) x"));
    cr_assert_gt(json_array_size(rows), 0, "the confirmed reservation's notification");
    json_array_foreach(rows, i, row) {
        char q[256];
        snprintf(q, sizeof q, "SELECT count(*) FROM slack_notifications WHERE id = %lld AND kind = '%s'%s",
                 cell_ll(row, "id"), cell(row, "kind"),
                 strcmp(cell(row, "status"), "DELIVERED") == 0 ? " AND sent_at IS NOT NULL" : "");
        cr_assert_eq(ct_test_pg_count(pl.db, q), 1, "notification %s as shown", cell(row, "id"));
    }

    /* The screenshots. */
    const char *shots[] = {"login", "outbox", "outbox-after-retry", "topics", "consumers", "queues", "slack"};
    for (size_t s = 0; s < sizeof shots / sizeof shots[0]; s++) {
        char file[256];
        struct stat st;
        snprintf(file, sizeof file, SHOTS "/%s.png", shots[s]);
        cr_assert(stat(file, &st) == 0 && st.st_size > 2000, "screenshot %s", file);
    }
    json_decref(seen);

    /* The admin API behind the pages, with the admin key, as documented. */
    const char *ah[] = {JSON_CT, ADMIN_H, NULL};
    json_decref(call("GET", "/v1/admin/topics", ah, NULL, 200));
    json_decref(call("GET", "/v1/admin/consumers", ah, NULL, 200));
    json_decref(call("GET", "/v1/admin/queues", ah, NULL, 200));
    json_decref(call("GET", "/v1/admin/slack?status=PENDING", ah, NULL, 200));
    json_decref(call("GET", "/v1/admin/topics/concert.commands/records?partition=0&limit=3", ah, NULL, 200));
    json_decref(call("GET", "/v1/admin/topics/no-such-topic/records?partition=0", ah, NULL, 404));
    json_decref(call("GET", "/v1/admin/topics/concert.commands/records?partition=99", ah, NULL, 404));
    json_decref(call("GET", "/v1/admin/topics/concert.commands/records", ah, NULL, 400));
    json_decref(call("GET", "/v1/admin/queues?limit=0", ah, NULL, 400));
    json_decref(call("POST", "/v1/admin/topics/test-topic/records", ah, "{\"value\":\"v\",\"key\":\"k\"}", 201));
    json_decref(call("POST", "/v1/admin/topics/concert.commands/records", ah, "{\"value\":\"v\"}", 403));
    json_decref(call("POST", "/v1/admin/topics/test-topic/records", ah, "{\"value\":1}", 422));
    json_decref(call("POST", "/v1/admin/outbox/retry", ah, NULL, 200));
    /* Guessing the key: a few tries a second from one address, then 429. */
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    char login[320];
    snprintf(login, sizeof login, "%s/admin/login", pl.base);
    CURL *lc = curl_easy_init();
    int limited = 0, redirected = 0;
    for (int try = 0; try < 6; try++) {
        ct_http_resp lr;
        long st = ct_http_do(lc, "POST", login, form, "key=not-the-key", &lr);
        ct_http_free(&lr);
        limited += st == 429, redirected += st == 303;
    }
    curl_easy_cleanup(lc);
    cr_assert_gt(redirected, 0, "no login attempt was answered");
    cr_assert_geq(limited, 3, "6 logins at once: %d refused", limited);
    /* Without the key or a session: refused. */
    const char *none[] = {"Authorization:", NULL};
    json_decref(call("GET", "/v1/admin/topics", none, NULL, 401));
    char cmd[1024], out[320];
    snprintf(out, sizeof out, "%s/openapi_check.out", pl.dir);
    snprintf(cmd, sizeof cmd, "python3 %s/schemas/openapi_check.py %s/ingress/openapi.json %s > %s 2>&1", CT_SOURCE_DIR,
             CT_SOURCE_DIR, exchanges, out);
    int rc = system(cmd);
    if (rc != 0) ct_test_print_log_tail(out, 20);
    cr_assert_eq(rc, 0, "answers ingress/openapi.json does not document (above)");
    rd_kafka_destroy(rk);
    ct_test_inv_check(&pl.inv, "after the console");
}
