/* ct_processor: see ct_processor.h. */
#include "ct_processor.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ct_codec.h"
#include "ct_domain.h"
#include "ct_kafka.h"
#include "ct_log.h"
#include "ct_metrics.h"
#include "ct_proc.h"
#include "ct_signal.h"
#include "ct_store.h"
#include "ct_trace.h"

typedef struct task {
    bool assigned;
    ct_store *store;
    bool staged;         /* the store has a pending batch in this transaction */
    int64_t next_offset; /* next input offset of the current batch, -1 none */
} task;

struct ct_processor {
    const ct_config *cfg;
    ct_role role;
    char instance[CT_PROCESSOR_INSTANCE_MAX + 1];
    const char *in_topic;
    char dlq_topic[64];
    char group[96];
    char store_root[CT_CONFIG_PATH_MAX + 128];
    char pid_file[CT_CONFIG_PATH_MAX + 144]; /* <store_root>/pid, once written */
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    ct_effects *fx;
    task tasks[CT_PROCESSOR_PARTITIONS_MAX];
    bool fatal; /* set from the rebalance callback */
    ct_error fatal_err;
    char buf[CT_PROCESSOR_RECORD_BYTES_MAX];
    rd_kafka_message_t **msgs;             /* one batch: CONCERT_PROCESSOR_BATCH_MAX records */
    const char *hop_consume, *hop_commit;  /* trace hop names: "<role>.consume", "<role>.commit" */
    ct_id traced[CT_PROCESSOR_TRACED_MAX]; /* sampled command ids of the open transaction */
    int ntraced;
    uint64_t applied, skipped, dead_lettered, batches;
    uint64_t clamped; /* commands whose ts ran ahead of the brokers' clock (ct_cmd_bound_ts) */
    int64_t poll_ms, apply_ms, offsets_ms, commit_ms, store_ms;
    /* A rebuild under way (SIGUSR1: `concert replay processor`), as its
     * status file tells it. */
    bool rebuild_asked, rebuilding;
    int64_t rebuild_started_ms, rebuild_records, rebuild_at, rebuild_to, rebuild_status_ms;
    int32_t rebuild_partition;
    int rebuild_partitions, rebuild_done;
    ct_histogram txn_seconds; /* begin to commit acknowledged, per batch */
    int64_t metrics_ms;       /* when the metrics file was written last */
    int64_t restore_left;     /* records a restore under way still has to replay */
};

/* How long a restore keeps asking for a partition's first offset while its
 * leadership moves. */
#define WATERMARK_RETRY_MS 30000

/* Counters are written by the loop's thread and may be read by any
 * (ct_processor_stats_get): relaxed atomics, no ordering needed. */
#define ADD(field, n) __atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)
#define GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

static void store_dir(const ct_processor *p, int32_t partition, char *out, size_t n) {
    snprintf(out, n, "%s/p%d", p->store_root, (int)partition);
}

void ct_processor_store_root(const ct_config *cfg, ct_role role, const char *instance, char *out, size_t n) {
    snprintf(out, n, "%s/processors/%s-%s", cfg->data_dir, role == CT_ROLE_CONCERT ? "concert" : "wallet", instance);
}

/* processor-<role>-<instance>.prom (runtime/ct_metrics): what the loop
 * counted, the transactions' latency, each assigned partition's lag (the
 * high watermark librdkafka last fetched minus where this instance stands)
 * and what a restore still has to replay. */
