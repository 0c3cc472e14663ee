/* Crash test of the exactly-once loop: a concert processor is killed with
 * SIGKILL at random points under a steady stream of commands and restarted,
 * over and over (CT_CRASH_KILLS, default 24). Afterwards:
 *   - the outputs on Kafka (read_committed) are exactly those of a
 *     crash-free run, the pure core applied in memory to the same records
 *     (every byte but the positional id compared), and none twice;
 *   - the processor's RocksDB state for this run equals the in-memory state;
 *   - replay: with that store deleted, the processor rebuilds it from the
 *     topic: the same state again, and not one output produced twice.
 * The generator is seeded (CT_CRASH_SEED, printed) so a failure replays. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../support/ct_test_kafka.h"
#include "../support/ct_test_model.h"
#include "ct_proc.h"

#define WAIT_MS 120000
#define COMMANDS 720
#define CHUNK 30

static ct_config cfg;
static char run[32], dir[96], inst[48];
static uint64_t rng;
static ct_model model;
static const char *const out_topics[] = {CT_TOPIC_CONCERT_EVENTS, CT_TOPIC_WALLET_COMMANDS, NULL};

static uint64_t next_rand(void) { /* xorshift64*: deterministic per seed */
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static const char *log_path(void) {
    static char log[160];
    snprintf(log, sizeof log, "%s/concert.log", dir);
    return log;
}

static pid_t start(void) { return ct_test_start_processor("concert", inst, log_path()); }

static void kill_and_restart(pid_t *proc) {
    kill(*proc, SIGKILL);
    waitpid(*proc, NULL, 0);
    *proc = start();
}

static int32_t partition_seen = -1;
static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    if (!m->err) partition_seen = m->partition;
}

static void send_all(rd_kafka_t *prod, const char *key, char *const *recs, size_t n) {
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(CT_TOPIC_CONCERT_COMMANDS),
                                       RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(recs[k], strlen(recs[k])),
                                       RD_KAFKA_V_END),
                     0);
    cr_assert_eq(rd_kafka_flush(prod, WAIT_MS), 0);
}

static char *record(int64_t ts, const char *name, const char *type, const char *key, const char *data) {
    return ct_test_envelope(run, name, type, ts, key, data);
}

