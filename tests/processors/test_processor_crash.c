/* Crash test of the exactly-once loop: a concert processor is killed with
 * SIGKILL at random points under a steady stream of commands and restarted,
 * over and over (CT_CRASH_KILLS, default 24). Afterwards:
 *   - the outputs on Kafka (read_committed) are exactly the outputs of a
 *     crash-free run: the pure core applied in memory to the same records
 *     (every byte but the positional id compared: see after_id), none twice;
 *   - the processor's RocksDB state for this run equals the in-memory state;
 *   - replay: with that store deleted, the processor rebuilds it from the
 *     topic: the same state again, and not one output produced twice.
 * The generator is seeded (CT_CRASH_SEED, printed) so a failure replays. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/ct_test_kafka.h"
#include "ct_codec.h"
#include "ct_domain.h"
#include "ct_memkv.h"
#include "ct_proc.h"
#include "ct_store.h"

#define WAIT_MS 120000
#define COMMANDS 720
#define CHUNK 30

static ct_config cfg;
static char run[32], dir[96], inst[48];
static uint64_t rng;

static uint64_t next_rand(void) { /* xorshift64*: deterministic per seed */
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static pid_t start(void) {
    const char *argv[] = {CT_CONCERT_BIN, "processor", "--role", "concert", "--instance", inst, NULL};
    char log[160];
    snprintf(log, sizeof log, "%s/concert.log", dir);
    ct_proc_opts po = {.argv = argv, .output_path = log, .output_fd = -1, .die_with_parent = true, .null_stdin = true};
    ct_error err = {0};
    pid_t pid = ct_proc_spawn(&po, &err);
    cr_assert_gt(pid, 0, "%s", err.msg);
    return pid;
}

typedef struct expected {
    char *id;
    char *bytes;
    size_t len;
    int seen;
} expected;

static expected exp_out[COMMANDS * 8];
static size_t exp_count;

/* An output's bytes after its id. The partition's clock is shared by every
 * concert in it, so a record of this run can also fire an older run's
 * deadline (an extra output before ours), shifting our outputs' indices:
 * outputs are compared by everything but the positional id. */
static const char *after_id(const char *json, size_t len, size_t *rest_len) {
    static const char needle[] = "\",\"type\"";
    const char *p = memmem(json, len, needle, sizeof needle - 1);
    cr_assert_not_null(p, "no type after id: %.*s", (int)len, json);
    *rest_len = len - (size_t)(p - json);
    return p;
}

static expected *find_expected(const char *json, size_t len) {
    size_t rl;
    const char *rest = after_id(json, len, &rl);
    for (size_t i = 0; i < exp_count; i++) {
        size_t el;
        const char *er = after_id(exp_out[i].bytes, exp_out[i].len, &el);
        if (el == rl && memcmp(er, rest, rl) == 0) return &exp_out[i];
    }
    return NULL;
}

static int32_t partition_seen = -1;
static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    if (!m->err) partition_seen = m->partition;
}

typedef struct cmp_ctx {
    ct_store *st;
    size_t checked;
    size_t ours_store;
} cmp_ctx;

static int check_key(void *ud, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len) {
    cmp_ctx *c = ud;
    if (key_len >= 2 && key[0] == 'M' && key[1] == '/') return 0; /* the partition clock is shared */
    ct_kv_port p = ct_store_port(c->st);
    uint8_t got[4096];
    size_t got_len = 0;
    ct_error err = {0};
    int rc = p.get(p.ud, key, key_len, got, sizeof got, &got_len, &err);
    cr_assert_eq(rc, 1, "key %.*s missing from the store", (int)key_len, (const char *)key);
    cr_assert(got_len == val_len && memcmp(got, val, val_len) == 0, "key %.*s differs", (int)key_len, (const char *)key);
    c->checked++;
    return 0;
}

static int count_ours(void *ud, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len) {
    size_t *n = ud;
    if (memmem(key, key_len, run, strlen(run))) (*n)++;
    return 0;
}

/* Reads this run's outputs (read_committed, a fresh group) until every
 * expected id was seen; each must match the crash-free bytes. Returns the
 * distinct ids seen, *duplicates the repeats. */
