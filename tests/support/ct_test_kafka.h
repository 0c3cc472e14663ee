/* Shared helpers for tests that talk to the real Kafka cluster. Header-only
 * (static functions) so each test binary stays one file plus this. */
#ifndef CT_TEST_KAFKA_H
#define CT_TEST_KAFKA_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "ct_config.h"
#include "ct_kafka.h"
#include "ct_log.h"

static inline void ct_test_load_config(ct_config *cfg) {
    ct_error err = {0};
    cr_assert_eq(ct_config_load_env(cfg, &err), 0, "%s", err.msg);
    ct_log_init("test", CT_LOG_WARN);
}

/* A fresh hex id, so runs against a long-lived cluster never see each
 * other's records, groups or transactional ids. */
static inline void ct_test_run_id(char *out, size_t n) {
    unsigned char r[8];
    cr_assert_eq(getrandom(r, sizeof r, 0), (ssize_t)sizeof r);
    snprintf(out, n, "%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
}

static inline rd_kafka_t *ct_test_consumer(const ct_config *cfg, const char *group, int read_committed) {
    ct_error err = {0};
    ct_kafka_consumer_opts o = {.client_id = "ct-test", .group_id = group, .read_committed = read_committed};
    rd_kafka_t *rk = ct_kafka_consumer_new(cfg, &o, &err);
    cr_assert_not_null(rk, "%s %s", err.msg, err.detail);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, CT_TOPIC_TEST, RD_KAFKA_PARTITION_UA);
    cr_assert_eq(rd_kafka_subscribe(rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

static inline void ct_test_consumer_close(rd_kafka_t *rk) {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

#endif