Test(processor_crash, killed_repeatedly_outputs_and_state_equal_a_crash_free_run, .timeout = 600) {
    ct_test_setup_run(&cfg, "crash", run, sizeof run, dir, sizeof dir);
    const char *seed_env = getenv("CT_CRASH_SEED"), *kills_env = getenv("CT_CRASH_KILLS");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL);
    int kills_wanted = kills_env ? atoi(kills_env) : 24;
    rng = seed | 1;
    cr_log_info("CT_CRASH_SEED=%llu run=%s", (unsigned long long)seed, run);
    snprintf(inst, sizeof inst, "crash%s", run);
    ct_error err = {0};
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
        char data[512], name[16];
        const char *type;
        uint64_t r = next_rand() % 10;
        snprintf(name, sizeof name, "%d", i);
        if (i == 0) {
            type = "CreateConcert";
            snprintf(
                data, sizeof data,
                "{\"concert_id\":\"%s\",\"title\":\"crash\",\"max_active\":4,\"active_ttl_ms\":1500,\"hold_ttl_ms\":1000,"
                "\"schedules\":[{\"schedule_id\":\"1\",\"starts_at\":1900000000000,\"seats\":20,\"price\":1000},"
                "{\"schedule_id\":\"2\",\"starts_at\":1900086400000,\"seats\":20,\"price\":2000}]}",
                concert);
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
                     "\"schedule_id\":\"%d\",\"seat_no\":%d}",
                     held, run, t, run, t % 40, concert, (int)(next_rand() % 2) + 1, (int)(next_rand() % 20) + 1);
            held++;
        } else {
            /* Payments for random holds with a random token: often refused
             * (TOKEN_MISMATCH, NOT_OWNER), sometimes a DebitRequested. */
            int h = (int)(next_rand() % (uint64_t)held), t = (int)(next_rand() % (uint64_t)issued);
            type = "RequestPayment";
            snprintf(data, sizeof data,
                     "{\"payment_id\":\"p%d%s\",\"reservation_id\":\"r%d%s\",\"token\":\"k%d%s\",\"user_id\":\"u%d\","
                     "\"concert_id\":\"%s\"}",
                     i, run, h, run, t, run, t % 40, concert);
        }
        /* Small steps: the run spans ~4 s of logical time, so the next run
         * (the partition clock is shared and only moves forward) starts
         * after it, as a wall-clock stamp does. */
        ts += 1 + (int64_t)(next_rand() % 9);
        recs[nrec++] = record(ts, name, type, concert, data);
        if (i % 13 == 12) { /* a relay redelivery of a recent record */
            size_t back = 2 + (size_t)(next_rand() % 5);
            recs[nrec] = strdup(recs[nrec - back]);
            nrec++;
        }
    }
    ct_model_init(&model, run, CT_ROLE_CONCERT);
    for (size_t i = 0; i < nrec; i++) ct_model_apply(&model, recs[i]);
    cr_assert_gt(model.out_count, (size_t)COMMANDS, "the stream produces outputs");

    /* The steady stream, with a SIGKILL after every chunk. */
    ct_kafka_producer_opts po = {.client_id = "ct-test-crash", .linger_ms = 0, .dr_msg_cb = on_dr};
    rd_kafka_t *prod = ct_kafka_producer_new(&cfg, &po, &err);
    cr_assert_not_null(prod);
    int kills = 0;
    for (size_t i = 0; i < nrec; i += CHUNK) {
        send_all(prod, concert, recs + i, nrec - i < CHUNK ? nrec - i : CHUNK);
        if (kills < kills_wanted) {
            struct timespec pause = {0, (long)(50 + next_rand() % 700) * 1000000L};
            nanosleep(&pause, NULL); /* somewhere inside a batch, or between */
            kill_and_restart(&proc);
            kills++;
        }
    }
    while (kills < kills_wanted) { /* short streams: keep killing while it catches up */
        struct timespec pause = {0, (long)(200 + next_rand() % 800) * 1000000L};
        nanosleep(&pause, NULL);
        kill_and_restart(&proc);
        kills++;
    }
    cr_assert_geq(partition_seen, 0);

    char dump_path[160];
    snprintf(dump_path, sizeof dump_path, "%s/outputs.jsonl", dir);
    cr_assert_not_null(model.dump = fopen(dump_path, "w"));
    size_t duplicates = 0;
    size_t distinct = ct_model_read_outputs(&model, &cfg, out_topics, WAIT_MS, &duplicates);
    fclose(model.dump);
    model.dump = NULL;
    /* What the processor really produced, against the schemas. */
    /* Only types every seed produces are required; the others are
     * validated whenever they occur. */
    ct_model_validate_file(dump_path, "ConcertCreated,ScheduleCreated,TokenIssued,SeatHeld,CommandRejected");
    cr_log_info("kills=%d records=%zu expected outputs=%zu distinct seen=%zu duplicates=%zu", kills, nrec,
                model.out_count, distinct, duplicates);
    cr_assert_eq(distinct, model.out_count, "%zu of %zu outputs arrived (see %s/concert.log)", distinct,
                 model.out_count, dir);
    /* Deduplication by id would hide them, but transactions and fencing
     * mean there should be none: a repeat would point at a zombie commit. */
    cr_assert_eq(duplicates, 0, "%zu outputs committed twice", duplicates);

    /* The final state, read from the processor's own store. */
    ct_test_stop_clean(proc, "the processor", log_path());
    char store_dir[256];
    snprintf(store_dir, sizeof store_dir, "%s/processors/concert-%s/p%d", dir, inst, (int)partition_seen);
    const char *const stores[] = {store_dir, NULL};
    ct_model_compare_stores(&model, stores);

    /* Replay: the partition's store deleted, the processor rebuilds it from
     * the topic in restore mode: the same state, and no output at all. A
     * probe record's output proves the rebuild finished (restore precedes
     * processing). */
    cr_assert_eq(ct_store_wipe(store_dir, &err), 0, "%s", err.msg);
    proc = start();
    char data[256];
    snprintf(data, sizeof data, "{\"token\":\"probe%s\",\"user_id\":\"probe\",\"concert_id\":\"%s\"}", run, concert);
    char *probe = record(ts + 1, "probe", "IssueToken", concert, data);
    ct_model_apply(&model, probe);
    send_all(prod, concert, &probe, 1);
    distinct = ct_model_read_outputs(&model, &cfg, out_topics, WAIT_MS, &duplicates);
    cr_assert_eq(distinct, model.out_count, "after the rebuild: %zu of %zu outputs", distinct, model.out_count);
    cr_assert_eq(duplicates, 0, "restore mode produced %zu outputs again", duplicates);
    ct_test_stop_clean(proc, "the processor", log_path());
    ct_model_compare_stores(&model, stores);

    free(probe);
    rd_kafka_destroy(prod);
    for (size_t i = 0; i < nrec; i++) free(recs[i]);
    ct_model_fini(&model);
    ct_test_cleanup_run(dir);
}
