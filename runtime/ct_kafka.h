/*
 * ct_kafka: librdkafka handles made from the configuration, the topic
 * catalogue of DESIGN.md section 2, and cluster checks.
 *
 * Every handle gets bootstrap.servers (CONCERT_KAFKA_BROKERS or the local
 * cluster), the CONCERT_KAFKA_CONF_* pass-through properties, and a log
 * callback that routes librdkafka's logs into ct_log. Callers own the
 * returned rd_kafka_t and destroy it with rd_kafka_destroy().
 */
#ifndef CT_KAFKA_H
#define CT_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

#include "ct_config.h"
#include "ct_error.h"

#define CT_TOPIC_CONCERT_COMMANDS "concert.commands"
#define CT_TOPIC_WALLET_COMMANDS "wallet.commands"
#define CT_TOPIC_CONCERT_EVENTS "concert.events"
#define CT_TOPIC_WALLET_EVENTS "wallet.events"
#define CT_TOPIC_TEST "test-topic"

/* The processors' consumer groups: this prefix, then the role name. */
#define CT_PROCESSOR_GROUP_PREFIX "concert-processor-"

typedef struct ct_topic_spec {
    const char *name;
    /* retention.ms=-1: the command topics are the processors' replayable
     * history, the event topics the read models' (concert replay). */
    bool keep_forever;
    /* message.timestamp.type=LogAppendTime: the brokers' clock stamps each
     * record, and bounds how far ahead of it a command's own ts may be. */
    bool broker_time;
} ct_topic_spec;

/* The topics the system creates; *count set to their number. */
const ct_topic_spec *ct_kafka_topics(size_t *count);

/* The bootstrap list in effect: the configured one or the local cluster's. */
void ct_kafka_bootstrap(const ct_config *cfg, char *out, size_t out_bytes);

typedef struct ct_kafka_producer_opts {
    const char *client_id;
    const char *transactional_id; /* NULL: idempotent, not transactional */
    int linger_ms;                /* < 0: librdkafka's default */
    /* Optional properties of this producer, as name, value, name, value, ...,
     * NULL. Applied last, so they win over CONCERT_KAFKA_CONF_*: they are
     * what the caller's correctness rests on (a transaction timeout, no
     * auto-created topics). */
    const char *const *extra;
    void (*dr_msg_cb)(rd_kafka_t *, const rd_kafka_message_t *, void *);
    void *opaque;
} ct_kafka_producer_opts;

/* An idempotent acks=all producer (transactional when asked). */
rd_kafka_t *ct_kafka_producer_new(const ct_config *cfg, const ct_kafka_producer_opts *opts, ct_error *err);

typedef struct ct_kafka_consumer_opts {
    const char *client_id;
    const char *group_id;
    bool read_committed;
    bool auto_commit;
    const char *auto_offset_reset; /* NULL: "earliest" */
    /* Static membership (KIP-345): a restarted member with the same id takes
     * its place without a rebalance. NULL: dynamic member. */
    const char *group_instance_id;
    int session_timeout_ms; /* 0: librdkafka's default */
    bool partition_eof;     /* rd_kafka_consumer_poll reports reaching a partition's end */
    void *opaque;
    /* Optional: called (from rd_kafka_consumer_poll) on assignment changes;
     * it must call rd_kafka_assign itself. */
    void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t, rd_kafka_topic_partition_list_t *, void *);
} ct_kafka_consumer_opts;

rd_kafka_t *ct_kafka_consumer_new(const ct_config *cfg, const ct_kafka_consumer_opts *opts, ct_error *err);

/* A plain handle for admin and metadata calls. */
rd_kafka_t *ct_kafka_admin_new(const ct_config *cfg, const char *client_id, ct_error *err);

/* Waits until the cluster's metadata lists at least brokers_min brokers.
 * Returns 0, or -1 with a retriable error when timeout_ms runs out. */
int ct_kafka_wait_brokers(rd_kafka_t *rk, int brokers_min, int timeout_ms, ct_error *err);

/* The first offset of a partition (its low watermark) into *lo. While the
 * partition's leadership moves between brokers (a preferred-leader
 * election after a broker came back, a restart) brokers answer "not
 * leader" for a moment and librdkafka refreshes its metadata meanwhile:
 * such answers are asked again, with growing pauses, for up to retry_ms.
 * Returns 0, or -1 with a retriable error. */
int ct_kafka_first_offset(rd_kafka_t *rk, const char *topic, int32_t partition, int timeout_ms, int retry_ms,
                          int64_t *lo, ct_error *err);

/* Creates the missing topics of ct_kafka_topics() (and their .dlq twins for
 * command topics) with the configured partitions, replication and
 * min.insync.replicas; existing topics are left as they are. */
int ct_kafka_ensure_topics(rd_kafka_t *rk, const ct_config *cfg, ct_error *err);

/* Partition and replica counts of one topic (-1 when it does not exist). */
int ct_kafka_describe_topic(rd_kafka_t *rk, const char *topic, int *partitions, int *replicas_min, int *isr_min,
                            int timeout_ms, ct_error *err);

#endif
