/* ct_publisher on librdkafka's in-process mock cluster (no real broker):
 * ordered delivery with offsets, exactly-once through retriable protocol
 * errors, bounded failure reporting, refusals at enqueue, headers,
 * partition counts. Each test (its own process under Criterion) gets a
 * fresh 3-broker mock cluster with topic "t" (3 partitions, RF 3). */
#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/ct_test_mock.h"
#include "ct_config.h"
#include "ct_log.h"
#include "ct_publisher.h"

/* RD_KAFKAP_Produce lives in librdkafka's private rdkafka_protocol.h, which
 * Debian does not install; the Kafka protocol fixes ApiKey Produce at 0. */
#define API_KEY_PRODUCE 0
#define API_KEY_METADATA 3

#define TOPIC "t"
#define NKEYS 5

static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mc;
static char bootstrap[256];

static void mock_setup(void) {
    mc = ct_test_mock_cluster(&mock_rk, 3, TOPIC, 3);
    /* The 2.0.2 mock advertises Metadata up to v2, which has no
     * AllowAutoTopicCreation field, and then creates every unknown topic a
     * client asks about (4 partitions). From v4 on it honours the client's
     * allow.auto.create.topics, so a missing topic stays missing. */
    cr_assert_eq(rd_kafka_mock_set_apiversion(mc, API_KEY_METADATA, 0, 4), RD_KAFKA_RESP_ERR_NO_ERROR);
    snprintf(bootstrap, sizeof bootstrap, "%s", rd_kafka_mock_cluster_bootstraps(mc));
}

static void mock_teardown(void) {
    if (mc) rd_kafka_mock_cluster_destroy(mc);
    if (mock_rk) rd_kafka_destroy(mock_rk);
    mc = NULL, mock_rk = NULL;
}

TestSuite(publisher, .init = mock_setup, .fini = mock_teardown, .timeout = 120);

/* A configuration pointing at the mock cluster; extra is one more
 * NAME=VALUE or NULL. */
static void load_config(ct_config *cfg, int publish_timeout_ms, const char *extra) {
    char brokers[300], timeout[64];
    snprintf(brokers, sizeof brokers, "CONCERT_KAFKA_BROKERS=%s", bootstrap);
    snprintf(timeout, sizeof timeout, "CONCERT_RELAY_PUBLISH_TIMEOUT_MS=%d", publish_timeout_ms);
    char *env[] = {brokers, timeout, "CONCERT_KAFKA_TIMEOUT_MS=5000", (char *)extra, NULL};
    ct_error err = {0};
    cr_assert_eq(ct_config_load(cfg, env, &err), 0, "%s", err.msg);
}

static ct_publisher *publisher(const ct_config *cfg) {
    ct_error err = {0};
    ct_publisher *p = ct_publisher_new(cfg, "test-publisher", &err);
    cr_assert_not_null(p, "%s: %s", err.msg, err.detail);
    return p;
}

/* n messages to topic, key "k<i % NKEYS>", id "<prefix>-<i, 4 digits>";
 * returns a calloc'd array and its strings in *strs (free both). */
static ct_publish_msg *make_msgs(const char *topic, const char *prefix, size_t n, char **strs) {
    ct_publish_msg *m = calloc(n, sizeof *m);
    char *s = calloc(n, 64);
    cr_assert(m && s);
    for (size_t i = 0; i < n; i++) {
        char *key = s + i * 64, *id = key + 8, *val = key + 32;
        snprintf(key, 8, "k%zu", i % NKEYS);
        snprintf(id, 24, "%s-%04zu", prefix, i);
        snprintf(val, 32, "{\"n\":%zu}", i);
        m[i] = (ct_publish_msg){.topic = topic,
                                .partition = RD_KAFKA_PARTITION_UA,
                                .key = key,
                                .key_len = strlen(key),
                                .value = val,
                                .value_len = strlen(val),
                                .id = id,
                                .type = "Test"};
    }
    *strs = s;
    return m;
}

/* ---- reading the topic back ----------------------------------------------- */

typedef struct record {
    int32_t partition;
    int64_t offset;
    char key[16], value[64], id[32], type[32], v[8];
    bool has_id, has_type, has_v;
} record;

static void header_copy(rd_kafka_headers_t *h, const char *name, char *out, size_t n, bool *found) {
    const void *val = NULL;
    size_t len = 0;
    *found = h && rd_kafka_header_get_last(h, name, &val, &len) == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (*found) snprintf(out, n, "%.*s", (int)len, val ? (const char *)val : "");
}

/* Every record of TOPIC, read with a plain (group-less) consumer from the
 * beginning up to each partition's high watermark; *n_out set. */
