/* ct_cluster: see ct_cluster.h. */
#include "ct_cluster.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_kafka.h"
#include "ct_log.h"

#define CALL_TIMEOUT_MS 5000
/* A read stops when every partition reported its end, or after this long
 * without a record (a transaction still open holds read_committed back). */
#define READ_IDLE_MS 1500

struct ct_cluster {
    const ct_config *cfg;
    rd_kafka_t *admin, *consumer, *producer;
};

ct_cluster *ct_cluster_new(const ct_config *cfg) {
    ct_cluster *c = calloc(1, sizeof *c);
    if (c) c->cfg = cfg;
    return c;
}

void ct_cluster_destroy(ct_cluster *c) {
    if (!c) return;
    if (c->consumer) {
        rd_kafka_consumer_close(c->consumer);
        rd_kafka_destroy(c->consumer);
    }
    if (c->producer) rd_kafka_destroy(c->producer);
    if (c->admin) rd_kafka_destroy(c->admin);
    free(c);
}

static rd_kafka_t *admin(ct_cluster *c, ct_error *err) {
    if (!c->admin) c->admin = ct_kafka_admin_new(c->cfg, "concert-console", err);
    return c->admin;
}

/* ---- metadata ----------------------------------------------------------- */

static const rd_kafka_metadata_topic_t *find_topic(const struct rd_kafka_metadata *md, const char *topic) {
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err) return &md->topics[i];
    return NULL;
}

static int metadata(ct_cluster *c, const struct rd_kafka_metadata **md, ct_error *err) {
    rd_kafka_t *rk = admin(c, err);
    if (!rk) return -1;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, md, CALL_TIMEOUT_MS);
    if (e) {
        CT_ERR(err, CT_ERR_RETRIABLE, "cluster metadata: %s", rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

static int cmp_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static json_t *int_array(const int32_t *v, int n) {
    int32_t sorted[n > 0 ? n : 1];
    memcpy(sorted, v, sizeof(int32_t) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof sorted[0], cmp_int32);
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(sorted[i]));
    return a;
}

static int cmp_partition(const void *a, const void *b) {
    const rd_kafka_metadata_partition_t *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static int cmp_topic(const void *a, const void *b) {
    return strcmp((*(const rd_kafka_metadata_topic_t *const *)a)->topic,
                  (*(const rd_kafka_metadata_topic_t *const *)b)->topic);
}

static json_t *topic_json(rd_kafka_t *rk, const rd_kafka_metadata_topic_t *t) {
    rd_kafka_metadata_partition_t parts[t->partition_cnt > 0 ? t->partition_cnt : 1];
    memcpy(parts, t->partitions, sizeof parts[0] * (size_t)t->partition_cnt);
    qsort(parts, (size_t)t->partition_cnt, sizeof parts[0], cmp_partition);
    json_t *arr = json_array();
    for (int p = 0; p < t->partition_cnt; p++) {
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, t->topic, parts[p].id, &lo, &hi, CALL_TIMEOUT_MS);
        json_t *j = json_pack("{s:i, s:i, s:o, s:o}", "partition", (int)parts[p].id, "leader", (int)parts[p].leader,
                              "replicas", int_array(parts[p].replicas, parts[p].replica_cnt), "isr",
                              int_array(parts[p].isrs, parts[p].isr_cnt));
        if (e) {
            json_object_set_new(j, "error", json_string(rd_kafka_err2str(e)));
        } else {
            json_object_set_new(j, "low", json_integer(lo));
            json_object_set_new(j, "high", json_integer(hi));
            json_object_set_new(j, "records", json_integer(hi - lo));
        }
        json_array_append_new(arr, j);
    }
    return json_pack("{s:s, s:o}", "topic", t->topic, "partitions", arr);
}

json_t *ct_cluster_topics(ct_cluster *c, ct_error *err) {
    const struct rd_kafka_metadata *md = NULL;
    if (metadata(c, &md, err) != 0) return NULL;
    json_t *brokers = json_array(), *topics = json_array();
    for (int i = 0; i < md->broker_cnt; i++)
        json_array_append_new(brokers, json_pack("{s:i, s:s, s:i}", "id", (int)md->brokers[i].id, "host",
                                                 md->brokers[i].host, "port", md->brokers[i].port));
    const rd_kafka_metadata_topic_t *sorted[md->topic_cnt > 0 ? md->topic_cnt : 1];
    int n = 0;
    for (int i = 0; i < md->topic_cnt; i++)
        if (!md->topics[i].err && strncmp(md->topics[i].topic, "__", 2) != 0) sorted[n++] = &md->topics[i];
    qsort(sorted, (size_t)n, sizeof sorted[0], cmp_topic);
    for (int i = 0; i < n; i++) json_array_append_new(topics, topic_json(c->admin, sorted[i]));
    rd_kafka_metadata_destroy(md);
    return json_pack("{s:o, s:o}", "brokers", brokers, "topics", topics);
}

/* The ends (high watermarks) of topic's partitions, by the metadata md:
 * {"<partition>": high, ...}; partitions that do not answer are left out. */
static json_t *topic_ends(ct_cluster *c, const struct rd_kafka_metadata *md, const char *topic) {
    json_t *ends = json_object();
    const rd_kafka_metadata_topic_t *t = find_topic(md, topic);
    for (int p = 0; t && p < t->partition_cnt; p++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(c->admin, topic, t->partitions[p].id, &lo, &hi, CALL_TIMEOUT_MS)) continue;
        char k[16];
        snprintf(k, sizeof k, "%d", (int)t->partitions[p].id);
        json_object_set_new(ends, k, json_integer(hi));
    }
    return ends;
}

