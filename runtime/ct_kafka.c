/* ct_kafka: see ct_kafka.h. */
#include "ct_kafka.h"

#include <stdio.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "ct_log.h"

static const ct_topic_spec topics[] = {
    {CT_TOPIC_CONCERT_COMMANDS, true, true},
    {CT_TOPIC_WALLET_COMMANDS, true, true},
    {CT_TOPIC_CONCERT_EVENTS, true, false},
    {CT_TOPIC_WALLET_EVENTS, true, false},
    {CT_TOPIC_CONCERT_COMMANDS ".dlq", true, false},
    {CT_TOPIC_WALLET_COMMANDS ".dlq", true, false},
    {CT_TOPIC_TEST, false, false},
};

const ct_topic_spec *ct_kafka_topics(size_t *count) {
    *count = sizeof topics / sizeof topics[0];
    return topics;
}

void ct_kafka_bootstrap(const ct_config *cfg, char *out, size_t out_bytes) {
    if (cfg->kafka_brokers[0]) {
        snprintf(out, out_bytes, "%s", cfg->kafka_brokers);
        return;
    }
    snprintf(out, out_bytes, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", cfg->kafka_base_port, cfg->kafka_base_port + 1,
             cfg->kafka_base_port + 2);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    /* syslog levels: 0..3 error, 4 warning, 5..6 info, 7 debug. A refused
     * connection (FAIL) or "all brokers down" (ERROR) is transient: the
     * client retries by itself, and callers see the error where it matters. */
    bool transient = strcmp(fac, "FAIL") == 0 || strcmp(fac, "ERROR") == 0;
    ct_log_level lvl = level <= 3   ? (transient ? CT_LOG_WARN : CT_LOG_ERROR)
                       : level == 4 ? CT_LOG_WARN
                       : level <= 6 ? CT_LOG_INFO
                                    : CT_LOG_DEBUG;
    if (!ct_log_enabled(lvl)) return;
    ct_log_write(lvl, "rdkafka", "%s client=%s fac=%s", buf, rd_kafka_name(rk), fac);
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, ct_error *err) {
    char errstr[256];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        CT_ERR(err, CT_ERR_FATAL, "kafka property %s rejected", name);
        ct_error_detail(err, "%s", errstr);
        return -1;
    }
    return 0;
}

static rd_kafka_conf_t *base_conf(const ct_config *cfg, const char *client_id, ct_error *err) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char bootstrap[CT_CONFIG_URL_MAX];
    ct_kafka_bootstrap(cfg, bootstrap, sizeof bootstrap);
    if (conf_set(conf, "bootstrap.servers", bootstrap, err) != 0 ||
        conf_set(conf, "client.id", client_id ? client_id : "concert", err) != 0)
        goto fail;
    rd_kafka_conf_set_log_cb(conf, log_cb);
    for (int i = 0; i < cfg->kafka_conf_count; i++)
        if (conf_set(conf, cfg->kafka_conf[i].name, cfg->kafka_conf[i].value, err) != 0) goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static rd_kafka_t *new_handle(rd_kafka_type_t type, rd_kafka_conf_t *conf, ct_error *err) {
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf); /* rd_kafka_new takes ownership only on success */
        CT_ERR(err, CT_ERR_FATAL, "cannot create Kafka %s", type == RD_KAFKA_PRODUCER ? "producer" : "consumer");
        ct_error_detail(err, "%s", errstr);
    }
    return rk;
}

static bool user_set(const ct_config *cfg, const char *prop) {
    for (int i = 0; i < cfg->kafka_conf_count; i++)
        if (strcmp(cfg->kafka_conf[i].name, prop) == 0) return true;
    return false;
}

