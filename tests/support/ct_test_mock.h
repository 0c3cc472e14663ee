/* librdkafka's in-process mock cluster for unit tests of the Kafka adapters
 * (protocol errors only: it lacks durable storage, transactional offsets,
 * fencing and read_committed). Header-only. */
#ifndef CT_TEST_MOCK_H
#define CT_TEST_MOCK_H

#include <criterion/criterion.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "ct_log.h"

/* A mock cluster of `brokers` brokers with topic `topic` (`partitions`,
 * replication factor `brokers`), hosted by *host (destroy the cluster, then
 * the host). */
static inline rd_kafka_mock_cluster_t *ct_test_mock_cluster(rd_kafka_t **host, int brokers, const char *topic,
                                                            int partitions) {
    ct_log_init("test", CT_LOG_ERROR);
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The handle only hosts the cluster: keep it quiet about having no
     * bootstrap servers of its own. */
    rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof errstr);
    *host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    cr_assert_not_null(*host, "%s", errstr);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(*host, brokers);
    cr_assert_not_null(mc);
    cr_assert_eq(rd_kafka_mock_topic_create(mc, topic, partitions, brokers), RD_KAFKA_RESP_ERR_NO_ERROR);
    return mc;
}

#endif