static void publish_metrics(ct_processor *p) {
    p->metrics_ms = ct_clock_mono_ms();
    char buf[16384], labels[160], name[200];
    const char *role = p->role == CT_ROLE_CONCERT ? "concert" : "wallet";
    snprintf(labels, sizeof labels, "role=\"%s\",instance=\"%s\"", role, p->instance);
    ct_metrics_text t = {.buf = buf, .cap = sizeof buf};
    ct_metrics_one(&t, "concert_processor_records_total", "counter", "Input records applied (new, not redelivered).",
                   labels, (double)(GET(p->applied)));
    ct_metrics_one(&t, "concert_processor_redelivered_total", "counter", "Input records skipped as applied already.",
                   labels, (double)(GET(p->skipped)));
    ct_metrics_one(&t, "concert_processor_dead_letters_total", "counter",
                   "Input records sent to the dead-letter topic.", labels, (double)(GET(p->dead_lettered)));
    ct_metrics_one(&t, "concert_processor_transactions_total", "counter", "Kafka transactions committed.", labels,
                   (double)(GET(p->batches)));
    ct_metrics_family(&t, "concert_processor_transaction_seconds", "histogram",
                      "A batch's transaction, from begin to the commit acknowledged.");
    ct_metrics_histogram(&t, "concert_processor_transaction_seconds", labels, &p->txn_seconds);
    ct_metrics_family(&t, "concert_processor_restore_remaining_records", "gauge",
                      "Records a restore or rebuild under way still has to replay (0: none).");
    ct_metrics_printf(&t, "concert_processor_restore_remaining_records{%s} %" PRId64 "\n", labels, p->restore_left);
    ct_metrics_family(&t, "concert_processor_lag_records", "gauge",
                      "Records of an assigned partition not yet applied (its high watermark minus the position).");
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (int i = 0; i < CT_PROCESSOR_PARTITIONS_MAX; i++)
        if (p->tasks[i].assigned) rd_kafka_topic_partition_list_add(l, p->in_topic, i);
    if (l->cnt > 0 && p->consumer && rd_kafka_position(p->consumer, l) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < l->cnt; i++) {
            int64_t lo = 0, hi = 0;
            if (rd_kafka_get_watermark_offsets(p->consumer, p->in_topic, l->elems[i].partition, &lo, &hi) || hi < 0 ||
                l->elems[i].offset < 0)
                continue;
            ct_metrics_printf(&t, "concert_processor_lag_records{%s,partition=\"%d\"} %" PRId64 "\n", labels,
                              (int)l->elems[i].partition, hi > l->elems[i].offset ? hi - l->elems[i].offset : 0);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    snprintf(name, sizeof name, "processor-%s-%s", role, p->instance);
    ct_error e = {0};
    if (ct_metrics_publish(p->cfg, name, &t, &e) != 0)
        CT_LOG_RATELIMITED(CT_LOG_WARN, "metrics", 60000, "cannot write the metrics file: %s", e.msg);
}

/* <store root>/rebuild.json: how far the last rebuild is, for `concert
 * replay processor` (written whole, atomically). */
static void rebuild_status(ct_processor *p, const char *state, const char *error) {
    json_t *j = json_pack("{s:s, s:I, s:I, s:i, s:i, s:i, s:I, s:I, s:I}", "state", state, "started_ms",
                          (json_int_t)p->rebuild_started_ms, "pid", (json_int_t)getpid(), "partitions",
                          p->rebuild_partitions, "partitions_done", p->rebuild_done, "partition",
                          (int)p->rebuild_partition, "offset", (json_int_t)p->rebuild_at, "to",
                          (json_int_t)p->rebuild_to, "records", (json_int_t)p->rebuild_records);
    if (j && error) json_object_set_new(j, "error", json_string(error));
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    char path[sizeof p->store_root + 32];
    snprintf(path, sizeof path, "%s/" CT_PROCESSOR_REBUILD_FILE, p->store_root);
    ct_error e = {0};
    if (!text || ct_fs_write_file(path, text, strlen(text), &e) != 0)
        CT_LOG_WARN("rebuild", "cannot write %s: %s", path, text ? e.msg : "out of memory");
    free(text);
    json_decref(j);
    p->rebuild_status_ms = ct_clock_mono_ms();
}

/* ---- one record ---------------------------------------------------------- */

static int produce(ct_processor *p, const char *topic, int32_t partition, const void *key, size_t key_len,
                   const void *val, size_t val_len, rd_kafka_headers_t *hdrs, ct_error *err) {
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(p->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)val, val_len),
                              RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) return 0; /* headers now owned by the message */
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(p->producer, 10);
            continue;
        }
        rd_kafka_headers_destroy(hdrs);
        CT_ERR(err, CT_ERR_RETRIABLE, "produce to %s failed: %s", topic, rd_kafka_err2str(e));
        return -1;
    }
}

static int dead_letter(ct_processor *p, const rd_kafka_message_t *m, const char *reason, ct_error *err) {
    char part[16], off[24];
    snprintf(part, sizeof part, "%" PRId32, m->partition);
    snprintf(off, sizeof off, "%" PRId64, m->offset);
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "dlq-reason", -1, reason, -1);
    rd_kafka_header_add(h, "dlq-topic", -1, p->in_topic, -1);
    rd_kafka_header_add(h, "dlq-partition", -1, part, -1);
    rd_kafka_header_add(h, "dlq-offset", -1, off, -1);
    CT_LOG_RATELIMITED(CT_LOG_WARN, "dlq", 1000,
                       "dead-lettered record topic=%s partition=%d offset=%" PRId64 " reason=%s", p->in_topic,
                       (int)m->partition, m->offset, reason);
    ADD(p->dead_lettered, 1);
    return produce(p, p->dlq_topic, RD_KAFKA_PARTITION_UA, m->key, m->key_len, m->payload, m->len, h, err);
}

/* Produces the outputs in p->fx of the input record input_id. */
static int produce_outputs(ct_processor *p, const char *input_id, ct_error *err) {
    size_t n = ct_effects_output_count(p->fx);
    for (size_t i = 0; i < n; i++) {
        const ct_out *o = ct_effects_output_at(p->fx, i);
        size_t len = 0;
        char id[CT_OUTPUT_ID_BYTES_MAX + 1];
        if (ct_codec_encode_effect(p->fx, i, p->buf, sizeof p->buf, &len, err) != 0) return -1;
        ct_codec_output_id(input_id, o->index, id);
        rd_kafka_headers_t *h = rd_kafka_headers_new(3);
        rd_kafka_header_add(h, "type", -1, ct_out_type_name(o->type), -1);
        rd_kafka_header_add(h, "v", -1, "1", 1);
        rd_kafka_header_add(h, "id", -1, id, -1);
        if (produce(p, ct_topic_name(o->topic), RD_KAFKA_PARTITION_UA, o->key.s, o->key.len, p->buf, len, h, err))
            return -1;
    }
    return 0;
}

