/* The crash-free reference for processor tests: the pure core applied in
 * memory to the same records, the outputs it expects, and comparisons
 * against what the real processors put on Kafka and in their stores.
 * Header-only (static functions), for tests/processors/. */
#ifndef CT_TEST_MODEL_H
#define CT_TEST_MODEL_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "ct_codec.h"
#include "ct_config.h"
#include "ct_domain.h"
#include "ct_kafka.h"
#include "ct_log.h"
#include "ct_memkv.h"
#include "ct_store.h"
#include "ct_test_kafka.h"

#define CT_MODEL_OUTPUTS_MAX 20000
#define CT_MODEL_IDS_MAX 8000

typedef struct ct_model_out {
    char *bytes;
    size_t len;
    int seen;
} ct_model_out;

typedef struct ct_model {
    const char *run; /* every command id of the test starts with it */
    ct_role role;
    ct_memkv *kv;
    ct_effects *fx;
    ct_model_out out[CT_MODEL_OUTPUTS_MAX];
    size_t out_count;
    char (*ids)[CT_RECORD_ID_BYTES_MAX + 1];
    size_t id_count;
    FILE *dump; /* when set, every output read from Kafka is appended here */
} ct_model;

static inline void ct_model_init(ct_model *m, const char *run, ct_role role) {
    memset(m, 0, sizeof *m);
    m->run = run;
    m->role = role;
    m->kv = ct_memkv_new();
    m->fx = ct_effects_new();
    m->ids = calloc(CT_MODEL_IDS_MAX, sizeof *m->ids);
    cr_assert(m->kv && m->fx && m->ids);
}

static inline void ct_model_fini(ct_model *m) {
    for (size_t i = 0; i < m->out_count; i++) free(m->out[i].bytes);
    free(m->ids);
    ct_effects_destroy(m->fx);
    ct_memkv_destroy(m->kv);
}

/* Applies one record as a processor would (a repeated id changes nothing);
 * remembers the outputs of this run's commands. */
static inline void ct_model_apply(ct_model *m, const char *json) {
    ct_cmd c;
    ct_error err = {0};
    cr_assert_eq(ct_codec_decode(json, strlen(json), &c, &err), 0, "%s: %s", json, err.msg);
    for (size_t k = 0; k < m->id_count; k++)
        if (strcmp(m->ids[k], c.id) == 0) return;
    cr_assert_lt(m->id_count, (size_t)CT_MODEL_IDS_MAX);
    snprintf(m->ids[m->id_count++], sizeof m->ids[0], "%s", c.id);
    ct_kv_port port = ct_memkv_port(m->kv);
    cr_assert_eq(ct_domain_apply(m->role, &port, &c, m->fx, &err), 0, "%s", err.msg);
    for (size_t o = 0; o < ct_effects_output_count(m->fx); o++) {
        const ct_out *out = ct_effects_output_at(m->fx, o);
        if (strncmp(out->command_id.s, m->run, strlen(m->run)) != 0) continue;
        char buf[8192];
        size_t len = 0;
        cr_assert_eq(ct_codec_encode_effect(m->fx, o, buf, sizeof buf, &len, &err), 0);
        cr_assert_lt(m->out_count, (size_t)CT_MODEL_OUTPUTS_MAX);
        m->out[m->out_count++] = (ct_model_out){strndup(buf, len), len, 0};
    }
    cr_assert_eq(ct_memkv_apply(m->kv, m->fx, &err), 0);
}

/* An output's bytes after its id. A partition's clock is shared by every
 * concert in it, so a record can also fire another concert's deadline (an
 * extra output before ours), and which record fires a deadline depends on
 * the partitioning: outputs are compared by everything but the positional
 * id "<input id>:<index>". */
static inline const char *ct_model_after_id(const char *json, size_t len, size_t *rest_len) {
    static const char needle[] = "\",\"type\"";
    const char *p = memmem(json, len, needle, sizeof needle - 1);
    cr_assert_not_null(p, "no type after id: %.*s", (int)len, json);
    *rest_len = len - (size_t)(p - json);
    return p;
}

static inline ct_model_out *ct_model_find(ct_model *m, const char *json, size_t len) {
    size_t rl;
    const char *rest = ct_model_after_id(json, len, &rl);
    for (size_t i = 0; i < m->out_count; i++) {
        size_t el;
        const char *er = ct_model_after_id(m->out[i].bytes, m->out[i].len, &el);
        if (el == rl && memcmp(er, rest, rl) == 0) return &m->out[i];
    }
    return NULL;
}

/* Reads this run's outputs from the topics (read_committed, a fresh group)
 * until every expected one was seen, then 3 s more so repeats show too.
 * Every output must be expected. Returns the distinct ones seen;
 * *duplicates gets the repeats. */