rd_kafka_t *ct_kafka_producer_new(const ct_config *cfg, const ct_kafka_producer_opts *opts, ct_error *err) {
    rd_kafka_conf_t *conf = base_conf(cfg, opts->client_id, err);
    if (!conf) return NULL;
    char linger[32];
    snprintf(linger, sizeof linger, "%d", opts->linger_ms);
    if (conf_set(conf, "enable.idempotence", "true", err) != 0 || conf_set(conf, "acks", "all", err) != 0 ||
        (opts->linger_ms >= 0 && conf_set(conf, "linger.ms", linger, err) != 0) ||
        (opts->transactional_id && conf_set(conf, "transactional.id", opts->transactional_id, err) != 0)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* A transaction's AddOffsetsToTxn sent right after the previous commit
     * is answered CONCURRENT_TRANSACTIONS until the coordinator has written
     * that commit's markers (a few ms) and is retried after
     * retry.backoff.ms: librdkafka's 100 ms would be most of the hop. */
    if (opts->transactional_id && !user_set(cfg, "retry.backoff.ms") &&
        conf_set(conf, "retry.backoff.ms", "5", err) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    for (const char *const *kv = opts->extra; kv && kv[0]; kv += 2) {
        if (!kv[1]) {
            CT_ERR(err, CT_ERR_FATAL, "kafka property %s has no value", kv[0]);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
        if (conf_set(conf, kv[0], kv[1], err) != 0) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (opts->dr_msg_cb) rd_kafka_conf_set_dr_msg_cb(conf, opts->dr_msg_cb);
    if (opts->opaque) rd_kafka_conf_set_opaque(conf, opts->opaque);
    return new_handle(RD_KAFKA_PRODUCER, conf, err);
}

rd_kafka_t *ct_kafka_consumer_new(const ct_config *cfg, const ct_kafka_consumer_opts *opts, ct_error *err) {
    rd_kafka_conf_t *conf = base_conf(cfg, opts->client_id, err);
    if (!conf) return NULL;
    /* How long the broker holds a fetch that finds nothing new. librdkafka's
     * 500 ms once cost journeys (21 -> 31 journeys/s with 10 ms); measured
     * again on Kafka 3.9, a held fetch is answered as soon as a commit makes
     * records readable, so the wait only sets how often an idle consumer
     * asks: 100 ms gave a single fan's steps and 64 users' journeys the same
     * latencies as 10 ms, and the idle brokers 68% instead of 84% of a core
     * (docs/decisions.md, "The journey's speed").
     * CONCERT_KAFKA_CONF_FETCH_WAIT_MAX_MS still decides when set. */
    if (!user_set(cfg, "fetch.wait.max.ms") && conf_set(conf, "fetch.wait.max.ms", "100", err) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (conf_set(conf, "group.id", opts->group_id, err) != 0 ||
        conf_set(conf, "isolation.level", opts->read_committed ? "read_committed" : "read_uncommitted", err) != 0 ||
        conf_set(conf, "enable.auto.commit", opts->auto_commit ? "true" : "false", err) != 0 ||
        conf_set(conf, "auto.offset.reset", opts->auto_offset_reset ? opts->auto_offset_reset : "earliest", err) != 0 ||
        conf_set(conf, "enable.partition.eof", opts->partition_eof ? "true" : "false", err) != 0 ||
        (opts->group_instance_id && conf_set(conf, "group.instance.id", opts->group_instance_id, err) != 0)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (opts->session_timeout_ms > 0) {
        char st[16];
        snprintf(st, sizeof st, "%d", opts->session_timeout_ms);
        if (conf_set(conf, "session.timeout.ms", st, err) != 0) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    if (opts->opaque) rd_kafka_conf_set_opaque(conf, opts->opaque);
    if (opts->rebalance_cb) rd_kafka_conf_set_rebalance_cb(conf, opts->rebalance_cb);
    rd_kafka_t *rk = new_handle(RD_KAFKA_CONSUMER, conf, err);
    if (rk) rd_kafka_poll_set_consumer(rk);
    return rk;
}

rd_kafka_t *ct_kafka_admin_new(const ct_config *cfg, const char *client_id, ct_error *err) {
    rd_kafka_conf_t *conf = base_conf(cfg, client_id, err);
    if (!conf) return NULL;
    return new_handle(RD_KAFKA_PRODUCER, conf, err);
}

int ct_kafka_first_offset(rd_kafka_t *rk, const char *topic, int32_t partition, int timeout_ms, int retry_ms,
                          int64_t *lo, ct_error *err) {
    int64_t hi = 0, deadline = ct_clock_mono_ms() + retry_ms;
    for (int pause_ms = 100;; pause_ms = pause_ms < 1000 ? pause_ms * 2 : 1000) {
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, partition, lo, &hi, timeout_ms);
        if (!e) return 0;
        bool moving = e == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION || e == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                      e == RD_KAFKA_RESP_ERR__TIMED_OUT || e == RD_KAFKA_RESP_ERR__TRANSPORT;
        if (!moving || ct_clock_mono_ms() + pause_ms > deadline) {
            CT_ERR(err, CT_ERR_RETRIABLE, "first offset of %s/%d: %s", topic, (int)partition, rd_kafka_err2str(e));
            return -1;
        }
        CT_LOG_WARN("kafka", "first offset of %s/%d: %s, asking again", topic, (int)partition, rd_kafka_err2str(e));
        struct timespec ts = {.tv_sec = pause_ms / 1000, .tv_nsec = (long)(pause_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int ct_kafka_wait_brokers(rd_kafka_t *rk, int brokers_min, int timeout_ms, ct_error *err) {
    int64_t deadline = ct_clock_mono_ms() + timeout_ms;
    int seen = 0;
    rd_kafka_resp_err_t last = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        last = rd_kafka_metadata(rk, 0, NULL, &md, 2000);
        if (last == RD_KAFKA_RESP_ERR_NO_ERROR) {
            seen = md->broker_cnt;
            rd_kafka_metadata_destroy(md);
            if (seen >= brokers_min) return 0;
        }
        if (ct_clock_mono_ms() >= deadline) break;
        struct timespec ts = {0, 250 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CT_ERR(err, CT_ERR_RETRIABLE, "Kafka: %d of %d brokers answered within %d ms", seen, brokers_min, timeout_ms);
    if (last) ct_error_detail(err, "%s", rd_kafka_err2str(last));
    return -1;
}

int ct_kafka_ensure_topics(rd_kafka_t *rk, const ct_config *cfg, ct_error *err) {
    size_t n;
    const ct_topic_spec *specs = ct_kafka_topics(&n);
    rd_kafka_NewTopic_t *nt[16] = {0};
    rd_kafka_AdminOptions_t *aopts = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    int rc = -1;
    char errstr[256], isr[16];
    snprintf(isr, sizeof isr, "%d", cfg->kafka_min_isr);
    for (size_t i = 0; i < n; i++) {
        nt[i] =
            rd_kafka_NewTopic_new(specs[i].name, cfg->kafka_partitions, cfg->kafka_replication, errstr, sizeof errstr);
        if (!nt[i] || rd_kafka_NewTopic_set_config(nt[i], "min.insync.replicas", isr) ||
            (specs[i].keep_forever && rd_kafka_NewTopic_set_config(nt[i], "retention.ms", "-1")) ||
            (specs[i].broker_time && rd_kafka_NewTopic_set_config(nt[i], "message.timestamp.type", "LogAppendTime"))) {
            CT_ERR(err, CT_ERR_FATAL, "cannot describe topic %s", specs[i].name);
            goto cleanup;
        }
    }
    aopts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    if (rd_kafka_AdminOptions_set_operation_timeout(aopts, cfg->kafka_timeout_ms, errstr, sizeof errstr) ||
        rd_kafka_AdminOptions_set_request_timeout(aopts, cfg->kafka_timeout_ms, errstr, sizeof errstr)) {
        CT_ERR(err, CT_ERR_FATAL, "admin options: %s", errstr);
        goto cleanup;
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, nt, n, aopts, q);
    ev = rd_kafka_queue_poll(q, cfg->kafka_timeout_ms + 5000);
    if (!ev) {
        CT_ERR(err, CT_ERR_RETRIABLE, "CreateTopics: no answer within %d ms", cfg->kafka_timeout_ms + 5000);
        goto cleanup;
    }
    if (rd_kafka_event_error(ev)) {
        CT_ERR(err, CT_ERR_RETRIABLE, "CreateTopics failed");
        ct_error_detail(err, "%s", rd_kafka_event_error_string(ev));
        goto cleanup;
    }
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    size_t rn = 0;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &rn);
    for (size_t i = 0; i < rn; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            CT_LOG_INFO("kafka", "created topic topic=%s partitions=%d replication=%d min_isr=%d",
                        rd_kafka_topic_result_name(tr[i]), cfg->kafka_partitions, cfg->kafka_replication,
                        cfg->kafka_min_isr);
        } else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            CT_ERR(err, e == RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR ? CT_ERR_RETRIABLE : CT_ERR_FATAL,
                   "cannot create topic %s", rd_kafka_topic_result_name(tr[i]));
            ct_error_detail(err, "%s", rd_kafka_topic_result_error_string(tr[i]));
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    if (ev) rd_kafka_event_destroy(ev);
    if (q) rd_kafka_queue_destroy(q);
    if (aopts) rd_kafka_AdminOptions_destroy(aopts);
    for (size_t i = 0; i < n; i++)
        if (nt[i]) rd_kafka_NewTopic_destroy(nt[i]);
    return rc;
}

int ct_kafka_describe_topic(rd_kafka_t *rk, const char *topic, int *partitions, int *replicas_min, int *isr_min,
                            int timeout_ms, ct_error *err) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (e) {
        CT_ERR(err, CT_ERR_RETRIABLE, "metadata for %s: %s", topic, rd_kafka_err2str(e));
        return -1;
    }
    *partitions = -1;
    *replicas_min = -1;
    *isr_min = -1;
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const rd_kafka_metadata_topic_t *t = &md->topics[0];
        *partitions = t->partition_cnt;
        for (int i = 0; i < t->partition_cnt; i++) {
            if (*replicas_min < 0 || t->partitions[i].replica_cnt < *replicas_min)
                *replicas_min = t->partitions[i].replica_cnt;
            if (*isr_min < 0 || t->partitions[i].isr_cnt < *isr_min) *isr_min = t->partitions[i].isr_cnt;
        }
    }
    rd_kafka_metadata_destroy(md);
    return 0;
}