/* A record that does not decode or validate goes to the dead-letter topic
 * (when producing; a restore skips it), and the command it carries still
 * ends: when its envelope names a client command, the domain answers it
 * with CommandRejected POISON, in the same transaction, and its id is
 * marked applied like any other record's, so a redelivery is skipped
 * instead of dead-lettered and answered again. */
static int end_poisoned(ct_processor *p, task *t, const rd_kafka_message_t *m, int64_t logged_ms, bool producing,
                        const char *reason, ct_error *err) {
    ct_cmd env;
    bool answerable = m->payload && ct_codec_decode_envelope(m->payload, m->len, &env) == 0;
    if (answerable) {
        bool applied = false;
        if (ct_store_is_applied(t->store, env.id, &applied, err) != 0) return -1;
        if (applied) { /* its answer went out with its first delivery */
            ADD(p->skipped, 1);
            return 0;
        }
        if (env.ts_ms == 0 && logged_ms > 0) env.ts_ms = logged_ms;
        ct_error perr = {0};
        answerable = ct_domain_reject_poison(p->role, &env, p->fx, &perr) == 0;
        if (!answerable && perr.klass == CT_ERR_FATAL) {
            if (err) *err = perr;
            return -1;
        }
    }
    if (producing && dead_letter(p, m, reason, err) != 0) return -1;
    if (!answerable) return 0;
    if (producing && produce_outputs(p, env.id, err) != 0) return -1;
    return ct_store_batch_mark_applied(t->store, env.id, m->offset, logged_ms, err);
}

/* Applies one input record to its task: decode, dedupe, core, outputs (when
 * producing), staged state. Returns -1 only for errors that must abort the
 * batch; a bad record is dead-lettered (or, restoring, skipped) and is 0. */
static int process_record(ct_processor *p, task *t, const rd_kafka_message_t *m, bool producing, ct_error *err) {
    ct_cmd cmd;
    ct_error rec_err = {0};
    int rc = -1;
    /* When the brokers logged it: stored with the record, so a restore sees
     * the same time (the ts bound, the applied ids' retention). */
    int64_t logged_ms = rd_kafka_message_timestamp(m, NULL);
    if (!m->payload || ct_codec_decode(m->payload, m->len, &cmd, &rec_err) != 0) {
        if (!rec_err.msg[0]) CT_ERR(&rec_err, CT_ERR_PERMANENT, "empty record");
        goto bad_record;
    }
    if (ct_cmd_bound_ts(&cmd, logged_ms, p->cfg->clock_skew_max_ms) && producing) ADD(p->clamped, 1);
    bool applied = false;
    if (ct_store_is_applied(t->store, cmd.id, &applied, err) != 0) return -1;
    if (applied) { /* a redelivery: changes nothing */
        ADD(p->skipped, 1);
        return ct_store_batch_set_offset(t->store, m->offset, err);
    }
    if (producing && ct_trace_hop(cmd.command_id.s, cmd.command_id.len, p->hop_consume) &&
        p->ntraced < CT_PROCESSOR_TRACED_MAX)
        p->traced[p->ntraced++] = cmd.command_id;
    ct_kv_port port = ct_store_port(t->store);
    if (ct_domain_apply(p->role, &port, &cmd, p->fx, &rec_err) != 0) {
        if (rec_err.klass == CT_ERR_PERMANENT) goto bad_record;
        if (err) *err = rec_err;
        return -1;
    }
    if (producing && produce_outputs(p, cmd.id, err) != 0) return -1;
    if (ct_store_batch_add(t->store, p->fx, err) != 0) return -1;
    if (ct_store_batch_mark_applied(t->store, cmd.id, m->offset, logged_ms, err) != 0) return -1;
    ADD(p->applied, 1);
    return 0;
bad_record:
    rc = end_poisoned(p, t, m, logged_ms, producing, rec_err.msg, err);
    if (rc == 0) rc = ct_store_batch_set_offset(t->store, m->offset, err);
    return rc;
}

/* ---- assignment and restore --------------------------------------------- */

/* The group's committed offset of a partition. When the previous owner
 * died inside a transaction, the broker answers "unstable offset" until that
 * transaction is aborted (transaction.timeout.ms plus the coordinator's
 * cleanup interval), which can outlast one request timeout: keep asking
 * until it is settled or we are told to stop, since giving up would only
 * crash-loop the process into the same wait. */
static int64_t committed_offset(ct_processor *p, int32_t partition, ct_error *err) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->in_topic, partition);
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_committed(p->consumer, l, p->cfg->kafka_timeout_ms)) == RD_KAFKA_RESP_ERR__TIMED_OUT &&
           !ct_signal_stop_requested())
        CT_LOG_WARN("restore",
                    "committed offset of %s/%d not settled yet (a previous owner's transaction is "
                    "pending), asking again",
                    p->in_topic, (int)partition);
    int64_t off = e ? INT64_MIN : l->elems[0].offset;
    if (e)
        CT_ERR(err, CT_ERR_RETRIABLE, "committed offset of %s/%d: %s", p->in_topic, (int)partition,
               rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
    return off;
}