/* ---- records ------------------------------------------------------------ */

static bool printable(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\n' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

/* Bytes as a JSON string when they are text, else as hex. */
static json_t *bytes_json(const void *p, size_t n) {
    if (!p) return json_null();
    if (printable(p, n)) {
        json_t *s = json_stringn(p, n); /* NULL when not UTF-8 */
        if (s) return s;
    }
    char *hex = malloc(2 * n + 5);
    if (!hex) return json_null();
    strcpy(hex, "0x");
    for (size_t i = 0; i < n; i++) snprintf(hex + 2 + 2 * i, 3, "%02x", ((const unsigned char *)p)[i]);
    json_t *s = json_string(hex);
    free(hex);
    return s;
}

static json_t *record_json(const rd_kafka_message_t *m) {
    rd_kafka_timestamp_type_t tt;
    int64_t ts = rd_kafka_message_timestamp(m, &tt);
    json_t *value = m->payload ? json_loadb(m->payload, m->len, JSON_DECODE_ANY, NULL) : NULL;
    if (!value) value = bytes_json(m->payload, m->len);
    json_t *headers = json_object();
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *v;
        size_t vn;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &v, &vn) == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
            json_object_set_new(headers, name, bytes_json(v, vn));
    }
    return json_pack("{s:i, s:I, s:I, s:o, s:o, s:o}", "partition", (int)m->partition, "offset", (json_int_t)m->offset,
                     "timestamp", (json_int_t)ts, "key", bytes_json(m->key, m->key_len), "headers", headers, "value",
                     value);
}

static rd_kafka_t *consumer(ct_cluster *c, ct_error *err) {
    if (c->consumer) return c->consumer;
    /* A group id is required, but the handle only assigns: it never joins
     * the group and never commits. */
    ct_kafka_consumer_opts co = {
        .client_id = "concert-console", .group_id = "concert-console", .read_committed = true, .partition_eof = true};
    c->consumer = ct_kafka_consumer_new(c->cfg, &co, err);
    return c->consumer;
}

/* Keeps the latest `limit` records: a ring. */
typedef struct ring {
    json_t **v;
    int limit, n, head;
} ring;

static void ring_push(ring *r, json_t *j) {
    if (r->n < r->limit) {
        r->v[(r->head + r->n++) % r->limit] = j;
        return;
    }
    json_decref(r->v[r->head]);
    r->v[r->head] = j;
    r->head = (r->head + 1) % r->limit;
}

/* Reads the assigned ranges [from, end) until each partition's end. */
static int read_assigned(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts, const int64_t *ends, const char *key,
                         ring *out, int64_t *scanned, ct_error *err) {
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
    if (e) {
        CT_ERR(err, CT_ERR_RETRIABLE, "assign: %s", rd_kafka_err2str(e));
        return -1;
    }
    int open = 0;
    bool done[parts->cnt > 0 ? parts->cnt : 1];
    for (int i = 0; i < parts->cnt; i++) {
        done[i] = parts->elems[i].offset >= ends[i];
        open += !done[i];
    }
    int64_t idle_until = ct_clock_mono_ms() + READ_IDLE_MS;
    while (open > 0 && ct_clock_mono_ms() < idle_until && (key || out->n < out->limit)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        int i = 0;
        while (i < parts->cnt && parts->elems[i].partition != m->partition) i++;
        if (i == parts->cnt || done[i]) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err) {
            bool eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
            if (!eof) CT_LOG_RATELIMITED(CT_LOG_INFO, "console", 5000, "reading: %s", rd_kafka_message_errstr(m));
            if (eof) done[i] = true, open--;
            rd_kafka_message_destroy(m);
            continue;
        }
        idle_until = ct_clock_mono_ms() + READ_IDLE_MS;
        (*scanned)++;
        if (m->offset + 1 >= ends[i]) done[i] = true, open--;
        if (!key || (m->key && m->key_len == strlen(key) && memcmp(m->key, key, m->key_len) == 0))
            ring_push(out, record_json(m));
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, NULL);
    return 0;
}