static size_t read_outputs(size_t *duplicates) {
    static int round;
    char group[64];
    snprintf(group, sizeof group, "ct-test-crash-%s-%d", run, round++);
    ct_error err = {0};
    ct_kafka_consumer_opts co = {.client_id = "ct-test", .group_id = group, .read_committed = true};
    rd_kafka_t *c = ct_kafka_consumer_new(&cfg, &co, &err);
    cr_assert_not_null(c);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(l, CT_TOPIC_CONCERT_EVENTS, RD_KAFKA_PARTITION_UA);
    rd_kafka_topic_partition_list_add(l, CT_TOPIC_WALLET_COMMANDS, RD_KAFKA_PARTITION_UA);
    cr_assert_eq(rd_kafka_subscribe(c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    for (size_t i = 0; i < exp_count; i++) exp_out[i].seen = 0;
    size_t distinct = 0;
    *duplicates = 0;
    int64_t deadline = ct_clock_mono_ms() + WAIT_MS, settle = 0;
    /* After the last expected id, read on for 3 s: a repeat must show up too. */
    while (ct_clock_mono_ms() < deadline && (distinct < exp_count || ct_clock_mono_ms() < settle)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (!m) continue;
        if (!m->err) {
            json_t *ev = json_loadb(m->payload, m->len, 0, NULL);
            const char *cid = ev ? json_string_value(json_object_get(ev, "command_id")) : NULL;
            if (cid && strncmp(cid, run, strlen(run)) == 0) {
                expected *e = find_expected(m->payload, m->len);
                cr_assert_not_null(e, "output not in the crash-free run: %.*s", (int)m->len, (const char *)m->payload);
                if (e->seen++) (*duplicates)++;
                else if (++distinct == exp_count) settle = ct_clock_mono_ms() + 3000;
            }
            json_decref(ev);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return distinct;
}

/* The processor's store of the partition equals the model for this run. */
static void compare_store(const char *store_dir, ct_memkv *model) {
    ct_error err = {0};
    ct_store *st = ct_store_open(store_dir, &err);
    cr_assert_not_null(st, "%s %s", err.msg, err.detail);
    cmp_ctx ctx = {.st = st};
    ct_memkv_foreach(model, check_key, &ctx);
    size_t ours_model = 0, ours_store = 0;
    ct_memkv_foreach(model, count_ours, &ours_model);
    cr_assert_eq(ct_store_foreach(st, count_ours, &ours_store, &err), 0);
    cr_assert_eq(ours_store, ours_model, "store has %zu keys of this run, the model %zu", ours_store, ours_model);
    cr_assert_gt(ctx.checked, 50);
    ct_store_close(st);
}

static void stop_clean(pid_t proc) {
    kill(proc, SIGTERM);
    int status = 0;
    cr_assert(ct_proc_wait(proc, 30000, &status) && WIFEXITED(status) && WEXITSTATUS(status) == 0, "clean stop");
}

Test(processor_crash, killed_repeatedly_outputs_and_state_equal_a_crash_free_run, .timeout = 600) {
    ct_test_load_config(&cfg);
    ct_test_run_id(run, sizeof run);
    const char *seed_env = getenv("CT_CRASH_SEED"), *kills_env = getenv("CT_CRASH_KILLS");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL);
    int kills_wanted = kills_env ? atoi(kills_env) : 24;
    rng = seed | 1;
    cr_log_info("CT_CRASH_SEED=%llu run=%s", (unsigned long long)seed, run);
    snprintf(dir, sizeof dir, "/tmp/ct-test-crash-%s", run);
    snprintf(inst, sizeof inst, "crash%s", run);
    ct_error err = {0};
    cr_assert_eq(ct_fs_mkdirs(dir, 0755, &err), 0);
    setenv("CONCERT_DATA_DIR", dir, 1);
    setenv("CONCERT_PROCESSOR_BATCH_MAX", "7", 1); /* many transactions: more places to die */
    pid_t proc = start();

    /* The records, generated once; the model applies them crash-free. */
    char concert[40];
    snprintf(concert, sizeof concert, "c%s", run);
    static char *recs[COMMANDS + COMMANDS / 10];
    size_t nrec = 0;
    int64_t ts = ct_clock_wall_ms();
    int issued = 0, held = 0;
    for (int i = 0; i < COMMANDS; i++) {
        char data[512], *rec = NULL;
        const char *type;
        uint64_t r = next_rand() % 10;
        if (i == 0) {
            type = "CreateConcert";
            snprintf(data, sizeof data,
                     "{\"concert_id\":\"%s\",\"title\":\"crash\",\"max_active\":4,\"active_ttl_ms\":1500,\"hold_ttl_ms\":1000,"
                     "\"schedules\":[{\"schedule_id\":\"1\",\"starts_at\":1900000000000,\"seats\":20,\"price\":1000},"
                     "{\"schedule_id\":\"2\",\"starts_at\":1900086400000,\"seats\":20,\"price\":2000}]}", concert);
        } else if (r < 4 || issued == 0) {
            type = "IssueToken";
            snprintf(data, sizeof data, "{\"token\":\"k%d%s\",\"user_id\":\"u%d\",\"concert_id\":\"%s\"}", issued, run,
                     issued % 40, concert);
            issued++;
        } else if (r < 8 || held == 0) {
            int t = (int)(next_rand() % (uint64_t)issued);
            type = "HoldSeat";
            snprintf(data, sizeof data,
                     "{\"reservation_id\":\"r%d%s\",\"token\":\"k%d%s\",\"user_id\":\"u%d\",\"concert_id\":\"%s\","
                     "\"schedule_id\":\"%d\",\"seat_no\":%d}", held, run, t, run, t % 40, concert,
                     (int)(next_rand() % 2) + 1, (int)(next_rand() % 20) + 1);
            held++;
        } else {
            int h = (int)(next_rand() % (uint64_t)held);
            type = "RequestPayment";
            /* The token is guessed from the hold's order: often wrong on purpose (TOKEN_MISMATCH). */
            int t = (int)(next_rand() % (uint64_t)issued);
            snprintf(data, sizeof data,
                     "{\"payment_id\":\"p%d%s\",\"reservation_id\":\"r%d%s\",\"token\":\"k%d%s\",\"user_id\":\"u%d\","
                     "\"concert_id\":\"%s\"}", i, run, h, run, t, run, t % 40, concert);
        }
        /* Small steps: the run spans ~4 s of logical time, so the next run
         * (the partition clock is shared and only moves forward) starts
         * after it, as a wall-clock stamp does. */
        ts += 1 + (int64_t)(next_rand() % 9);
        cr_assert_geq(asprintf(&rec, "{\"id\":\"%s-%d\",\"type\":\"%s\",\"v\":1,\"ts\":%lld,\"command_id\":\"%s-%d\","
                                     "\"key\":\"%s\",\"data\":%s}",
                               run, i, type, (long long)ts, run, i, concert, data), 0);
        recs[nrec++] = rec;
        if (i % 13 == 12) { /* a relay redelivery of a recent record */
            size_t back = 2 + (size_t)(next_rand() % 5);
            recs[nrec] = strdup(recs[nrec - back]);
            nrec++;
        }
    }

    ct_memkv *model = ct_memkv_new();
    ct_effects *fx = ct_effects_new();
    ct_kv_port mport = ct_memkv_port(model);
    static char seen_ids[COMMANDS + COMMANDS / 10][CT_RECORD_ID_BYTES_MAX + 1];
    size_t seen_n = 0;
    for (size_t i = 0; i < nrec; i++) {
        ct_cmd c;
        cr_assert_eq(ct_codec_decode(recs[i], strlen(recs[i]), &c, &err), 0, "%s: %s", recs[i], err.msg);
        bool dup = false;
        for (size_t k = 0; k < seen_n && !dup; k++) dup = strcmp(seen_ids[k], c.id) == 0;
        if (dup) continue;
        snprintf(seen_ids[seen_n++], sizeof seen_ids[0], "%s", c.id);
        cr_assert_eq(ct_concert_apply(&mport, &c, fx, &err), 0, "%s", err.msg);
        for (size_t o = 0; o < ct_effects_output_count(fx); o++) {
            char buf[8192], id[200];
            size_t len = 0;
            cr_assert_eq(ct_codec_encode_effect(fx, o, buf, sizeof buf, &len, &err), 0);
            ct_codec_output_id(c.id, ct_effects_output_at(fx, o)->index, id);
            cr_assert_lt(exp_count, sizeof exp_out / sizeof exp_out[0]);
            exp_out[exp_count++] = (expected){strdup(id), strndup(buf, len), len, 0};
        }
        cr_assert_eq(ct_memkv_apply(model, fx, &err), 0);
    }
    cr_assert_gt(exp_count, (size_t)COMMANDS, "the stream produces outputs");

    /* The steady stream, with a SIGKILL after every chunk. */
    ct_kafka_producer_opts po = {.client_id = "ct-test-crash", .linger_ms = 0, .dr_msg_cb = on_dr};
    rd_kafka_t *prod = ct_kafka_producer_new(&cfg, &po, &err);
    cr_assert_not_null(prod);
    int kills = 0;
    for (size_t i = 0; i < nrec; i += CHUNK) {
        for (size_t k = i; k < i + CHUNK && k < nrec; k++)
            cr_assert_eq(rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(CT_TOPIC_CONCERT_COMMANDS),
                                           RD_KAFKA_V_KEY(concert, strlen(concert)),
                                           RD_KAFKA_V_VALUE(recs[k], strlen(recs[k])), RD_KAFKA_V_END),
                         0);
        cr_assert_eq(rd_kafka_flush(prod, WAIT_MS), 0);
        if (kills < kills_wanted) {
            struct timespec pause = {0, (long)(50 + next_rand() % 700) * 1000000L};
            nanosleep(&pause, NULL); /* somewhere inside a batch, or between */
            kill(proc, SIGKILL);
            waitpid(proc, NULL, 0);
            kills++;
            proc = start();
        }
    }
    while (kills < kills_wanted) { /* short streams: keep killing while it catches up */
        struct timespec pause = {0, (long)(200 + next_rand() % 800) * 1000000L};
        nanosleep(&pause, NULL);
        kill(proc, SIGKILL);
        waitpid(proc, NULL, 0);
        kills++;
        proc = start();
    }
    rd_kafka_destroy(prod);
    cr_assert_geq(partition_seen, 0);

    /* Every expected output, and nothing else of this run, on Kafka. */
    size_t duplicates = 0;
    size_t distinct = read_outputs(&duplicates);
    cr_log_info("kills=%d records=%zu expected outputs=%zu distinct seen=%zu duplicates=%zu", kills, nrec, exp_count,
                distinct, duplicates);
    cr_assert_eq(distinct, exp_count, "%zu of %zu outputs arrived (see %s/concert.log)", distinct, exp_count, dir);
    /* Deduplication by id would hide them, but transactions and fencing
     * mean there should be none: a repeat would point at a zombie commit. */
    cr_assert_eq(duplicates, 0, "%zu outputs committed twice", duplicates);

    /* The final state, read from the processor's own store. */
    stop_clean(proc);
    char store_dir[256];
    snprintf(store_dir, sizeof store_dir, "%s/processors/concert-%s/p%d", dir, inst, (int)partition_seen);
    compare_store(store_dir, model);

    /* Replay: the partition's store deleted, the processor rebuilds it from
     * the topic in restore mode: the same state, and no output at all. */
    cr_assert_eq(ct_store_wipe(store_dir, &err), 0, "%s", err.msg);
    proc = start();
    char data[256], *probe = NULL;
    snprintf(data, sizeof data, "{\"token\":\"probe%s\",\"user_id\":\"probe\",\"concert_id\":\"%s\"}", run, concert);
    cr_assert_geq(asprintf(&probe, "{\"id\":\"%s-probe\",\"type\":\"IssueToken\",\"v\":1,\"ts\":%lld,"
                                   "\"command_id\":\"%s-probe\",\"key\":\"%s\",\"data\":%s}",
                           run, (long long)(ts + 1), run, concert, data), 0);
    ct_cmd pc;
    cr_assert_eq(ct_codec_decode(probe, strlen(probe), &pc, &err), 0, "%s", err.msg);
    cr_assert_eq(ct_concert_apply(&mport, &pc, fx, &err), 0);
    for (size_t o = 0; o < ct_effects_output_count(fx); o++) {
        char buf[8192], id[200];
        size_t len = 0;
        cr_assert_eq(ct_codec_encode_effect(fx, o, buf, sizeof buf, &len, &err), 0);
        ct_codec_output_id(pc.id, ct_effects_output_at(fx, o)->index, id);
        exp_out[exp_count++] = (expected){strdup(id), strndup(buf, len), len, 0};
    }
    cr_assert_eq(ct_memkv_apply(model, fx, &err), 0);
    prod = ct_kafka_producer_new(&cfg, &po, &err);
    cr_assert_eq(rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(CT_TOPIC_CONCERT_COMMANDS), RD_KAFKA_V_KEY(concert, strlen(concert)),
                                   RD_KAFKA_V_VALUE(probe, strlen(probe)), RD_KAFKA_V_END), 0);
    cr_assert_eq(rd_kafka_flush(prod, WAIT_MS), 0);
    rd_kafka_destroy(prod);
    /* The probe's output proves the rebuild finished (restore precedes processing). */
    distinct = read_outputs(&duplicates);
    cr_assert_eq(distinct, exp_count, "after the rebuild: %zu of %zu outputs", distinct, exp_count);
    cr_assert_eq(duplicates, 0, "restore mode produced %zu outputs again", duplicates);
    stop_clean(proc);
    compare_store(store_dir, model);
    free(probe);

    for (size_t i = 0; i < nrec; i++) free(recs[i]);
    for (size_t i = 0; i < exp_count; i++) free(exp_out[i].id), free(exp_out[i].bytes);
    ct_effects_destroy(fx);
    ct_memkv_destroy(model);
    if (!getenv("CT_TEST_KEEP")) {
        char rm[160];
        snprintf(rm, sizeof rm, "rm -rf %s", dir);
        cr_assert_eq(system(rm), 0);
    }
}