/* Replays [from, to) of a partition into its store, producing nothing. */
static int restore(ct_processor *p, int32_t partition, task *t, int64_t from, int64_t to, ct_error *err) {
    char group[128];
    snprintf(group, sizeof group, "%s-restore", p->group);
    ct_kafka_consumer_opts co = {.client_id = "concert-restore", .group_id = group, .read_committed = true};
    rd_kafka_t *c = ct_kafka_consumer_new(p->cfg, &co, err);
    if (!c) return -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->in_topic, partition)->offset = from;
    int rc = rd_kafka_assign(c, l) ? -1 : 0;
    int64_t restored = 0, since_commit = 0, t0 = ct_clock_mono_ms(), last_log = t0;
    CT_LOG_INFO("restore", "restoring topic=%s partition=%d from=%" PRId64 " to=%" PRId64, p->in_topic, (int)partition,
                from, to);
    ct_store_batch_begin(t->store);
    while (rc == 0) {
        rd_kafka_position(c, l);
        if (l->elems[0].offset >= to) break; /* past the gap (control records included) */
        if (ct_signal_stop_requested()) {
            rc = -1;
            CT_ERR(err, CT_ERR_RETRIABLE, "stopped while restoring");
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
        if (!m) continue;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                CT_LOG_RATELIMITED(CT_LOG_WARN, "restore", 1000, "consume error: %s", rd_kafka_message_errstr(m));
        } else if (m->offset < to) {
            rc = process_record(p, t, m, false, err);
            restored++;
            p->restore_left = to - m->offset - 1;
            if (ct_clock_mono_ms() - p->metrics_ms >= 5000) publish_metrics(p);
            if (ct_clock_mono_ms() - last_log >= 5000) {
                last_log = ct_clock_mono_ms();
                CT_LOG_INFO("restore",
                            "progress topic=%s partition=%d offset=%" PRId64 " to=%" PRId64 " records=%" PRId64,
                            p->in_topic, (int)partition, m->offset, to, restored);
            }
            if (p->rebuilding) {
                p->rebuild_records++;
                p->rebuild_partition = partition, p->rebuild_at = m->offset, p->rebuild_to = to;
                if (ct_clock_mono_ms() - p->rebuild_status_ms >= 1000) rebuild_status(p, "rebuilding", NULL);
            }
            if (rc == 0 && ++since_commit >= CT_PROCESSOR_RESTORE_COMMIT_EVERY) {
                rc = ct_store_batch_commit(t->store, err);
                since_commit = 0;
            }
        }
        rd_kafka_message_destroy(m);
    }
    p->restore_left = 0;
    if (rc == 0) rc = ct_store_batch_set_offset(t->store, to - 1, err);
    if (rc == 0)
        rc = ct_store_batch_commit(t->store, err);
    else
        ct_store_batch_discard(t->store);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    if (rc == 0)
        CT_LOG_INFO("restore", "restored topic=%s partition=%d records=%" PRId64 " ms=%" PRId64, p->in_topic,
                    (int)partition, restored, ct_clock_mono_ms() - t0);
    return rc;
}

/* A task's store. Applied ids are remembered as long as the outbox may
 * publish their command again: it keeps a row CONCERT_OUTBOX_RETENTION_S
 * after sending it (0: forever), plus an hour for the clocks of Postgres
 * and the brokers. */
static ct_store *open_store(ct_processor *p, const char *dir, ct_error *err) {
    ct_store *st = ct_store_open(dir, err);
    int64_t keep_ms = p->cfg->outbox_retention_s > 0 ? ((int64_t)p->cfg->outbox_retention_s + 3600) * 1000 : 0;
    if (st) ct_store_set_id_retention(st, p->cfg->processor_applied_ids_window, keep_ms);
    return st;
}

/* Replaces a task's store by an empty one. */
static int wipe_store(ct_processor *p, int32_t partition, ct_error *err) {
    task *t = &p->tasks[partition];
    char dir[CT_CONFIG_PATH_MAX + 160];
    store_dir(p, partition, dir, sizeof dir);
    ct_store_close(t->store);
    t->store = NULL;
    return ct_store_wipe(dir, err) != 0 || !(t->store = open_store(p, dir, err)) ? -1 : 0;
}

/* Brings an open store level with the group's committed offset: replays a
 * gap in restore mode, rebuilds a missing or ahead-of-the-group store. */
static int level_task(ct_processor *p, int32_t partition, ct_error *err) {
    task *t = &p->tasks[partition];
    int64_t applied = -1;
    if (ct_store_applied_offset(t->store, &applied, err) != 0) return -1;
    int64_t committed = committed_offset(p, partition, err);
    if (committed == INT64_MIN) return -1;
    bool nothing_committed = committed < 0; /* RD_KAFKA_OFFSET_INVALID */
    if ((nothing_committed && applied >= 0) || (!nothing_committed && applied + 1 > committed)) {
        /* The store is ahead of the group: its history is not the group's. */
        CT_LOG_WARN("restore",
                    "store ahead of the group, rebuilding partition=%d applied=%" PRId64 " committed=%" PRId64,
                    (int)partition, applied, committed);
        if (wipe_store(p, partition, err) != 0) return -1;
        applied = -1;
    }
    if (!nothing_committed && applied + 1 < committed) {
        int64_t from = applied + 1;
        if (applied < 0) { /* no store: rebuild from the partition's first record */
            int64_t lo = 0;
            if (ct_kafka_first_offset(p->consumer, p->in_topic, partition, p->cfg->kafka_timeout_ms, WATERMARK_RETRY_MS,
                                      &lo, err) != 0)
                return -1;
            from = lo;
        }
        if (restore(p, partition, t, from, committed, err) != 0) return -1;
    }
    return 0;
}