json_t *ct_cluster_records(ct_cluster *c, const char *topic, int partition, int64_t offset, int limit, const char *key,
                           ct_error *err) {
    if (limit < 1 || limit > CT_CLUSTER_RECORDS_MAX) limit = CT_CLUSTER_RECORDS_MAX;
    const struct rd_kafka_metadata *md = NULL;
    if (metadata(c, &md, err) != 0) return NULL;
    const rd_kafka_metadata_topic_t *t = find_topic(md, topic);
    if (!t || strncmp(topic, "__", 2) == 0) {
        rd_kafka_metadata_destroy(md);
        CT_ERR(err, CT_ERR_PERMANENT, "no topic %s", topic);
        return NULL;
    }
    bool found = partition < 0;
    for (int p = 0; p < t->partition_cnt; p++) found |= t->partitions[p].id == partition;
    if (!found) {
        int n = t->partition_cnt;
        rd_kafka_metadata_destroy(md);
        CT_ERR(err, CT_ERR_PERMANENT, "topic %s has partitions 0..%d, not %d", topic, n - 1, partition);
        return NULL;
    }
    rd_kafka_t *rk = consumer(c, err);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(t->partition_cnt);
    int64_t ends[t->partition_cnt > 0 ? t->partition_cnt : 1];
    json_t *from = json_object();
    int rc = rk ? 0 : -1;
    for (int p = 0; rc == 0 && p < t->partition_cnt; p++) {
        int32_t id = t->partitions[p].id;
        if (partition >= 0 && id != partition) continue;
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, id, &lo, &hi, CALL_TIMEOUT_MS);
        if (e) {
            CT_ERR(err, CT_ERR_RETRIABLE, "watermarks of %s/%d: %s", topic, (int)id, rd_kafka_err2str(e));
            rc = -1;
            break;
        }
        int64_t depth = key ? CT_CLUSTER_SEARCH_DEPTH : limit;
        int64_t start = offset >= 0 && !key ? offset : hi - depth;
        if (start < lo) start = lo;
        if (start > hi) start = hi;
        ends[parts->cnt] = hi;
        rd_kafka_topic_partition_list_add(parts, topic, id)->offset = start;
        char k[16];
        snprintf(k, sizeof k, "%d", (int)id);
        json_object_set_new(
            from, k,
            json_pack("{s:I, s:I, s:I}", "from", (json_int_t)start, "low", (json_int_t)lo, "high", (json_int_t)hi));
    }
    rd_kafka_metadata_destroy(md);
    json_t *recs = NULL;
    int64_t scanned = 0;
    ring r = {.limit = limit, .v = calloc((size_t)limit, sizeof(json_t *))};
    if (!r.v) rc = -1, CT_ERR(err, CT_ERR_FATAL, "out of memory");
    if (rc == 0) rc = read_assigned(rk, parts, ends, key, &r, &scanned, err);
    if (rc == 0) {
        recs = json_array();
        for (int i = 0; i < r.n; i++) json_array_append_new(recs, r.v[(r.head + i) % r.limit]);
    } else {
        for (int i = 0; i < r.n; i++) json_decref(r.v[(r.head + i) % r.limit]);
    }
    free(r.v);
    rd_kafka_topic_partition_list_destroy(parts);
    if (rc != 0) {
        json_decref(from);
        return NULL;
    }
    json_t *j = json_pack("{s:s, s:o, s:o, s:I}", "topic", topic, "partitions", from, "records", recs, "scanned",
                          (json_int_t)scanned);
    if (key) json_object_set_new(j, "key", json_string(key));
    return j;
}

/* ---- a test record ------------------------------------------------------ */

typedef struct delivery {
    bool done;
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
} delivery;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk, (void)opaque;
    delivery *d = m->_private;
    d->done = true, d->err = m->err, d->partition = m->partition, d->offset = m->offset;
}

