/* ct_publisher: see ct_publisher.h. */
#include "ct_publisher.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_kafka.h"
#include "ct_log.h"

#define PARTITIONS_CACHE_MS 30000
#define PARTITIONS_CACHED 8
/* How long past message.timeout.ms send waits before purging: librdkafka
 * reports within the timeout, except for messages an idempotent producer
 * holds back while it has no producer id (no broker reachable yet). */
#define PUBLISHER_GRACE_MS 2000
#define PUBLISHER_DESTROY_FLUSH_MS 5000

struct ct_publisher {
    const ct_config *cfg;
    rd_kafka_t *rk;
    size_t outstanding; /* enqueued, not yet reported; touched only by the sending thread */
    /* Read by /metrics from other threads while send runs. */
    _Atomic uint64_t delivered, failed;
    struct {
        char topic[128];
        int count;
        int64_t at_ms;
    } parts[PARTITIONS_CACHED];
};

/* Served by rd_kafka_poll on the thread inside ct_publisher_send, the only
 * one that touches msgs and outstanding. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    ct_publisher *p = opaque;
    ct_publish_msg *msg = m->_private;
    if (!msg) return;
    msg->out_err = m->err;
    msg->out_partition = m->partition;
    msg->out_offset = m->err ? -1 : m->offset;
    if (m->err) {
        snprintf(msg->out_errstr, sizeof msg->out_errstr, "%s", rd_kafka_err2str(m->err));
        atomic_fetch_add_explicit(&p->failed, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&p->delivered, 1, memory_order_relaxed);
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
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%d", cfg->relay_publish_timeout_ms);
    /* message.timeout.ms bounds every wait in send. Topics are created on
     * purpose with their partition count (ct_kafka_ensure_topics): one
     * auto-created by a publish would get the broker's default count and
     * break the key -> partition mapping, so a missing topic must fail. */
    const char *extra[] = {"message.timeout.ms", timeout, "allow.auto.create.topics", "false", NULL};
    ct_kafka_producer_opts o = {
        .client_id = client_id, .linger_ms = 5, .extra = extra, .dr_msg_cb = on_delivery, .opaque = p};
    p->rk = ct_kafka_producer_new(cfg, &o, err);
    if (!p->rk) {
        free(p);
        return NULL;
    }
    return p;
}

static rd_kafka_resp_err_t produce_one(ct_publisher *p, ct_publish_msg *m) {
    const char *id = m->id ? m->id : "", *type = m->type ? m->type : "";
    return rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(m->topic), RD_KAFKA_V_PARTITION(m->partition),
                             RD_KAFKA_V_KEY(m->key, m->key ? m->key_len : 0),
                             RD_KAFKA_V_VALUE((void *)m->value, m->value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                             RD_KAFKA_V_HEADER("id", id, (ssize_t)strlen(id)),
                             RD_KAFKA_V_HEADER("type", type, (ssize_t)strlen(type)), RD_KAFKA_V_HEADER("v", "1", 1),
                             RD_KAFKA_V_OPAQUE(m), RD_KAFKA_V_END);
}

static bool same_key(const ct_publish_msg *a, const ct_publish_msg *b) {
    return a->key && b->key && a->key_len == b->key_len && strcmp(a->topic, b->topic) == 0 &&
           memcmp(a->key, b->key, a->key_len) == 0;
}

static void set_refused(ct_publish_msg *m, rd_kafka_resp_err_t e, const char *why) {
    m->out_err = e;
    snprintf(m->out_errstr, sizeof m->out_errstr, "%s", why);
}

/* The class of a produce() refusal: the message itself can never pass, or
 * the topic / partition may yet appear. */
static ct_err_class refusal_class(rd_kafka_resp_err_t e) {
    switch (e) {
    case RD_KAFKA_RESP_ERR__FATAL: return CT_ERR_FATAL;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__STATE: return CT_ERR_RETRIABLE;
    default: return CT_ERR_PERMANENT;
    }
}