static int open_task(ct_processor *p, int32_t partition, ct_error *err) {
    task *t = &p->tasks[partition];
    char dir[CT_CONFIG_PATH_MAX + 160];
    store_dir(p, partition, dir, sizeof dir);
    if (!(t->store = open_store(p, dir, err))) return -1;
    if (level_task(p, partition, err) != 0) return -1;
    t->assigned = true;
    t->staged = false;
    t->next_offset = -1;
    return 0;
}

static void close_task(ct_processor *p, int32_t partition) {
    task *t = &p->tasks[partition];
    ct_store_close(t->store);
    memset(t, 0, sizeof *t);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t *parts, void *opaque) {
    ct_processor *p = opaque;
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        bool stopped = false;
        for (int i = 0; i < parts->cnt && !p->fatal && !stopped; i++) {
            int32_t part = parts->elems[i].partition;
            if (part < 0 || part >= CT_PROCESSOR_PARTITIONS_MAX) {
                CT_ERR(&p->fatal_err, CT_ERR_FATAL, "partition %d beyond %d", (int)part, CT_PROCESSOR_PARTITIONS_MAX);
                p->fatal = true;
            } else if (open_task(p, part, &p->fatal_err) != 0) {
                /* A shutdown that interrupts a restore is no failure: what
                 * was restored is committed, the rest waits for the next
                 * owner. Take nothing, so the stop stays clean. */
                if (ct_signal_stop_requested())
                    stopped = true;
                else
                    p->fatal = true;
                for (int j = 0; stopped && j <= i; j++) close_task(p, parts->elems[j].partition);
            }
        }
        CT_LOG_INFO("rebalance", "assigned partitions=%d topic=%s%s", stopped ? 0 : parts->cnt, p->in_topic,
                    stopped ? " (stopping during restore)" : "");
        rd_kafka_assign(rk, p->fatal || stopped ? NULL : parts);
    } else {
        for (int i = 0; i < parts->cnt; i++) {
            int32_t part = parts->elems[i].partition;
            if (part >= 0 && part < CT_PROCESSOR_PARTITIONS_MAX) close_task(p, part);
        }
        CT_LOG_INFO("rebalance", "revoked partitions=%d topic=%s", parts->cnt, p->in_topic);
        rd_kafka_assign(rk, NULL);
    }
}

/* ---- the transaction loop ------------------------------------------------ */

static void discard_staged(ct_processor *p) {
    for (int i = 0; i < CT_PROCESSOR_PARTITIONS_MAX; i++) {
        task *t = &p->tasks[i];
        if (t->staged) ct_store_batch_discard(t->store);
        t->staged = false;
        t->next_offset = -1;
    }
}

