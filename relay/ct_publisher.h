/*
 * ct_publisher: the relay's Kafka producer adapter.
 *
 * An idempotent acks=all producer (ct_kafka) used in batches: produce a
 * batch, then block until librdkafka has reported on every message
 * (delivered with partition and offset, or failed with an error). The
 * producer's message.timeout.ms is CONCERT_RELAY_PUBLISH_TIMEOUT_MS, which
 * bounds the wait: librdkafka reports every message within it. Idempotence
 * keeps the order of a partition's messages through librdkafka's own
 * retries, with no duplicates from them.
 */
#ifndef CT_PUBLISHER_H
#define CT_PUBLISHER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "ct_config.h"
#include "ct_error.h"

typedef struct ct_publisher ct_publisher;

typedef struct ct_publish_msg {
    /* in */
    const char *topic;
    int32_t partition; /* RD_KAFKA_PARTITION_UA: from the key, by the partitioner */
    const char *key;   /* NULL: no key */
    size_t key_len;
    const char *value;
    size_t value_len;
    const char *id;   /* header "id" */
    const char *type; /* header "type"; header "v" is always "1" */
    /* out */
    int32_t out_partition;
    int64_t out_offset;
    rd_kafka_resp_err_t out_err; /* RD_KAFKA_RESP_ERR_NO_ERROR: delivered */
    char out_errstr[160];
} ct_publish_msg;

ct_publisher *ct_publisher_new(const ct_config *cfg, const char *client_id, ct_error *err);

/* Produces msgs[0..n) in order and returns once every one has its outcome
 * in out_*. 0 when each message was reported (some may have failed: the
 * caller retries those); -1 with err when the producer hit a fatal error
 * (CT_ERR_FATAL: destroy it, make a new one). Never returns while a report
 * could still write into msgs. */
int ct_publisher_send(ct_publisher *p, ct_publish_msg *msgs, size_t n, ct_error *err);

/* Partitions of a topic (metadata, cached 30 s); -1 with err if unknown. */
int ct_publisher_partitions(ct_publisher *p, const char *topic, int *count, ct_error *err);

void ct_publisher_stats(const ct_publisher *p, uint64_t *delivered, uint64_t *failed);

/* Waits up to 5 s for anything in flight, then frees. NULL ok. */
void ct_publisher_destroy(ct_publisher *p);

#endif