json_t *ct_cluster_produce_test(ct_cluster *c, const char *key, const char *value, ct_error *err) {
    if (!c->producer) {
        ct_kafka_producer_opts po = {.client_id = "concert-console", .linger_ms = 0, .dr_msg_cb = on_delivery};
        if (!(c->producer = ct_kafka_producer_new(c->cfg, &po, err))) return NULL;
    }
    delivery d = {0};
    rd_kafka_resp_err_t e = rd_kafka_producev(
        c->producer, RD_KAFKA_V_TOPIC(CT_TOPIC_TEST), RD_KAFKA_V_VALUE((void *)value, strlen(value)),
        RD_KAFKA_V_KEY((void *)key, key ? strlen(key) : 0), RD_KAFKA_V_HEADER("source", "concert-console", -1),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
    if (e) {
        CT_ERR(err, CT_ERR_RETRIABLE, "produce: %s", rd_kafka_err2str(e));
        return NULL;
    }
    for (int64_t until = ct_clock_mono_ms() + CALL_TIMEOUT_MS; !d.done && ct_clock_mono_ms() < until;)
        rd_kafka_poll(c->producer, 50);
    if (!d.done) {
        /* The record stays queued; its callback must not outlive d. */
        rd_kafka_purge(c->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(c->producer, 1000);
        CT_ERR(err, CT_ERR_RETRIABLE, "the cluster did not acknowledge the record within %d ms", CALL_TIMEOUT_MS);
        return NULL;
    }
    if (d.err) {
        CT_ERR(err, CT_ERR_RETRIABLE, "produce: %s", rd_kafka_err2str(d.err));
        return NULL;
    }
    return json_pack("{s:s, s:i, s:I}", "topic", CT_TOPIC_TEST, "partition", (int)d.partition, "offset",
                     (json_int_t)d.offset);
}

/* ---- consumer groups ---------------------------------------------------- */

/* Runs an admin request and waits for its result event (NULL with err). */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type, ct_error *err) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, CALL_TIMEOUT_MS + 1000);
    if (!ev) {
        CT_ERR(err, CT_ERR_RETRIABLE, "the cluster did not answer within %d ms", CALL_TIMEOUT_MS);
        return NULL;
    }
    if (rd_kafka_event_type(ev) != type || rd_kafka_event_error(ev)) {
        CT_ERR(err, CT_ERR_RETRIABLE, "admin request: %s", rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

static rd_kafka_AdminOptions_t *options(rd_kafka_t *rk, rd_kafka_admin_op_t op) {
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, op);
    char errstr[256];
    rd_kafka_AdminOptions_set_request_timeout(o, CALL_TIMEOUT_MS, errstr, sizeof errstr);
    return o;
}

static json_t *describe_members(const rd_kafka_ConsumerGroupDescription_t *gd) {
    json_t *members = json_array();
    for (size_t m = 0; m < rd_kafka_ConsumerGroupDescription_member_count(gd); m++) {
        const rd_kafka_MemberDescription_t *md = rd_kafka_ConsumerGroupDescription_member(gd, m);
        const rd_kafka_topic_partition_list_t *a =
            rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(md));
        json_t *assigned = json_array();
        for (int i = 0; a && i < a->cnt; i++)
            json_array_append_new(
                assigned, json_pack("{s:s, s:i}", "topic", a->elems[i].topic, "partition", (int)a->elems[i].partition));
        const char *inst = rd_kafka_MemberDescription_group_instance_id(md);
        json_array_append_new(members, json_pack("{s:s, s:s, s:o, s:s, s:o}", "member_id",
                                                 rd_kafka_MemberDescription_consumer_id(md), "client_id",
                                                 rd_kafka_MemberDescription_client_id(md), "instance_id",
                                                 inst ? json_string(inst) : json_null(), "host",
                                                 rd_kafka_MemberDescription_host(md), "assignment", assigned));
    }
    return members;
}

/* The owner (client id) of topic/partition among members, or NULL. */
static const char *owner_of(json_t *members, const char *topic, int partition) {
    size_t i, k;
    json_t *m, *a;
    json_array_foreach(members, i, m) {
        json_array_foreach(json_object_get(m, "assignment"), k, a) {
            if (strcmp(json_string_value(json_object_get(a, "topic")), topic) == 0 &&
                json_integer_value(json_object_get(a, "partition")) == partition)
                return json_string_value(json_object_get(m, "client_id"));
        }
    }
    return NULL;
}