/* After an abort: every assigned partition back to its committed offset. */
static int rewind_to_committed(ct_processor *p, ct_error *err) {
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(p->consumer, &l)) {
        CT_ERR(err, CT_ERR_FATAL, "cannot read the assignment");
        return -1;
    }
    int rc = 0;
    if (l->cnt > 0 && rd_kafka_committed(p->consumer, l, p->cfg->kafka_timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        CT_ERR(err, CT_ERR_RETRIABLE, "cannot read committed offsets to rewind");
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < l->cnt; i++) {
        if (l->elems[i].offset < 0) l->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (rc == 0 && l->cnt > 0) {
        rd_kafka_error_t *e = rd_kafka_seek_partitions(p->consumer, l, p->cfg->kafka_timeout_ms);
        if (e) {
            CT_ERR(err, CT_ERR_RETRIABLE, "seek failed: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            rc = -1;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* Classifies a transactional API error: 0 abort and retry, -1 fatal. */
static int txn_error(ct_processor *p, rd_kafka_error_t *e, const char *what, ct_error *err) {
    bool fatal = rd_kafka_error_is_fatal(e);
    CT_ERR(err, fatal ? CT_ERR_FATAL : CT_ERR_RETRIABLE, "%s: %s", what, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    if (fatal) return -1;
    CT_LOG_WARN("txn", "%s, aborting the batch: %s", what, err ? err->msg : "");
    rd_kafka_error_t *ae = rd_kafka_abort_transaction(p->producer, -1);
    if (ae) {
        bool afatal = rd_kafka_error_is_fatal(ae);
        CT_ERR(err, afatal ? CT_ERR_FATAL : CT_ERR_RETRIABLE, "abort: %s", rd_kafka_error_string(ae));
        rd_kafka_error_destroy(ae);
        if (afatal) return -1;
    }
    discard_staged(p);
    if (rewind_to_committed(p, err) != 0) return -1;
    /* A commit reported as failed may have happened after all (its outcome
     * was unknown): then the group's offsets moved past the batch whose
     * state was just discarded. Re-level every store with the committed
     * offsets, as on assignment, so no batch's state is ever skipped. */
    for (int i = 0; i < CT_PROCESSOR_PARTITIONS_MAX; i++)
        if (p->tasks[i].assigned && level_task(p, i, err) != 0) return -1;
    return 0;
}

/* The task of a polled record's partition, NULL if it is not assigned
 * (revoked while polling). */
static task *assigned_task(ct_processor *p, const rd_kafka_message_t *m) {
    if (m->partition < 0 || m->partition >= CT_PROCESSOR_PARTITIONS_MAX) return NULL;
    task *t = &p->tasks[m->partition];
    return t->assigned ? t : NULL;
}

static int run_batch(ct_processor *p, ct_error *err) {
    rd_kafka_message_t **msgs = p->msgs;
    int max = p->cfg->processor_batch_max;
    int n = 0;
    int64_t t_poll = ct_clock_mono_ms(), t_apply = 0, t_commit = 0, t_store = 0;
    int64_t deadline = t_poll + p->cfg->processor_batch_ms;
    while (n < max) {
        int64_t left = deadline - ct_clock_mono_ms();
        rd_kafka_message_t *m = rd_kafka_consumer_poll(p->consumer, n == 0 ? 100 : (int)(left > 0 ? left : 0));
        if (p->fatal) {
            if (m) rd_kafka_message_destroy(m);
            if (err) *err = p->fatal_err;
            for (int i = 0; i < n; i++) rd_kafka_message_destroy(msgs[i]);
            return -1;
        }
        if (!m) {
            if (ct_signal_take_user1()) p->rebuild_asked = true;
            if (n > 0 || ct_signal_stop_requested() || p->rebuild_asked) break;
            continue;
        }
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                CT_LOG_RATELIMITED(CT_LOG_WARN, "consume", 1000, "consume error: %s", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        msgs[n++] = m;
        if (left <= 0) break;
    }
    if (n == 0) return 0;

    int rc = 0;
    t_apply = ct_clock_mono_ms();
    ADD(p->poll_ms, t_apply - t_poll);
    p->ntraced = 0;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(p->producer);
    if (e) {
        rc = txn_error(p, e, "begin_transaction", err);
        goto done;
    }
    /* The input offsets join the transaction first, before any output.
     * Right after a commit the coordinator is still writing that
     * transaction's markers and answers CONCURRENT_TRANSACTIONS: librdkafka
     * retries AddOffsetsToTxn after retry.backoff.ms (5 ms here) but the
     * AddPartitionsToTxn of a first produce only after a fixed 20 ms, and
     * the offsets after 100 ms when both were waiting. With the offsets
     * first, the outputs' partitions register once the coordinator is
     * free. The order inside a transaction changes nothing else: outputs
     * and offsets commit or abort together. */
    for (int i = 0; i < n; i++) {
        task *t = assigned_task(p, msgs[i]);
        if (t) t->next_offset = msgs[i]->offset + 1;
    }
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(8);
    for (int i = 0; i < CT_PROCESSOR_PARTITIONS_MAX; i++)
        if (p->tasks[i].assigned && p->tasks[i].next_offset >= 0)
            rd_kafka_topic_partition_list_add(offs, p->in_topic, i)->offset = p->tasks[i].next_offset;
    rd_kafka_consumer_group_metadata_t *gm = rd_kafka_consumer_group_metadata(p->consumer);
    e = rd_kafka_send_offsets_to_transaction(p->producer, offs, gm, -1);
    rd_kafka_consumer_group_metadata_destroy(gm);
    rd_kafka_topic_partition_list_destroy(offs);
    if (e) {
        rc = txn_error(p, e, "send_offsets_to_transaction", err);
        goto done;
    }
    int64_t t_offsets = ct_clock_mono_ms();
    ADD(p->offsets_ms, t_offsets - t_apply);
    for (int i = 0; i < n; i++) {
        rd_kafka_message_t *m = msgs[i];
        task *t = assigned_task(p, m);
        if (!t) continue;
        if (!t->staged) {
            ct_store_batch_begin(t->store);
            t->staged = true;
        }
        if (process_record(p, t, m, true, err) != 0) {
            if (err && err->klass == CT_ERR_FATAL) {
                rc = -1;
                goto done;
            }
            rc = txn_error(p, rd_kafka_error_new(RD_KAFKA_RESP_ERR__STATE, "%s", err ? err->msg : "record failed"),
                           "apply", err);
            goto done;
        }
    }
    t_commit = ct_clock_mono_ms();
    ADD(p->apply_ms, t_commit - t_offsets);
    e = rd_kafka_commit_transaction(p->producer, -1);
    if (e) {
        if (rd_kafka_error_is_retriable(e)) { /* outcome unknown yet: ask again */
            rd_kafka_error_destroy(e);
            e = rd_kafka_commit_transaction(p->producer, -1);
        }
        if (e) {
            rc = txn_error(p, e, "commit_transaction", err);
            goto done;
        }
    }
    t_store = ct_clock_mono_ms();
    ADD(p->commit_ms, t_store - t_commit);
    ct_histogram_observe_us(&p->txn_seconds, (t_store - t_apply) * 1000);
    for (int i = 0; i < p->ntraced; i++) ct_trace_hop(p->traced[i].s, p->traced[i].len, p->hop_commit);
    /* Committed in Kafka: now make the state durable. A crash before this
     * point is repaired by restore mode on the next assignment. */
    for (int i = 0; i < CT_PROCESSOR_PARTITIONS_MAX; i++) {
        task *t = &p->tasks[i];
        if (!t->staged) continue;
        if (ct_store_batch_commit(t->store, err) != 0) {
            rc = -1;
            goto done;
        }
        t->staged = false;
        t->next_offset = -1;
    }
    ADD(p->batches, 1);
    ADD(p->store_ms, ct_clock_mono_ms() - t_store);
done:
    for (int i = 0; i < n; i++) rd_kafka_message_destroy(msgs[i]);
    return rc;
}

/* ---- lifecycle ----------------------------------------------------------- */

/* commit_transaction flushes the transaction's messages by polling the
 * producer in steps of up to 10 ms, and wakes early only for a delivery
 * report to serve: without a callback none is queued, and every commit
 * slept out the last step after its messages were acknowledged. A failed
 * delivery fails the commit itself, so there is nothing to do here. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) { (void)rk, (void)m, (void)opaque; }

ct_processor *ct_processor_new(const ct_config *cfg, ct_role role, const char *instance, ct_error *err) {
    ct_processor *p = calloc(1, sizeof *p);
    if (!p) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return NULL;
    }
    p->cfg = cfg;
    p->role = role;
    size_t il = strlen(instance);
    bool ok = il >= 1 && il <= CT_PROCESSOR_INSTANCE_MAX;
    for (size_t i = 0; ok && i < il; i++)
        ok = (instance[i] >= 'a' && instance[i] <= 'z') || (instance[i] >= 'A' && instance[i] <= 'Z') ||
             (instance[i] >= '0' && instance[i] <= '9') || instance[i] == '-' || instance[i] == '_';
    if (!ok) {
        CT_ERR(err, CT_ERR_PERMANENT, "--instance: '%s' is not [A-Za-z0-9_-]{1,%d}", instance,
               CT_PROCESSOR_INSTANCE_MAX);
        free(p);
        return NULL;
    }
    memcpy(p->instance, instance, il + 1);
    const char *role_name = role == CT_ROLE_CONCERT ? "concert" : "wallet";
    p->hop_consume = role == CT_ROLE_CONCERT ? "concert.consume" : "wallet.consume";
    p->hop_commit = role == CT_ROLE_CONCERT ? "concert.commit" : "wallet.commit";
    p->in_topic = role == CT_ROLE_CONCERT ? CT_TOPIC_CONCERT_COMMANDS : CT_TOPIC_WALLET_COMMANDS;
    snprintf(p->dlq_topic, sizeof p->dlq_topic, "%s.dlq", p->in_topic);
    snprintf(p->group, sizeof p->group, CT_PROCESSOR_GROUP_PREFIX "%s", role_name);
    ct_processor_store_root(cfg, role, instance, p->store_root, sizeof p->store_root);
    if (ct_fs_mkdirs(p->store_root, 0755, err) != 0) goto fail;
    snprintf(p->pid_file, sizeof p->pid_file, "%s/" CT_PROCESSOR_PID_FILE, p->store_root);
    if (ct_proc_write_pidfile(p->pid_file, getpid(), err) != 0) goto fail;
    if (!(p->msgs = calloc((size_t)cfg->processor_batch_max, sizeof *p->msgs)) || !(p->fx = ct_effects_new())) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        goto fail;
    }
    char tid[160], timeout[32];
    snprintf(tid, sizeof tid, "concert-%s-%s", role_name, instance);
    snprintf(timeout, sizeof timeout, "%d", CT_PROCESSOR_TXN_TIMEOUT_MS);
    const char *extra[] = {"transaction.timeout.ms", timeout, NULL};
    ct_kafka_producer_opts po = {
        .client_id = tid, .transactional_id = tid, .linger_ms = 5, .extra = extra, .dr_msg_cb = on_delivery};
    p->producer = ct_kafka_producer_new(cfg, &po, err);
    if (!p->producer) goto fail;
    rd_kafka_error_t *e = rd_kafka_init_transactions(p->producer, cfg->kafka_timeout_ms);
    if (e) {
        CT_ERR(err, rd_kafka_error_is_fatal(e) ? CT_ERR_FATAL : CT_ERR_RETRIABLE, "init_transactions: %s",
               rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        goto fail;
    }
    ct_kafka_consumer_opts co = {.client_id = tid,
                                 .group_id = p->group,
                                 .read_committed = true,
                                 .opaque = p,
                                 .rebalance_cb = on_rebalance,
                                 .group_instance_id = tid,
                                 .session_timeout_ms = CT_PROCESSOR_SESSION_TIMEOUT_MS};
    if (!(p->consumer = ct_kafka_consumer_new(cfg, &co, err))) goto fail;
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, p->in_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t se = rd_kafka_subscribe(p->consumer, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (se) {
        CT_ERR(err, CT_ERR_FATAL, "subscribe %s: %s", p->in_topic, rd_kafka_err2str(se));
        goto fail;
    }
    return p;
fail:
    ct_processor_destroy(p);
    return NULL;
}

/* SIGUSR1 (`concert replay processor`): every assigned task's store is
 * wiped and rebuilt from its partition's first record up to the group's
 * committed offset. Runs between two batches: nothing is staged and the
 * committed offsets are where the consumer stands, so the rebuilt stores
 * take over exactly where the old ones were. A crash midway leaves stores
 * that restore mode finishes on the next start (a restore commits as it
 * goes). The partitions' other work waits meanwhile. */
static int rebuild_stores(ct_processor *p, ct_error *err) {
    p->rebuilding = true;
    p->rebuild_started_ms = ct_clock_wall_ms();
    p->rebuild_records = p->rebuild_at = p->rebuild_to = 0;
    p->rebuild_partition = -1;
    p->rebuild_partitions = p->rebuild_done = 0;
    for (int i = 0; i < CT_PROCESSOR_PARTITIONS_MAX; i++) p->rebuild_partitions += p->tasks[i].assigned;
    CT_LOG_INFO("rebuild", "rebuilding the stores of partitions=%d from %s", p->rebuild_partitions, p->in_topic);
    rebuild_status(p, "rebuilding", NULL);
    int64_t t0 = ct_clock_mono_ms();
    int rc = 0;
    for (int i = 0; rc == 0 && i < CT_PROCESSOR_PARTITIONS_MAX; i++) {
        if (!p->tasks[i].assigned) continue;
        if (wipe_store(p, i, err) != 0 || level_task(p, i, err) != 0)
            rc = -1;
        else
            p->rebuild_done++;
    }
    rebuild_status(p, rc == 0 ? "done" : "failed", rc == 0 ? NULL : err->msg);
    p->rebuilding = false;
    if (rc == 0)
        CT_LOG_INFO("rebuild", "rebuilt partitions=%d records=%" PRId64 " ms=%" PRId64, p->rebuild_done,
                    p->rebuild_records, ct_clock_mono_ms() - t0);
    return rc;
}

int ct_processor_run(ct_processor *p, ct_error *err) {
    CT_LOG_INFO("processor", "running topic=%s group=%s instance=%s", p->in_topic, p->group, p->instance);
    int64_t last_report = ct_clock_mono_ms();
    while (!ct_signal_stop_requested()) {
        if (run_batch(p, err) != 0) return -1;
        /* A store that cannot be rebuilt is fatal: the restart rebuilds it. */
        if (ct_signal_take_user1()) p->rebuild_asked = true;
        if (p->rebuild_asked) {
            p->rebuild_asked = false;
            if (rebuild_stores(p, err) != 0) return -1;
        }
        if (ct_clock_mono_ms() - p->metrics_ms >= 5000) publish_metrics(p);
        if (ct_clock_mono_ms() - last_report > 10000) {
            last_report = ct_clock_mono_ms();
            CT_LOG_INFO("processor",
                        "progress applied=%" PRIu64 " skipped=%" PRIu64 " dead_lettered=%" PRIu64 " clamped=%" PRIu64
                        " batches=%" PRIu64 " poll_ms=%" PRId64 " apply_ms=%" PRId64 " offsets_ms=%" PRId64
                        " commit_ms=%" PRId64 " store_ms=%" PRId64,
                        p->applied, p->skipped, p->dead_lettered, p->clamped, p->batches, p->poll_ms, p->apply_ms,
                        p->offsets_ms, p->commit_ms, p->store_ms);
        }
    }
    return 0;
}

void ct_processor_destroy(ct_processor *p) {
    if (!p) return;
    if (p->consumer) {
        rd_kafka_consumer_close(p->consumer); /* revokes: closes the stores */
        rd_kafka_destroy(p->consumer);
    }
    for (int i = 0; i < CT_PROCESSOR_PARTITIONS_MAX; i++)
        if (p->tasks[i].store) close_task(p, i);
    if (p->producer) rd_kafka_destroy(p->producer);
    if (p->pid_file[0] && ct_proc_read_pidfile(p->pid_file) == getpid()) unlink(p->pid_file);
    ct_effects_destroy(p->fx);
    free(p->msgs);
    free(p);
}

void ct_processor_stats_get(const ct_processor *p, ct_processor_stats *out) {
    *out = (ct_processor_stats){.applied = GET(p->applied),
                                .skipped = GET(p->skipped),
                                .dead_lettered = GET(p->dead_lettered),
                                .clamped = GET(p->clamped),
                                .batches = GET(p->batches),
                                .poll_ms = GET(p->poll_ms),
                                .apply_ms = GET(p->apply_ms),
                                .offsets_ms = GET(p->offsets_ms),
                                .commit_ms = GET(p->commit_ms),
                                .store_ms = GET(p->store_ms)};
}