static record *consume_all(size_t *n_out) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    cr_assert_eq(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof errstr), RD_KAFKA_CONF_OK);
    /* rd_kafka_assign needs a group, though nothing joins or commits. */
    cr_assert_eq(rd_kafka_conf_set(conf, "group.id", "test-reader", errstr, sizeof errstr), RD_KAFKA_CONF_OK);
    cr_assert_eq(rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr), RD_KAFKA_CONF_OK);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    cr_assert_not_null(c, "%s", errstr);

    int64_t high[3], total = 0;
    for (int32_t p = 0; p < 3; p++) {
        int64_t low = 0;
        cr_assert_eq(rd_kafka_query_watermark_offsets(c, TOPIC, p, &low, &high[p], 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
        cr_assert_eq(low, 0);
        total += high[p];
    }
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(3);
    for (int32_t p = 0; p < 3; p++)
        rd_kafka_topic_partition_list_add(parts, TOPIC, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    cr_assert_eq(rd_kafka_assign(c, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);

    record *recs = calloc((size_t)total + 1, sizeof *recs);
    cr_assert_not_null(recs);
    size_t n = 0;
    int64_t deadline = ct_clock_mono_ms() + 30000;
    while ((int64_t)n < total && ct_clock_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (!m) continue;
        if (m->err) {
            cr_log_warn("consumer: %s", rd_kafka_message_errstr(m));
        } else {
            record *r = &recs[n++];
            r->partition = m->partition;
            r->offset = m->offset;
            snprintf(r->key, sizeof r->key, "%.*s", (int)m->key_len, m->key ? (const char *)m->key : "");
            snprintf(r->value, sizeof r->value, "%.*s", (int)m->len, m->payload ? (const char *)m->payload : "");
            rd_kafka_headers_t *h = NULL;
            rd_kafka_message_headers(m, &h);
            header_copy(h, "id", r->id, sizeof r->id, &r->has_id);
            header_copy(h, "type", r->type, sizeof r->type, &r->has_type);
            header_copy(h, "v", r->v, sizeof r->v, &r->has_v);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    cr_assert_eq((int64_t)n, total, "read %zu of %lld records", n, (long long)total);
    *n_out = n;
    return recs;
}

/* ---- tests ------------------------------------------------------------------ */

Test(publisher, delivers_in_order_with_partition_and_offset) {
    ct_config cfg;
    load_config(&cfg, 30000, NULL);
    ct_publisher *p = publisher(&cfg);
    char *strs;
    enum { N = 300 };
    ct_publish_msg *m = make_msgs(TOPIC, "m", N, &strs);

    ct_error err = {0};
    cr_assert_eq(ct_publisher_send(p, m, N, &err), 0, "%s", err.msg);

    int32_t key_part[NKEYS] = {-1, -1, -1, -1, -1};
    int64_t last_off[3] = {-1, -1, -1};
    for (size_t i = 0; i < N; i++) {
        cr_assert_eq(m[i].out_err, RD_KAFKA_RESP_ERR_NO_ERROR, "msg %zu: %s", i, m[i].out_errstr);
        cr_assert(m[i].out_partition >= 0 && m[i].out_partition < 3, "msg %zu partition %d", i, m[i].out_partition);
        size_t k = i % NKEYS;
        if (key_part[k] < 0) key_part[k] = m[i].out_partition;
        cr_assert_eq(m[i].out_partition, key_part[k], "key k%zu moved partitions", k);
        cr_assert_gt(m[i].out_offset, last_off[m[i].out_partition], "msg %zu offset %lld not after %lld", i,
                     (long long)m[i].out_offset, (long long)last_off[m[i].out_partition]);
        last_off[m[i].out_partition] = m[i].out_offset;
    }
    uint64_t delivered = 0, failed = 0;
    ct_publisher_stats(p, &delivered, &failed);
    cr_assert_eq(delivered, N);
    cr_assert_eq(failed, 0);

    ct_publisher_destroy(p);
    free(m);
    free(strs);
}

Test(publisher, retriable_errors_deliver_each_message_exactly_once) {
    ct_config cfg;
    load_config(&cfg, 30000, NULL);
    ct_publisher *p = publisher(&cfg);
    char *strs;
    enum { N = 100 };
    ct_publish_msg *m = make_msgs(TOPIC, "r", N, &strs);

    rd_kafka_mock_push_request_errors(mc, API_KEY_PRODUCE, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    ct_error err = {0};
    cr_assert_eq(ct_publisher_send(p, m, N, &err), 0, "%s", err.msg);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(m[i].out_err, RD_KAFKA_RESP_ERR_NO_ERROR, "msg %zu: %s", i, m[i].out_errstr);

    size_t n = 0;
    record *recs = consume_all(&n);
    cr_assert_eq(n, N, "%zu records in the topic for %d messages", n, N);
    int seen[N] = {0};
    int last_per_key[NKEYS] = {-1, -1, -1, -1, -1};
    for (size_t r = 0; r < n; r++) {
        int idx = -1;
        cr_assert(recs[r].has_id && sscanf(recs[r].id, "r-%d", &idx) == 1 && idx >= 0 && idx < N, "bad id '%s'",
                  recs[r].id);
        seen[idx]++;
        cr_assert_eq(recs[r].offset, m[idx].out_offset, "%s: offset %lld in Kafka, %lld reported", recs[r].id,
                     (long long)recs[r].offset, (long long)m[idx].out_offset);
        cr_assert_eq(recs[r].partition, m[idx].out_partition);
        /* Records come back per partition in offset order, and a key stays
         * in one partition: so its ids must come back ascending. */
        int k = idx % NKEYS;
        cr_assert_gt(idx, last_per_key[k], "key k%d: %s after r-%04d", k, recs[r].id, last_per_key[k]);
        last_per_key[k] = idx;
    }
    for (int i = 0; i < N; i++) cr_assert_eq(seen[i], 1, "r-%04d appears %d times", i, seen[i]);

    uint64_t delivered = 0, failed = 0;
    ct_publisher_stats(p, &delivered, &failed);
    cr_assert_eq(delivered, N);
    cr_assert_eq(failed, 0);

    free(recs);
    ct_publisher_destroy(p);
    free(m);
    free(strs);
}

/* Every Produce request fails: each message is reported failed once
 * message.timeout.ms (1 s) runs out, and send returns soon after. */
Test(publisher, persistent_errors_fail_every_message_in_bounded_time) {
    ct_config cfg;
    load_config(&cfg, 1000, NULL);
    ct_publisher *p = publisher(&cfg);
    char *strs;
    enum { N = 20 };
    ct_publish_msg *m = make_msgs(TOPIC, "f", N, &strs);

    rd_kafka_resp_err_t errs[1000];
    for (size_t i = 0; i < 1000; i++) errs[i] = RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS;
    rd_kafka_mock_push_request_errors_array(mc, API_KEY_PRODUCE, 1000, errs);

    ct_error err = {0};
    int64_t t0 = ct_clock_mono_ms();
    cr_assert_eq(ct_publisher_send(p, m, N, &err), 0, "%s", err.msg);
    int64_t took = ct_clock_mono_ms() - t0;
    cr_assert_lt(took, 5000, "send took %lld ms", (long long)took);
    for (size_t i = 0; i < N; i++) {
        /* Timed out by librdkafka itself: message.timeout.ms is in effect
         * (the publisher's purge fallback would report PURGE_*). */
        cr_assert_eq(m[i].out_err, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, "msg %zu: %s", i, rd_kafka_err2name(m[i].out_err));
        cr_assert_neq(m[i].out_errstr[0], '\0', "msg %zu without an error string", i);
    }
    uint64_t delivered = 0, failed = 0;
    ct_publisher_stats(p, &delivered, &failed);
    cr_assert_eq(delivered, 0);
    cr_assert_eq(failed, N);

    rd_kafka_mock_clear_request_errors(mc, API_KEY_PRODUCE);
    ct_publisher_destroy(p);
    free(m);
    free(strs);
}

Test(publisher, missing_topic_fails_every_message_in_bounded_time) {
    ct_config cfg;
    load_config(&cfg, 1000, NULL);
    ct_publisher *p = publisher(&cfg);
    char *strs;
    enum { N = 10 };
    ct_publish_msg *m = make_msgs("no-such-topic", "x", N, &strs);

    ct_error err = {0};
    int64_t t0 = ct_clock_mono_ms();
    int rc = ct_publisher_send(p, m, N, &err);
    int64_t took = ct_clock_mono_ms() - t0;
    cr_assert_lt(took, 5000, "send took %lld ms", (long long)took);
    /* Unknown topics get topic.metadata.propagation.max.ms (30 s) to
     * appear, so the messages are queued and then time out. */
    cr_assert_eq(rc, 0, "%s", err.msg);
    for (size_t i = 0; i < N; i++) {
        cr_assert_neq(m[i].out_err, RD_KAFKA_RESP_ERR_NO_ERROR, "msg %zu delivered to partition %d", i,
                      m[i].out_partition);
        cr_assert_neq(m[i].out_errstr[0], '\0', "msg %zu without an error string", i);
    }
    uint64_t delivered = 0, failed = 0;
    ct_publisher_stats(p, &delivered, &failed);
    cr_assert_eq(delivered, 0);
    cr_assert_eq(failed, N);

    ct_publisher_destroy(p);
    free(m);
    free(strs);
}

/* With no propagation grace, a topic the cluster says is missing refuses
 * messages at enqueue: send reports the refusal, still delivers (and waits
 * for) the rest. */
Test(publisher, refused_at_enqueue_returns_error_after_the_rest) {
    ct_config cfg;
    load_config(&cfg, 5000, "CONCERT_KAFKA_CONF_TOPIC_METADATA_PROPAGATION_MAX_MS=0");
    ct_publisher *p = publisher(&cfg);
    ct_error err = {0};
    ct_publish_msg prime = {.topic = "no-such-topic",
                            .partition = RD_KAFKA_PARTITION_UA,
                            .key = "a",
                            .key_len = 1,
                            .value = "x",
                            .value_len = 1,
                            .id = "p-0",
                            .type = "Test"};
    ct_publisher_send(p, &prime, 1, &err); /* learns the topic is missing: refused or failed */
    cr_assert_neq(prime.out_err, RD_KAFKA_RESP_ERR_NO_ERROR);

    ct_publish_msg m[3] = {
        {.topic = TOPIC, .partition = RD_KAFKA_PARTITION_UA, .key = "k1", .key_len = 2, .value = "0", .value_len = 1},
        {.topic = "no-such-topic",
         .partition = RD_KAFKA_PARTITION_UA,
         .key = "k1",
         .key_len = 2,
         .value = "1",
         .value_len = 1,
         .id = "x-1"},
        {.topic = TOPIC, .partition = RD_KAFKA_PARTITION_UA, .key = "k1", .key_len = 2, .value = "2", .value_len = 1},
    };
    ct_error_clear(&err);
    cr_assert_eq(ct_publisher_send(p, m, 3, &err), -1);
    cr_assert_eq(err.klass, CT_ERR_RETRIABLE, "%s: %s", ct_err_class_name(err.klass), err.msg);
    cr_assert(strstr(err.msg, "x-1") && strstr(err.msg, "no-such-topic"), "%s", err.msg);
    cr_assert_eq(m[1].out_err, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, "%s", rd_kafka_err2name(m[1].out_err));
    cr_assert_neq(m[1].out_errstr[0], '\0');
    /* Same key, other topic: not held back; both reported delivered. */
    cr_assert_eq(m[0].out_err, RD_KAFKA_RESP_ERR_NO_ERROR, "%s", m[0].out_errstr);
    cr_assert_eq(m[2].out_err, RD_KAFKA_RESP_ERR_NO_ERROR, "%s", m[2].out_errstr);
    cr_assert_eq(m[2].out_offset, m[0].out_offset + 1);

    uint64_t delivered = 0, failed = 0;
    ct_publisher_stats(p, &delivered, &failed);
    cr_assert_eq(delivered, 2);
    cr_assert_eq(failed, 2);
    ct_publisher_destroy(p);
}

/* A message that can never be produced (larger than message.max.bytes)
 * holds back the later messages of its key, so the caller's retry keeps
 * the key's order; other keys go on. */
Test(publisher, refused_message_holds_back_its_key_only) {
    ct_config cfg;
    load_config(&cfg, 30000, "CONCERT_KAFKA_CONF_MESSAGE_MAX_BYTES=2000");
    ct_publisher *p = publisher(&cfg);
    static char big[4000];
    memset(big, 'b', sizeof big);
    ct_publish_msg m[4] = {
        {.topic = TOPIC,
         .partition = RD_KAFKA_PARTITION_UA,
         .key = "k1",
         .key_len = 2,
         .value = "0",
         .value_len = 1,
         .id = "s-0"},
        {.topic = TOPIC,
         .partition = RD_KAFKA_PARTITION_UA,
         .key = "k1",
         .key_len = 2,
         .value = big,
         .value_len = sizeof big,
         .id = "s-1"},
        {.topic = TOPIC,
         .partition = RD_KAFKA_PARTITION_UA,
         .key = "k1",
         .key_len = 2,
         .value = "2",
         .value_len = 1,
         .id = "s-2"},
        {.topic = TOPIC,
         .partition = RD_KAFKA_PARTITION_UA,
         .key = "k2",
         .key_len = 2,
         .value = "3",
         .value_len = 1,
         .id = "s-3"},
    };
    ct_error err = {0};
    cr_assert_eq(ct_publisher_send(p, m, 4, &err), -1);
    cr_assert_eq(err.klass, CT_ERR_PERMANENT, "%s: %s", ct_err_class_name(err.klass), err.msg);
    cr_assert(strstr(err.msg, "s-1"), "%s", err.msg);
    cr_assert_eq(m[0].out_err, RD_KAFKA_RESP_ERR_NO_ERROR, "%s", m[0].out_errstr);
    cr_assert_eq(m[1].out_err, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, "%s", rd_kafka_err2name(m[1].out_err));
    cr_assert_eq(m[2].out_err, RD_KAFKA_RESP_ERR__PURGE_QUEUE, "%s", rd_kafka_err2name(m[2].out_err));
    cr_assert_neq(m[2].out_errstr[0], '\0');
    cr_assert_eq(m[3].out_err, RD_KAFKA_RESP_ERR_NO_ERROR, "%s", m[3].out_errstr);

    uint64_t delivered = 0, failed = 0;
    ct_publisher_stats(p, &delivered, &failed);
    cr_assert_eq(delivered, 2);
    cr_assert_eq(failed, 2);
    ct_publisher_destroy(p);
}

Test(publisher, record_carries_key_value_and_headers) {
    ct_config cfg;
    load_config(&cfg, 30000, NULL);
    ct_publisher *p = publisher(&cfg);
    ct_publish_msg m = {.topic = TOPIC,
                        .partition = RD_KAFKA_PARTITION_UA,
                        .key = "concert-7",
                        .key_len = 9,
                        .value = "{\"hello\":1}",
                        .value_len = 11,
                        .id = "cmd-42",
                        .type = "ReserveSeats"};
    ct_error err = {0};
    cr_assert_eq(ct_publisher_send(p, &m, 1, &err), 0, "%s", err.msg);
    cr_assert_eq(m.out_err, RD_KAFKA_RESP_ERR_NO_ERROR, "%s", m.out_errstr);

    size_t n = 0;
    record *recs = consume_all(&n);
    cr_assert_eq(n, 1);
    cr_assert_eq(recs[0].partition, m.out_partition);
    cr_assert_eq(recs[0].offset, m.out_offset);
    cr_assert_str_eq(recs[0].key, "concert-7");
    cr_assert_str_eq(recs[0].value, "{\"hello\":1}");
    cr_assert(recs[0].has_id, "no id header");
    cr_assert_str_eq(recs[0].id, "cmd-42");
    cr_assert(recs[0].has_type, "no type header");
    cr_assert_str_eq(recs[0].type, "ReserveSeats");
    cr_assert(recs[0].has_v, "no v header");
    cr_assert_str_eq(recs[0].v, "1");

    free(recs);
    ct_publisher_destroy(p);
}

Test(publisher, explicit_partition_is_kept) {
    ct_config cfg;
    load_config(&cfg, 30000, NULL);
    ct_publisher *p = publisher(&cfg);
    ct_publish_msg m[3];
    for (int32_t i = 0; i < 3; i++)
        m[i] = (ct_publish_msg){.topic = TOPIC,
                                .partition = 2 - i,
                                .key = "same",
                                .key_len = 4,
                                .value = "x",
                                .value_len = 1,
                                .id = "tick",
                                .type = "Tick"};
    ct_error err = {0};
    cr_assert_eq(ct_publisher_send(p, m, 3, &err), 0, "%s", err.msg);
    for (int32_t i = 0; i < 3; i++) {
        cr_assert_eq(m[i].out_err, RD_KAFKA_RESP_ERR_NO_ERROR, "%s", m[i].out_errstr);
        cr_assert_eq(m[i].out_partition, 2 - i);
        cr_assert_eq(m[i].out_offset, 0);
    }
    ct_publisher_destroy(p);
}

Test(publisher, partition_count_from_metadata) {
    ct_config cfg;
    load_config(&cfg, 30000, NULL);
    ct_publisher *p = publisher(&cfg);
    ct_error err = {0};
    int count = -1;
    cr_assert_eq(ct_publisher_partitions(p, TOPIC, &count, &err), 0, "%s", err.msg);
    cr_assert_eq(count, 3);
    count = 0;
    cr_assert_eq(ct_publisher_partitions(p, TOPIC, &count, &err), 0, "cached: %s", err.msg);
    cr_assert_eq(count, 3);

    ct_error_clear(&err);
    count = -7;
    cr_assert_eq(ct_publisher_partitions(p, "no-such-topic", &count, &err), -1, "got %d partitions", count);
    cr_assert_eq(count, -7, "count written on failure");
    cr_assert_neq(err.klass, CT_ERR_NONE);
    cr_assert_neq(err.msg[0], '\0');
    ct_publisher_destroy(p);
    ct_publisher_destroy(NULL);
}