/* Adds topic to the set (a JSON object used as one). */
static void topic_add(json_t *set, const char *topic) { json_object_set_new(set, topic, json_true()); }

/* own: {topic: {"<partition>": offset}} kept outside Kafka, or NULL; md:
 * the cluster's metadata, read once for every group. */
static json_t *group_partitions(ct_cluster *c, rd_kafka_queue_t *q, const struct rd_kafka_metadata *md,
                                const char *group, json_t *members, json_t *own, ct_error *err) {
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, NULL);
    rd_kafka_AdminOptions_t *o = options(c->admin, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_ListConsumerGroupOffsets(c->admin, &req, 1, o, q);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT, err);
    if (!ev) return NULL;
    size_t n = 0;
    const rd_kafka_group_result_t **gr =
        rd_kafka_ListConsumerGroupOffsets_result_groups(rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
    const rd_kafka_topic_partition_list_t *committed = n ? rd_kafka_group_result_partitions(gr[0]) : NULL;
    /* Every partition of the topics the group reads or committed. */
    json_t *topics = json_object(), *m, *a;
    size_t i, k;
    for (int p = 0; committed && p < committed->cnt; p++) topic_add(topics, committed->elems[p].topic);
    const char *ot;
    json_t *ov;
    json_object_foreach(own, ot, ov) { topic_add(topics, ot); }
    json_array_foreach(members, i, m) {
        json_array_foreach(json_object_get(m, "assignment"), k, a) {
            topic_add(topics, json_string_value(json_object_get(a, "topic")));
        }
    }
    json_t *out = json_array();
    const char *topic;
    json_t *unused;
    json_object_foreach(topics, topic, unused) {
        json_t *ends = topic_ends(c, md, topic);
        const char *pk;
        json_t *hi;
        json_object_foreach(ends, pk, hi) {
            int part = atoi(pk);
            json_t *com = json_null();
            for (int p = 0; committed && p < committed->cnt; p++)
                if (strcmp(committed->elems[p].topic, topic) == 0 && committed->elems[p].partition == part &&
                    committed->elems[p].offset >= 0) {
                    json_decref(com);
                    com = json_integer(committed->elems[p].offset);
                }
            json_t *kept = json_object_get(json_object_get(own, topic), pk);
            if (kept) {
                json_decref(com);
                com = json_incref(kept);
            }
            const char *owner = owner_of(members, topic, part);
            json_t *row = json_pack("{s:s, s:i, s:o, s:O, s:o}", "topic", topic, "partition", part, "committed", com,
                                    "high", hi, "owner", owner ? json_string(owner) : json_null());
            if (json_is_integer(com))
                json_object_set_new(row, "lag", json_integer(json_integer_value(hi) - json_integer_value(com)));
            else
                json_object_set_new(row, "lag", json_null());
            json_array_append_new(out, row);
        }
        json_decref(ends);
    }
    json_decref(topics);
    rd_kafka_event_destroy(ev);
    return out;
}

json_t *ct_cluster_groups(ct_cluster *c, const char *const *groups, size_t n, json_t *positions, ct_error *err) {
    const struct rd_kafka_metadata *md = NULL;
    if (metadata(c, &md, err) != 0) return NULL;
    rd_kafka_t *rk = c->admin;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = options(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    rd_kafka_DescribeConsumerGroups(rk, (const char **)groups, n, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT, err);
    json_t *out = ev ? json_array() : NULL;
    size_t cnt = 0;
    const rd_kafka_ConsumerGroupDescription_t **gds =
        ev ? rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(ev), &cnt)
           : NULL;
    for (size_t g = 0; out && g < cnt; g++) {
        const rd_kafka_ConsumerGroupDescription_t *gd = gds[g];
        const rd_kafka_error_t *ge = rd_kafka_ConsumerGroupDescription_error(gd);
        json_t *members = describe_members(gd);
        const char *name = rd_kafka_ConsumerGroupDescription_group_id(gd);
        json_t *parts = group_partitions(c, q, md, name, members, json_object_get(positions, name), err);
        if (!parts) {
            json_decref(members);
            json_decref(out);
            out = NULL;
            break;
        }
        json_t *j = json_pack("{s:s, s:s, s:o, s:o}", "group", name, "state",
                              rd_kafka_consumer_group_state_name(rd_kafka_ConsumerGroupDescription_state(gd)),
                              "members", members, "partitions", parts);
        if (ge) json_object_set_new(j, "error", json_string(rd_kafka_error_string(ge)));
        json_array_append_new(out, j);
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_metadata_destroy(md);
    return out;
}
