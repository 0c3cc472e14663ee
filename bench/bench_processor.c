/*
 * ct_bench_processor: issue 4's processor benchmarks, one partition.
 *
 *   ct_bench_processor restore [N]   (b) the restore path without Kafka:
 *        decode + domain core + RocksDB task store (the pending overlay,
 *        one fsync'd commit per CT_PROCESSOR_RESTORE_COMMIT_EVERY records,
 *        as restore mode does).
 *   ct_bench_processor eos [N]       (c) the full exactly-once loop on the
 *        configured cluster (CONCERT_* as for `concert`): N commands for one
 *        concert produced to concert.commands, a ct_processor in this
 *        process consuming them in transactions of up to
 *        CONCERT_PROCESSOR_BATCH_MAX records, timed from the first record
 *        produced to the last output read back (read_committed).
 *
 * The command mix is the same in both: a concert, then tokens and holds
 * (some rejected) with time advancing so holds and tokens expire.
 */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "ct_codec.h"
#include "ct_domain.h"
#include "ct_kafka.h"
#include "ct_log.h"
#include "ct_processor.h"
#include "ct_proc.h"
#include "ct_signal.h"
#include "ct_store.h"

static char run[24];

/* The i-th record of the mix, malloc'd. */
static char *make_record(int i, int64_t ts, const char *concert) {
    char data[512], *rec = NULL;
    const char *type;
    if (i == 0) {
        type = "CreateConcert";
        snprintf(
            data, sizeof data,
            "{\"concert_id\":\"%s\",\"title\":\"bench\",\"max_active\":100,\"active_ttl_ms\":60000,\"hold_ttl_ms\":30000,"
            "\"schedules\":[{\"schedule_id\":\"1\",\"starts_at\":1900000000000,\"seats\":50000,\"price\":1000}]}",
            concert);
    } else if (i % 2) {
        type = "IssueToken";
        snprintf(data, sizeof data, "{\"token\":\"k%d%s\",\"user_id\":\"u%d\",\"concert_id\":\"%s\"}", i, run, i % 5000,
                 concert);
    } else {
        type = "HoldSeat";
        int t = i - 1 - 2 * ((i / 2) % 50); /* a token issued a little earlier: active or waiting */
        if (t < 1) t = 1;
        snprintf(data, sizeof data,
                 "{\"reservation_id\":\"r%d%s\",\"token\":\"k%d%s\",\"user_id\":\"u%d\",\"concert_id\":\"%s\","
                 "\"schedule_id\":\"1\",\"seat_no\":%d}",
                 i, run, t, run, t % 5000, concert, (i * 7919) % 50000 + 1);
    }
    if (asprintf(&rec,
                 "{\"id\":\"%s-%d\",\"type\":\"%s\",\"v\":1,\"ts\":%" PRId64 ",\"command_id\":\"%s-%d\","
                 "\"key\":\"%s\",\"data\":%s}",
                 run, i, type, ts, run, i, concert, data) < 0)
        abort();
    return rec;
}

static int bench_restore(int n) {
    char dir[] = "/tmp/ct-bench-store-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    ct_error err = {0};
    ct_store *st = ct_store_open(dir, &err);
    ct_effects *fx = ct_effects_new();
    if (!st || !fx) return fprintf(stderr, "%s\n", err.msg), 1;
    char **recs = calloc((size_t)n, sizeof *recs);
    char concert[40];
    snprintf(concert, sizeof concert, "c%s", run);
    int64_t ts = 1800000000000;
    for (int i = 0; i < n; i++) recs[i] = make_record(i, ts += 3, concert);
    ct_kv_port port = ct_store_port(st);
    int64_t t0 = ct_clock_mono_ms();
    ct_store_batch_begin(st);
    size_t outputs = 0;
    for (int i = 0; i < n; i++) {
        ct_cmd c;
        bool applied = false;
        if (ct_codec_decode(recs[i], strlen(recs[i]), &c, &err) != 0 || ct_store_is_applied(st, c.id, &applied, &err) ||
            ct_concert_apply(&port, &c, fx, &err) != 0 || ct_store_batch_add(st, fx, &err) != 0 ||
            ct_store_batch_mark_applied(st, c.id, i, 0, &err) != 0)
            return fprintf(stderr, "record %d: %s %s\n", i, err.msg, err.detail), 1;
        outputs += ct_effects_output_count(fx);
        if (i % CT_PROCESSOR_RESTORE_COMMIT_EVERY == CT_PROCESSOR_RESTORE_COMMIT_EVERY - 1 &&
            ct_store_batch_commit(st, &err) != 0)
            return fprintf(stderr, "%s\n", err.msg), 1;
    }
    if (ct_store_batch_commit(st, &err) != 0) return 1;
    int64_t ms = ct_clock_mono_ms() - t0;
    printf("(b) restore path (decode + core + RocksDB, commit every %d): %d records in %" PRId64 " ms = %.0f records/s "
           "(%.2f outputs/record computed, not produced)\n",
           CT_PROCESSOR_RESTORE_COMMIT_EVERY, n, ms, n * 1000.0 / (double)(ms ? ms : 1), (double)outputs / n);
    for (int i = 0; i < n; i++) free(recs[i]);
    free(recs);
    ct_effects_destroy(fx);
    ct_store_close(st);
    ct_store_wipe(dir, &err);
    rmdir(dir);
    return 0;
}

typedef struct proc_thread {
    ct_processor *p;
    ct_error err;
    int rc;
} proc_thread;

static void *run_processor(void *arg) {
    proc_thread *t = arg;
    t->rc = ct_processor_run(t->p, &t->err);
    return NULL;
}

