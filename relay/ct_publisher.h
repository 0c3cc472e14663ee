/*
 * ct_publisher: the relay's Kafka producer adapter.
 *
 * An idempotent acks=all producer (ct_kafka) used in batches: produce a
 * batch, then block until librdkafka has reported on every message
 * (delivered with partition and offset, or failed with an error). The
 * producer's message.timeout.ms is CONCERT_RELAY_PUBLISH_TIMEOUT_MS, which
 * bounds the wait: librdkafka reports every message within it (and for the
 * one case where it holds messages longer, no producer id yet because no
 * broker was ever reachable, send purges them 2 s past it). Idempotence
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

/* An idempotent acks=all producer (ct_kafka_producer_new) whose
 * message.timeout.ms is cfg->relay_publish_timeout_ms, linger.ms 5, and
 * allow.auto.create.topics false (a missing topic fails its messages instead
 * of appearing with the broker's default partition count). cfg must outlive
 * the publisher. */
ct_publisher *ct_publisher_new(const ct_config *cfg, const char *client_id, ct_error *err);

/* Produces msgs[0..n) in order and blocks until every one has its delivery
 * report, filling out_* (out_offset -1 unless delivered). Returns:
 *  0  every message was enqueued and reported; some may carry out_err != 0
 *     (the caller retries those);
 * -1  with err: the producer hit a fatal error (CT_ERR_FATAL: destroy it and
 *     make a new one), or librdkafka refused to enqueue a message (err names
 *     the first; CT_ERR_PERMANENT for the message itself, e.g. too large,
 *     CT_ERR_RETRIABLE for a missing topic or partition). A refused message
 *     gets its error in out_err; later messages of the same topic and key
 *     are not produced (out_err RD_KAFKA_RESP_ERR__PURGE_QUEUE) so that a
 *     retry keeps the key's order; everything else is produced and waited
 *     for as usual.
 * A full local queue is waited out, not reported. Never returns while a
 * delivery report could still write into msgs. Not thread-safe: one sender
 * per publisher. */
int ct_publisher_send(ct_publisher *p, ct_publish_msg *msgs, size_t n, ct_error *err);

/* Partitions of a topic (metadata, cached 30 s); -1 with err if unknown. */
int ct_publisher_partitions(ct_publisher *p, const char *topic, int *count, ct_error *err);

/* Messages delivered / failed (reported failed or refused) since creation,
 * for /metrics and logs; safe to call from any thread. */
void ct_publisher_stats(const ct_publisher *p, uint64_t *delivered, uint64_t *failed);

/* Waits up to 5 s for anything in flight, then frees. NULL ok. */
void ct_publisher_destroy(ct_publisher *p);

#endif
