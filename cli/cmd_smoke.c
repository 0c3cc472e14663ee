/*
 * `concert smoke` (STEP 17): produce `test-message` to test-topic with an
 * idempotent acks=all producer, consume it back through a consumer group of
 * its own, print both sides with partition and offset. Exit 0 only if the
 * very record sent came back (matched by a per-run key) within the timeout.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "commands.h"
#include "ct_kafka.h"
#include "ct_log.h"

#define SMOKE_VALUE "test-message"

typedef struct delivery {
    int done;
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
} delivery;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    delivery *d = m->_private;
    d->done = 1;
    d->err = m->err;
    d->partition = m->partition;
    d->offset = m->offset;
}

int ct_cmd_smoke(const ct_config *cfg, int argc, char **argv) {
    long timeout_ms = 30000;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc && (timeout_ms = strtol(argv[++i], &end, 10)) > 0 &&
            *end == '\0')
            continue;
        fprintf(stderr, "usage: concert smoke [--timeout-ms N]\n");
        return CT_EXIT_USAGE;
    }
    ct_error err = {0};
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        fprintf(stderr, "error: getrandom failed\n");
        return CT_EXIT_FAILURE;
    }
    char run[17], group[64];
    for (int i = 0; i < 8; i++) snprintf(run + 2 * i, 3, "%02x", rnd[i]);
    snprintf(group, sizeof group, "concert-smoke-%s", run);
    char bootstrap[CT_CONFIG_URL_MAX];
    ct_kafka_bootstrap(cfg, bootstrap, sizeof bootstrap);
    printf("brokers: %s\n", bootstrap);

    int rc = CT_EXIT_FAILURE;
    rd_kafka_t *consumer = NULL;
    rd_kafka_topic_partition_list_t *subs = NULL;
    ct_kafka_producer_opts popts = {.client_id = "concert-smoke", .linger_ms = 0, .dr_msg_cb = on_delivery};
    rd_kafka_t *producer = ct_kafka_producer_new(cfg, &popts, &err);
    if (!producer) return ct_cmd_fail("smoke", &err);
    delivery d = {0};
    rd_kafka_resp_err_t e = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(CT_TOPIC_TEST), RD_KAFKA_V_KEY(run, strlen(run)),
        RD_KAFKA_V_VALUE((void *)SMOKE_VALUE, strlen(SMOKE_VALUE)), RD_KAFKA_V_HEADER("smoke-run", run, -1),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
    if (e) {
        fprintf(stderr, "error: produce: %s\n", rd_kafka_err2str(e));
        goto cleanup;
    }
    rd_kafka_flush(producer, (int)timeout_ms);
    if (!d.done || d.err) {
        fprintf(stderr, "error: not delivered: %s\n", d.done ? rd_kafka_err2str(d.err) : "timed out");
        goto cleanup;
    }
    printf("sent:     topic=%s partition=%" PRId32 " offset=%" PRId64 " key=%s value=%s\n", CT_TOPIC_TEST, d.partition,
           d.offset, run, SMOKE_VALUE);
    fflush(stdout);

    ct_kafka_consumer_opts copts = {
        .client_id = "concert-smoke", .group_id = group, .read_committed = true, .auto_offset_reset = "earliest"};
    consumer = ct_kafka_consumer_new(cfg, &copts, &err);
    if (!consumer) {
        rc = ct_cmd_fail("smoke", &err);
        goto cleanup;
    }
    subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, CT_TOPIC_TEST, RD_KAFKA_PARTITION_UA);
    if ((e = rd_kafka_subscribe(consumer, subs))) {
        fprintf(stderr, "error: subscribe: %s\n", rd_kafka_err2str(e));
        goto cleanup;
    }
    int64_t deadline = ct_clock_mono_ms() + timeout_ms;
    while (ct_clock_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 200);
        if (!m) continue;
        int match = !m->err && m->key_len == strlen(run) && memcmp(m->key, run, m->key_len) == 0;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            CT_LOG_WARN("smoke", "consume error: %s", rd_kafka_message_errstr(m));
        if (match) {
            printf("received: topic=%s partition=%" PRId32 " offset=%" PRId64 " key=%s value=%.*s group=%s\n",
                   rd_kafka_topic_name(m->rkt), m->partition, m->offset, run, (int)m->len, (const char *)m->payload,
                   group);
            int same = m->partition == d.partition && m->offset == d.offset && m->len == strlen(SMOKE_VALUE) &&
                       memcmp(m->payload, SMOKE_VALUE, m->len) == 0;
            rd_kafka_commit_message(consumer, m, 0);
            rd_kafka_message_destroy(m);
            if (!same) {
                fprintf(stderr, "error: received record differs from the one sent\n");
                goto cleanup;
            }
            printf("smoke: ok\n");
            rc = CT_EXIT_OK;
            goto cleanup;
        }
        rd_kafka_message_destroy(m);
    }
    fprintf(stderr, "error: test-message did not come back within %ld ms\n", timeout_ms);
cleanup:
    if (subs) rd_kafka_topic_partition_list_destroy(subs);
    if (consumer) {
        rd_kafka_consumer_close(consumer);
        rd_kafka_destroy(consumer);
    }
    rd_kafka_destroy(producer);
    return rc;
}