static int bench_eos(const ct_config *cfg, int n) {
    ct_error err = {0};
    char instance[40], concert[40], group[64];
    /* One instance name for every run: its stores persist under the data
     * directory, so a run restores only what it has not seen instead of
     * rebuilding every earlier run's records before it starts. */
    snprintf(instance, sizeof instance, "bench");
    snprintf(concert, sizeof concert, "c%s", run);
    snprintf(group, sizeof group, "ct-bench-%s", run);
    ct_signal_install(&err);
    /* Start the processor and let it take and restore its partitions first. */
    proc_thread t = {0};
    if (!(t.p = ct_processor_new(cfg, CT_ROLE_CONCERT, instance, &err))) return fprintf(stderr, "%s\n", err.msg), 1;
    pthread_t th;
    pthread_create(&th, NULL, run_processor, &t);
    ct_kafka_consumer_opts co = {
        .client_id = "ct-bench", .group_id = group, .read_committed = true, .auto_offset_reset = "latest"};
    rd_kafka_t *c = ct_kafka_consumer_new(cfg, &co, &err);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, CT_TOPIC_CONCERT_EVENTS, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(c, l);
    rd_kafka_topic_partition_list_destroy(l);
    ct_kafka_producer_opts po = {.client_id = "ct-bench", .linger_ms = 5};
    rd_kafka_t *p = ct_kafka_producer_new(cfg, &po, &err);
    if (!c || !p) return fprintf(stderr, "%s\n", err.msg), 1;
    char **recs = calloc((size_t)n + 1, sizeof *recs);
    int64_t ts = ct_clock_wall_ms();
    for (int i = 0; i <= n; i++) recs[i] = make_record(i, ts += 1, concert);
    /* Warm-up: the CreateConcert; wait for its outcome (assignment, restore, consumer position). */
    rd_kafka_producev(p, RD_KAFKA_V_TOPIC(CT_TOPIC_CONCERT_COMMANDS), RD_KAFKA_V_KEY(concert, strlen(concert)),
                      RD_KAFKA_V_VALUE(recs[0], strlen(recs[0])), RD_KAFKA_V_END);
    rd_kafka_flush(p, 30000);
    char last_cmd[64];
    snprintf(last_cmd, sizeof last_cmd, "%s-0", run);
    ct_processor_stats before = {0};
    for (int pass = 0; pass < 2; pass++) {
        int64_t t0 = ct_clock_mono_ms();
        if (pass == 1) {
            ct_processor_stats_get(t.p, &before);
            for (int i = 1; i <= n; i++) {
                while (rd_kafka_producev(
                           p, RD_KAFKA_V_TOPIC(CT_TOPIC_CONCERT_COMMANDS), RD_KAFKA_V_KEY(concert, strlen(concert)),
                           RD_KAFKA_V_VALUE(recs[i], strlen(recs[i])), RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                    rd_kafka_poll(p, 10);
            }
            snprintf(last_cmd, sizeof last_cmd, "%s-%d", run, n);
        }
        bool done = false;
        int64_t seen = 0;
        while (!done && ct_clock_mono_ms() - t0 < 300000) {
            rd_kafka_poll(p, 0);
            rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
            if (!m) continue;
            if (!m->err) {
                seen++;
                json_t *ev = json_loadb(m->payload, m->len, 0, NULL);
                const char *cid = ev ? json_string_value(json_object_get(ev, "command_id")) : NULL;
                json_t *data = ev ? json_object_get(ev, "data") : NULL;
                done = cid && strcmp(cid, last_cmd) == 0 && json_is_true(json_object_get(data, "terminal"));
                json_decref(ev);
            }
            rd_kafka_message_destroy(m);
        }
        int64_t ms = ct_clock_mono_ms() - t0;
        if (!done) return fprintf(stderr, "timed out (pass %d)\n", pass), 1;
        if (pass == 1)
            printf("(c) exactly-once loop on Kafka: %d records in %" PRId64 " ms = %.0f records/s "
                   "(transactions of up to %d records / %d ms; %" PRId64 " output events read back)\n",
                   n, ms, n * 1000.0 / (double)ms, cfg->processor_batch_max, cfg->processor_batch_ms, seen);
    }
    ct_signal_request_stop();
    pthread_join(th, NULL);
    ct_processor_stats ps;
    ct_processor_stats_get(t.p, &ps);
    uint64_t txns = ps.batches - before.batches;
    printf("    processor: %" PRIu64 " transactions (%.0f records each); ms in poll %" PRId64 ", apply %" PRId64
           ", offsets %" PRId64 ", commit %" PRId64 ", store %" PRId64 "\n",
           txns, txns ? (double)(ps.applied - before.applied) / (double)txns : 0.0, ps.poll_ms - before.poll_ms,
           ps.apply_ms - before.apply_ms, ps.offsets_ms - before.offsets_ms, ps.commit_ms - before.commit_ms,
           ps.store_ms - before.store_ms);
    ct_processor_destroy(t.p);
    rd_kafka_destroy(p);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    for (int i = 0; i <= n; i++) free(recs[i]);
    free(recs);
    return t.rc == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 2 || (strcmp(argv[1], "restore") && strcmp(argv[1], "eos"))) {
        fprintf(stderr, "usage: ct_bench_processor restore|eos [records]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : (strcmp(argv[1], "eos") == 0 ? 100000 : 200000);
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) return 1;
    snprintf(run, sizeof run, "%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5]);
    ct_config cfg;
    ct_error err = {0};
    if (ct_config_load_env(&cfg, &err) != 0) return fprintf(stderr, "%s\n", err.msg), 2;
    ct_log_init("bench", CT_LOG_WARN);
    return strcmp(argv[1], "restore") == 0 ? bench_restore(n) : bench_eos(&cfg, n);
}
