/* Broker failure on the local cluster: with one of the three brokers killed
 * (SIGKILL), an acks=all idempotent producer keeps delivering (every record
 * acknowledged once) and a consumer keeps reading; the broker restarted
 * rejoins every partition's ISR. Needs the daemon cluster of scripts/test. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "../support/ct_test_kafka.h"
#include "ct_localkafka.h"
#include "ct_proc.h"

#define RECORDS 600
#define VICTIM 2
#define WAIT_MS 120000

static ct_config cfg;

typedef struct tally {
    int ok, failed;
} tally;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    tally *t = opaque;
    if (m->err)
        t->failed++;
    else
        t->ok++;
}

/* The record's index when it belongs to this run, else -1. */
static int run_index(const rd_kafka_message_t *m, const char *run) {
    if (m->err || m->key_len <= strlen(run) || memcmp(m->key, run, strlen(run)) != 0) return -1;
    char v[16];
    snprintf(v, sizeof v, "%.*s", (int)m->len, (const char *)m->payload);
    int idx = atoi(v);
    return idx >= 0 && idx < RECORDS ? idx : -1;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

Test(broker_failure, producer_and_consumer_survive_a_killed_broker_which_rejoins, .timeout = 500) {
    ct_test_load_config(&cfg);
    cr_assert_str_empty(cfg.kafka_brokers, "this test kills a local broker: run it through scripts/test");
    pid_t victim = ct_localkafka_node_pid(&cfg, VICTIM);
    cr_assert_gt(victim, 0, "local broker %d is not running (start it with `concert kafka start`)", VICTIM);

    char run[32], group[64];
    ct_test_run_id(run, sizeof run);
    snprintf(group, sizeof group, "ct-test-failover-%s", run);
    rd_kafka_t *c = ct_test_consumer(&cfg, group, 1);
    tally t = {0};
    ct_error err = {0};
    ct_kafka_producer_opts po = {
        .client_id = "ct-test-failover", .linger_ms = 5, .dr_msg_cb = on_delivery, .opaque = &t};
    rd_kafka_t *p = ct_kafka_producer_new(&cfg, &po, &err);
    cr_assert_not_null(p, "%s", err.msg);

    /* Keys spread over every partition, so some of them are led by the victim. */
    int seen[RECORDS] = {0}, received = 0, duplicates = 0;
    int64_t deadline = ct_clock_mono_ms() + WAIT_MS;
    for (int i = 0; i < RECORDS; i++) {
        if (i == RECORDS / 3) {
            cr_assert_eq(kill(victim, SIGKILL), 0);
            while (ct_proc_alive(victim)) sleep_ms(20);
        }
        char key[48], val[16];
        snprintf(key, sizeof key, "%s-%d", run, i % 24);
        int n = snprintf(val, sizeof val, "%d", i);
        cr_assert_eq(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(CT_TOPIC_TEST), RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE(val, (size_t)n), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_END),
                     0);
        rd_kafka_poll(p, 0);
        if (i % 50 == 0) sleep_ms(50); /* a steady stream across the failure */
        for (rd_kafka_message_t *m; (m = rd_kafka_consumer_poll(c, 0));) {
            int idx = run_index(m, run);
            if (idx >= 0) (seen[idx]++ ? duplicates++ : received++);
            rd_kafka_message_destroy(m);
        }
    }
    cr_assert_eq(rd_kafka_flush(p, WAIT_MS), 0, "producer could not deliver everything");
    while (received < RECORDS && ct_clock_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (!m) continue;
        int idx = run_index(m, run);
        if (idx >= 0) (seen[idx]++ ? duplicates++ : received++);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_destroy(p);
    ct_test_consumer_close(c);
    cr_assert_eq(t.failed, 0, "%d records failed delivery", t.failed);
    cr_assert_eq(t.ok, RECORDS, "%d of %d acknowledged", t.ok, RECORDS);
    cr_assert_eq(received, RECORDS, "consumer read %d of %d", received, RECORDS);
    cr_assert_eq(duplicates, 0, "idempotent producer wrote %d duplicates", duplicates);

    /* Restart: the node rejoins, and every partition's ISR is whole again. */
    cr_assert_eq(ct_localkafka_start(&cfg, &err), 0, "%s %s", err.msg, err.detail);
    cr_assert_gt(ct_localkafka_node_pid(&cfg, VICTIM), 0);
    rd_kafka_t *admin = ct_kafka_admin_new(&cfg, "ct-test", &err);
    int parts = 0, replicas = 0, isr = 0;
    deadline = ct_clock_mono_ms() + WAIT_MS;
    while (ct_clock_mono_ms() < deadline) {
        if (ct_kafka_describe_topic(admin, CT_TOPIC_TEST, &parts, &replicas, &isr, 5000, &err) == 0 && isr == 3) break;
        sleep_ms(500);
    }
    rd_kafka_destroy(admin);
    cr_assert_eq(isr, 3, "restarted broker did not rejoin the ISR (min isr %d)", isr);
}