int ct_publisher_send(ct_publisher *p, ct_publish_msg *msgs, size_t n, ct_error *err) {
    for (size_t i = 0; i < n; i++) {
        msgs[i].out_err = RD_KAFKA_RESP_ERR_NO_ERROR, msgs[i].out_errstr[0] = 0;
        msgs[i].out_partition = -1, msgs[i].out_offset = -1;
    }
    /* Refused messages, so that later ones of the same key stay back: the
     * caller retries them after the refused one, keeping the key's order. */
    size_t *refused = NULL, nrefused = 0;
    size_t first_refused = n;
    /* Once set, every later message stays back with this error. */
    rd_kafka_resp_err_t hold_all = RD_KAFKA_RESP_ERR_NO_ERROR;
    const char *hold_all_why = NULL;
    for (size_t i = 0; i < n; i++) {
        ct_publish_msg *m = &msgs[i];
        if (hold_all) {
            set_refused(m, hold_all, hold_all_why);
            atomic_fetch_add_explicit(&p->failed, 1, memory_order_relaxed);
            continue;
        }
        bool held = false;
        for (size_t r = 0; r < nrefused && !held; r++) held = same_key(&msgs[refused[r]], m);
        if (held) {
            /* PURGE_QUEUE is what librdkafka itself reports for a message
             * removed before it was sent: not this message's own fault. */
            set_refused(m, RD_KAFKA_RESP_ERR__PURGE_QUEUE, "not sent: an earlier message of its key was refused");
        } else {
            rd_kafka_resp_err_t e;
            /* A full local queue drains as reports are served: wait, retry. */
            while ((e = produce_one(p, m)) == RD_KAFKA_RESP_ERR__QUEUE_FULL) rd_kafka_poll(p->rk, 10);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
                p->outstanding++;
                continue;
            }
            set_refused(m, e, rd_kafka_err2str(e));
            if (first_refused == n) first_refused = i;
            if (e == RD_KAFKA_RESP_ERR__FATAL) hold_all = e, hold_all_why = "not sent: the producer hit a fatal error";
        }
        atomic_fetch_add_explicit(&p->failed, 1, memory_order_relaxed);
        size_t *grown = realloc(refused, (nrefused + 1) * sizeof *refused);
        if (grown)
            (refused = grown)[nrefused++] = i;
        else if (!hold_all) /* cannot track keys any more: keep every order */
            hold_all = RD_KAFKA_RESP_ERR__PURGE_QUEUE, hold_all_why = "not sent: out of memory";
    }
    free(refused);

    int64_t deadline = ct_clock_mono_ms() + p->cfg->relay_publish_timeout_ms + PUBLISHER_GRACE_MS;
    bool purged = false;
    while (p->outstanding > 0) {
        /* flush, not poll: the round's messages are all enqueued, so
         * waiting out linger.ms for more would only add latency. */
        rd_kafka_flush(p->rk, 50);
        if (!purged && p->outstanding > 0 && ct_clock_mono_ms() > deadline) {
            CT_LOG_WARN("publish", "no delivery report within %d ms for %zu message(s): purging them",
                        p->cfg->relay_publish_timeout_ms, p->outstanding);
            /* Purged messages are reported (PURGE_QUEUE / PURGE_INFLIGHT)
             * by the next polls, so the loop still ends only when every
             * report has been written. */
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
    if (first_refused < n) {
        const ct_publish_msg *m = &msgs[first_refused];
        CT_ERR(err, refusal_class(m->out_err), "message %s to %s refused: %s", m->id ? m->id : "(no id)", m->topic,
               m->out_errstr);
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
        if (p->parts[i].at_ms < p->parts[slot].at_ms) slot = i; /* least recently fetched (or empty) */
    }
    rd_kafka_topic_t *t = rd_kafka_topic_new(p->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = t ? rd_kafka_metadata(p->rk, 0, t, &md, p->cfg->kafka_timeout_ms) : RD_KAFKA_RESP_ERR__FAIL;
    int rc = -1;
    if (e)
        CT_ERR(err, CT_ERR_RETRIABLE, "metadata of %s: %s", topic, rd_kafka_err2str(e));
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
    *delivered = atomic_load_explicit(&p->delivered, memory_order_relaxed);
    *failed = atomic_load_explicit(&p->failed, memory_order_relaxed);
}

void ct_publisher_destroy(ct_publisher *p) {
    if (!p) return;
    /* send never returns with messages outstanding, so nothing flushed here
     * reports into a caller's msgs: this only drains stray internal work. */
    rd_kafka_flush(p->rk, PUBLISHER_DESTROY_FLUSH_MS);
    rd_kafka_destroy(p->rk);
    free(p);
}
