/* ct_publisher: see ct_publisher.h. */
#include "ct_publisher.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_kafka.h"
#include "ct_log.h"

#define PARTITIONS_CACHE_MS 30000
#define PARTITIONS_CACHED 8
#define CT_PUBLISHER_GRACE_MS 2000

struct ct_publisher {
    const ct_config *cfg;
    rd_kafka_t *rk;
    size_t outstanding;
    uint64_t delivered, failed;
    struct {
        char topic[128];
        int count;
        int64_t at_ms;
    } parts[PARTITIONS_CACHED];
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    ct_publisher *p = opaque;
    ct_publish_msg *msg = m->_private;
    if (!msg) return;
    msg->out_err = m->err;
    msg->out_partition = m->partition;
    msg->out_offset = m->offset;
    if (m->err) {
        snprintf(msg->out_errstr, sizeof msg->out_errstr, "%s", rd_kafka_err2str(m->err));
        p->failed++;
    } else {
        p->delivered++;
    }
    p->outstanding--;
}

ct_publisher *ct_publisher_new(const ct_config *cfg, const char *client_id, ct_error *err) {
    ct_publisher *p = calloc(1, sizeof *p);
    if (!p) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return NULL;
    }
    p->cfg = cfg;
    char timeout[32], errstr[256];
    snprintf(timeout, sizeof timeout, "%d", cfg->relay_publish_timeout_ms);
    rd_kafka_conf_t *extra = rd_kafka_conf_new();
    if (rd_kafka_conf_set(extra, "message.timeout.ms", timeout, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        CT_ERR(err, CT_ERR_PERMANENT, "producer config: %s", errstr);
        rd_kafka_conf_destroy(extra);
        free(p);
        return NULL;
    }
    ct_kafka_producer_opts o = {.client_id = client_id, .linger_ms = 5, .extra = extra, .dr_msg_cb = on_delivery,
                                .opaque = p};
    p->rk = ct_kafka_producer_new(cfg, &o, err);
    rd_kafka_conf_destroy(extra);
    if (!p->rk) {
        free(p);
        return NULL;
    }
    return p;
}

static rd_kafka_resp_err_t produce_one(ct_publisher *p, ct_publish_msg *m) {
    size_t idl = m->id ? strlen(m->id) : 0, tl = m->type ? strlen(m->type) : 0;
    return rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(m->topic), RD_KAFKA_V_PARTITION(m->partition),
                             RD_KAFKA_V_KEY(m->key, m->key ? m->key_len : 0),
                             RD_KAFKA_V_VALUE((void *)m->value, m->value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_HEADER("id", m->id ? m->id : "", (ssize_t)idl),
                             RD_KAFKA_V_HEADER("type", m->type ? m->type : "", (ssize_t)tl),
                             RD_KAFKA_V_HEADER("v", "1", 1), RD_KAFKA_V_OPAQUE(m), RD_KAFKA_V_END);
}

int ct_publisher_send(ct_publisher *p, ct_publish_msg *msgs, size_t n, ct_error *err) {
    for (size_t i = 0; i < n; i++) {
        ct_publish_msg *m = &msgs[i];
        m->out_err = RD_KAFKA_RESP_ERR_NO_ERROR, m->out_errstr[0] = 0;
        m->out_partition = -1, m->out_offset = -1;
        rd_kafka_resp_err_t e;
        /* A full local queue drains as reports are served: wait, retry. */
        while ((e = produce_one(p, m)) == RD_KAFKA_RESP_ERR__QUEUE_FULL) rd_kafka_poll(p->rk, 10);
        if (e) { /* refused before leaving the process (unknown topic, too large, fatal) */
            m->out_err = e;
            snprintf(m->out_errstr, sizeof m->out_errstr, "%s", rd_kafka_err2str(e));
            p->failed++;
            continue;
        }
        p->outstanding++;
    }
    /* librdkafka should report every message within message.timeout.ms, but
     * an idempotent producer that never got its producer id (every broker
     * down from the start) keeps them queued: past the deadline the queues
     * are purged, which reports each remaining message as failed. */
    int64_t deadline = ct_clock_mono_ms() + p->cfg->relay_publish_timeout_ms + CT_PUBLISHER_GRACE_MS;
    bool purged = false;
    while (p->outstanding > 0) {
        rd_kafka_poll(p->rk, 50);
        if (!purged && p->outstanding > 0 && ct_clock_mono_ms() > deadline) {
            CT_LOG_WARN("publish", "no delivery report within %d ms for %zu message(s): purging them",
                        p->cfg->relay_publish_timeout_ms, p->outstanding);
            rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            purged = true;
        }
    }
    char reason[256];
    rd_kafka_resp_err_t fe = rd_kafka_fatal_error(p->rk, reason, sizeof reason);
    if (fe) {
        CT_ERR(err, CT_ERR_FATAL, "producer fatal error %s: %s", rd_kafka_err2name(fe), reason);
        return -1;
    }
    return 0;
}

int ct_publisher_partitions(ct_publisher *p, const char *topic, int *count, ct_error *err) {
    int64_t now = ct_clock_mono_ms();
    int slot = 0;
    for (int i = 0; i < PARTITIONS_CACHED; i++) {
        if (strcmp(p->parts[i].topic, topic) == 0) {
            if (now - p->parts[i].at_ms < PARTITIONS_CACHE_MS) {
                *count = p->parts[i].count;
                return 0;
            }
            slot = i;
            break;
        }
        if (p->parts[i].at_ms < p->parts[slot].at_ms) slot = i;
    }
    rd_kafka_topic_t *t = rd_kafka_topic_new(p->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = t ? rd_kafka_metadata(p->rk, 0, t, &md, p->cfg->kafka_timeout_ms) : RD_KAFKA_RESP_ERR__FAIL;
    int rc = -1;
    if (e) CT_ERR(err, CT_ERR_RETRIABLE, "metadata of %s: %s", topic, rd_kafka_err2str(e));
    else if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt <= 0)
        CT_ERR(err, CT_ERR_RETRIABLE, "topic %s: %s", topic,
               md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "not in metadata");
    else {
        *count = md->topics[0].partition_cnt;
        snprintf(p->parts[slot].topic, sizeof p->parts[slot].topic, "%s", topic);
        p->parts[slot].count = *count;
        p->parts[slot].at_ms = now;
        rc = 0;
    }
    if (md) rd_kafka_metadata_destroy(md);
    if (t) rd_kafka_topic_destroy(t);
    return rc;
}

void ct_publisher_stats(const ct_publisher *p, uint64_t *delivered, uint64_t *failed) {
    *delivered = p->delivered;
    *failed = p->failed;
}

void ct_publisher_destroy(ct_publisher *p) {
    if (!p) return;
    rd_kafka_flush(p->rk, 5000);
    rd_kafka_destroy(p->rk);
    free(p);
}
