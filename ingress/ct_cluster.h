/*
 * ct_cluster: what the console shows of the Kafka cluster, as JSON: topics
 * with each partition's leader, replicas, ISR and watermarks; a partition's
 * records read read_committed from an offset, or searched by key; a test
 * record produced to test-topic; the pipeline's consumer groups with their
 * members, what each owns, and committed offsets against the ends.
 *
 * Its librdkafka handles (metadata/admin, a consumer that never joins a
 * group or commits, a producer) are made on first use and kept. Every call
 * blocks for at most a few seconds: the ingress runs them on its admin
 * worker, never on an HTTP thread.
 *
 * Locality: one thread at a time.
 */
#ifndef CT_CLUSTER_H
#define CT_CLUSTER_H

#include <jansson.h>
#include <stdint.h>

#include "ct_config.h"
#include "ct_error.h"

/* At most this many records of a partition are read for one answer, and a
 * key search looks at most at this many of each partition's latest. */
#define CT_CLUSTER_RECORDS_MAX 200
#define CT_CLUSTER_SEARCH_DEPTH 20000

typedef struct ct_cluster ct_cluster;

ct_cluster *ct_cluster_new(const ct_config *cfg);
void ct_cluster_destroy(ct_cluster *c); /* NULL ok */

/* {brokers:[{id,host,port}], topics:[{topic, partitions:[{partition,
 * leader, replicas:[], isr:[], low, high, records}]}]}, internal topics
 * (__*) left out. NULL with err when the cluster does not answer. */
json_t *ct_cluster_topics(ct_cluster *c, ct_error *err);

/* Records of topic. partition >= 0: that one, from offset (< 0: its latest
 * `limit`); partition < 0 with a key: every partition's latest
 * CT_CLUSTER_SEARCH_DEPTH records searched for the key, the latest `limit`
 * matches kept. {topic, records:[{partition, offset, timestamp, key,
 * headers:{}, value}], ...}: value is the record's JSON when it is JSON,
 * else its text. NULL with err (PERMANENT for an unknown topic or
 * partition, the message says which). */
json_t *ct_cluster_records(ct_cluster *c, const char *topic, int partition, int64_t offset, int limit, const char *key,
                           ct_error *err);

/* Produces one record to test-topic and waits for it to be acknowledged:
 * {topic, partition, offset}. key may be NULL. */
json_t *ct_cluster_produce_test(ct_cluster *c, const char *key, const char *value, ct_error *err);

/* The groups named (absent ones have state "Dead" and no members):
 * [{group, state, members:[{member_id, client_id, instance_id, host,
 * assignment:[{topic, partition}]}], partitions:[{topic, partition,
 * committed, high, lag, owner}]}]. partitions lists each partition of the
 * topics the group consumes or committed; committed is null where the
 * group has no offset in Kafka. positions (may be NULL) gives the offsets
 * a group keeps elsewhere (the projector's are in Postgres), as {group:
 * {topic: {"<partition>": next offset}}}; they win over Kafka's. */
json_t *ct_cluster_groups(ct_cluster *c, const char *const *groups, size_t n, json_t *positions, ct_error *err);

#endif