static inline size_t ct_model_read_outputs(ct_model *m, const ct_config *cfg, const char *const *topics, int wait_ms,
                                           size_t *duplicates) {
    static int round;
    char group[96];
    snprintf(group, sizeof group, "ct-test-model-%s-%d", m->run, round++);
    rd_kafka_t *c = ct_test_consumer_on(cfg, group, 1, topics);
    for (size_t i = 0; i < m->out_count; i++) m->out[i].seen = 0;
    size_t distinct = 0;
    *duplicates = 0;
    int64_t deadline = ct_clock_mono_ms() + wait_ms, settle = 0;
    while (ct_clock_mono_ms() < deadline && (distinct < m->out_count || ct_clock_mono_ms() < settle)) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(c, 200);
        if (!msg) continue;
        if (!msg->err) {
            json_t *ev = json_loadb(msg->payload, msg->len, 0, NULL);
            const char *cid = ev ? json_string_value(json_object_get(ev, "command_id")) : NULL;
            if (cid && strncmp(cid, m->run, strlen(m->run)) == 0) {
                ct_model_out *e = ct_model_find(m, msg->payload, msg->len);
                cr_assert_not_null(e, "output not in the crash-free run: %.*s", (int)msg->len,
                                   (const char *)msg->payload);
                if (m->dump) fprintf(m->dump, "%.*s\n", (int)msg->len, (const char *)msg->payload);
                if (e->seen++)
                    (*duplicates)++;
                else if (++distinct == m->out_count)
                    settle = ct_clock_mono_ms() + 3000;
            }
            json_decref(ev);
        }
        rd_kafka_message_destroy(msg);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return distinct;
}

typedef struct ct_model_cmp {
    const char *run;
    ct_memkv *other; /* check_key: look keys up here */
    size_t count;
} ct_model_cmp;

static inline bool ct_model_ours(const ct_model_cmp *c, const uint8_t *key, size_t key_len) {
    if (key_len >= 2 && key[0] == 'M' && key[1] == '/') return false; /* the partition clock is shared */
    return memmem(key, key_len, c->run, strlen(c->run)) != NULL;
}

/* foreach callback: copies this run's keys into c->other. */
static inline int ct_model_collect_key(void *ud, const uint8_t *key, size_t key_len, const uint8_t *val,
                                       size_t val_len) {
    ct_model_cmp *c = ud;
    ct_error err = {0};
    if (!ct_model_ours(c, key, key_len)) return 0;
    cr_assert_eq(ct_memkv_put(c->other, key, key_len, val, val_len, &err), 0);
    c->count++;
    return 0;
}

/* foreach callback: this run's key must be in c->other with the same value. */
static inline int ct_model_check_key(void *ud, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len) {
    ct_model_cmp *c = ud;
    if (!ct_model_ours(c, key, key_len)) return 0;
    ct_kv_port p = ct_memkv_port(c->other);
    uint8_t got[4096];
    size_t got_len = 0;
    ct_error err = {0};
    int rc = p.get(p.ud, key, key_len, got, sizeof got, &got_len, &err);
    cr_assert_eq(rc, 1, "key %.*s missing from the stores", (int)key_len, (const char *)key);
    cr_assert(got_len == val_len && memcmp(got, val, val_len) == 0, "key %.*s differs", (int)key_len,
              (const char *)key);
    c->count++;
    return 0;
}

/* The run's state across the given partition stores (NULL-terminated list
 * of store directories) equals the model's: same keys, same values. */
static inline void ct_model_compare_stores(ct_model *m, const char *const *store_dirs) {
    ct_model_cmp actual = {.run = m->run, .other = ct_memkv_new()};
    for (const char *const *d = store_dirs; *d; d++) {
        ct_error err = {0};
        ct_store *st = ct_store_open(*d, &err);
        cr_assert_not_null(st, "%s: %s %s", *d, err.msg, err.detail);
        cr_assert_eq(ct_store_foreach(st, ct_model_collect_key, &actual, &err), 0);
        ct_store_close(st);
    }
    ct_model_cmp check = {.run = m->run, .other = actual.other};
    ct_memkv_foreach(m->kv, ct_model_check_key, &check);
    cr_assert_eq(actual.count, check.count, "the stores hold %zu keys of this run, the model %zu", actual.count,
                 check.count);
    cr_assert_gt(check.count, 20, "the run built real state");
    ct_memkv_destroy(actual.other);
}

/* Validates a file of records (one JSON per line) against
 * schemas/events.json with schemas/validate.py; require: comma-separated
 * types that must occur. */
static inline void ct_model_validate_file(const char *path, const char *require) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 %s/schemas/validate.py %s/schemas/events.json %s --require-types %s > %s.report 2>&1",
             CT_SOURCE_DIR, CT_SOURCE_DIR, path, require, path);
    int rc = system(cmd);
    char report[4096] = "";
    snprintf(cmd, sizeof cmd, "%s.report", path);
    FILE *f = fopen(cmd, "r");
    if (f) {
        size_t n = fread(report, 1, sizeof report - 1, f);
        report[n] = '\0';
        fclose(f);
    }
    cr_assert_eq(rc, 0, "outputs violate schemas/events.json:\n%s", report);
}

#endif
