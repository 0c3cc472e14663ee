/* Scaling a role's consumer group, for real: two concert processors split
 * the 6 partitions; one is killed with SIGKILL and the other takes every
 * partition over and goes on; a third starts on an empty state directory
 * and rebuilds the partitions it is given from the topic. Through all of it
 * a stream of commands for 12 concerts flows, and afterwards the outputs
 * and the state (across the stores of whoever owned each partition last)
 * equal the crash-free in-memory run. */
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
#define CONCERTS 12
#define COMMANDS 900

static ct_config cfg;
static char run[32], dir[96];
static ct_model model;
static bool partition_used[64];

static const char *log_of(const char *instance) {
    static char log[3][160];
    char *l = log[(instance[0] - 'a') % 3];
    snprintf(l, sizeof log[0], "%s/%s.log", dir, instance);
    return l;
}

static pid_t start(const char *instance) {
    char inst[64];
    snprintf(inst, sizeof inst, "%s%s", instance, run);
    return ct_test_start_processor("concert", inst, log_of(instance));
}

/* Partitions an instance owns now, from its log's last rebalance line. */
static int owned(const char *instance) {
    char path[160], line[1024];
    snprintf(path, sizeof path, "%s/%s.log", dir, instance);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f)) {
        const char *a = strstr(line, "rebalance: assigned partitions="),
                   *r = strstr(line, "rebalance: revoked partitions=");
        if (a) n = atoi(a + strlen("rebalance: assigned partitions="));
        if (r) n = 0;
    }
    if (f) fclose(f);
    return n;
}

static int count_in_log(const char *instance, const char *what) {
    char path[160], line[1024];
    snprintf(path, sizeof path, "%s/%s.log", dir, instance);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof line, f)) n += strstr(line, what) != NULL;
    if (f) fclose(f);
    return n;
}

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    if (!m->err && m->partition >= 0 && m->partition < 64) partition_used[m->partition] = true;
}

typedef struct stream {
    rd_kafka_t *prod;
    uint64_t rng;
    int64_t ts;
    int sent, issued[CONCERTS], held[CONCERTS];
} stream;

static uint64_t next_rand(stream *s) {
    s->rng ^= s->rng >> 12, s->rng ^= s->rng << 25, s->rng ^= s->rng >> 27;
    return s->rng * 2685821657736338717ULL;
}

static void emit(stream *s, const char *topic, int32_t partition, const char *key, const char *id, const char *type,
                 const char *data) {
    char *rec = NULL;
    s->ts += 1 + (int64_t)(next_rand(s) % 9);
    cr_assert_geq(asprintf(&rec,
                           "{\"id\":\"%s\",\"type\":\"%s\",\"v\":1,\"ts\":%lld,\"command_id\":\"%s\",\"key\":\"%s\","
                           "\"data\":%s}",
                           id, type, (long long)s->ts, strcmp(type, "Tick") ? id : "", key, data),
                  0);
    ct_model_apply(&model, rec);
    cr_assert_eq(rd_kafka_producev(s->prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                   RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(rec, strlen(rec)),
                                   RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE), RD_KAFKA_V_END),
                 0);
}

/* n more commands across the concerts; flushed. */
static void send_commands(stream *s, int n) {
    for (int i = 0; i < n && s->sent < COMMANDS; i++, s->sent++) {
        int c = s->sent % CONCERTS;
        char concert[48], id[64], data[512];
        snprintf(concert, sizeof concert, "c%sx%d", run, c);
        snprintf(id, sizeof id, "%s-%d", run, s->sent);
        if (s->sent < CONCERTS) {
            snprintf(
                data, sizeof data,
                "{\"concert_id\":\"%s\",\"title\":\"scale\",\"max_active\":3,\"active_ttl_ms\":1500,\"hold_ttl_ms\":1000,"
                "\"schedules\":[{\"schedule_id\":\"1\",\"starts_at\":1900000000000,\"seats\":8,\"price\":1000}]}",
                concert);
            emit(s, CT_TOPIC_CONCERT_COMMANDS, RD_KAFKA_PARTITION_UA, concert, id, "CreateConcert", data);
        } else if (next_rand(s) % 2 || s->issued[c] == 0) {
            snprintf(data, sizeof data, "{\"token\":\"k%d-%d%s\",\"user_id\":\"u%d\",\"concert_id\":\"%s\"}", c,
                     s->issued[c], run, s->issued[c] % 9, concert);
            s->issued[c]++;
            emit(s, CT_TOPIC_CONCERT_COMMANDS, RD_KAFKA_PARTITION_UA, concert, id, "IssueToken", data);
        } else {
            int t = (int)(next_rand(s) % (uint64_t)s->issued[c]);
            snprintf(
                data, sizeof data,
                "{\"reservation_id\":\"r%d-%d%s\",\"token\":\"k%d-%d%s\",\"user_id\":\"u%d\",\"concert_id\":\"%s\","
                "\"schedule_id\":\"1\",\"seat_no\":%d}",
                c, s->held[c], run, c, t, run, t % 9, concert, (int)(next_rand(s) % 8) + 1);
            s->held[c]++;
            emit(s, CT_TOPIC_CONCERT_COMMANDS, RD_KAFKA_PARTITION_UA, concert, id, "HoldSeat", data);
        }
    }
    cr_assert_eq(rd_kafka_flush(s->prod, WAIT_MS), 0);
}

/* Streams while waiting for a condition on the group's assignment. */
static void stream_until(stream *s, bool (*cond)(void), const char *what) {
    int64_t deadline = ct_clock_mono_ms() + 150000;
    while (!cond() && ct_clock_mono_ms() < deadline) {
        send_commands(s, 10);
        struct timespec pause = {0, 300 * 1000000L};
        nanosleep(&pause, NULL);
    }
    if (!cond()) {
        for (const char *i = "abc"; *i; i++) ct_test_print_log_tail(log_of((char[]){*i, 0}), 25);
    }
    cr_assert(cond(), "%s: a=%d b=%d c=%d (logs in %s)", what, owned("a"), owned("b"), owned("c"), dir);
}

static bool split_ab(void) { return owned("a") > 0 && owned("b") > 0 && owned("a") + owned("b") == 6; }
static bool all_b(void) { return owned("b") == 6; }
static bool split_bc(void) { return owned("c") > 0 && owned("b") > 0 && owned("b") + owned("c") == 6; }

Test(processor_scale, partitions_follow_the_group_through_a_kill_and_a_new_instance, .timeout = 600) {
    ct_test_setup_run(&cfg, "scale", run, sizeof run, dir, sizeof dir);
    ct_error err = {0};
    setenv("CONCERT_LOG_LEVEL", "info", 1); /* the rebalance lines tell who owns what */
    pid_t a = start("a"), b = start("b");
    ct_model_init(&model, run, CT_ROLE_CONCERT);
    stream s = {.rng = (uint64_t)time(NULL) | 1, .ts = ct_clock_wall_ms()};
    ct_kafka_producer_opts po = {.client_id = "ct-test-scale", .linger_ms = 5, .dr_msg_cb = on_dr};
    s.prod = ct_kafka_producer_new(&cfg, &po, &err);
    cr_assert_not_null(s.prod);

    stream_until(&s, split_ab, "two instances split the partitions");
    kill(a, SIGKILL);
    waitpid(a, NULL, 0);
    stream_until(&s, all_b, "the survivor owns every partition");
    pid_t c = start("c"); /* an empty state directory of its own */
    stream_until(&s, split_bc, "the new instance takes a share");
    while (s.sent < COMMANDS) send_commands(&s, 50);
    /* A tick per partition at the end fires the remaining deadlines
     * everywhere, as the relay's ticker would; the model sees one. */
    s.ts += 5000;
    for (int p = 0; p < 6; p++) {
        char id[64];
        snprintf(id, sizeof id, "tick-%s-p%d", run, p);
        char *rec = NULL;
        cr_assert_geq(asprintf(&rec,
                               "{\"id\":\"%s\",\"type\":\"Tick\",\"v\":1,\"ts\":%lld,\"command_id\":\"\",\"key\":\"\","
                               "\"data\":{}}",
                               id, (long long)s.ts),
                      0);
        if (p == 0) ct_model_apply(&model, rec);
        cr_assert_eq(rd_kafka_producev(s.prod, RD_KAFKA_V_TOPIC(CT_TOPIC_CONCERT_COMMANDS), RD_KAFKA_V_PARTITION(p),
                                       RD_KAFKA_V_VALUE(rec, strlen(rec)), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
                                       RD_KAFKA_V_END),
                     0);
    }
    cr_assert_eq(rd_kafka_flush(s.prod, WAIT_MS), 0);
    rd_kafka_destroy(s.prod);

    const char *const topics[] = {CT_TOPIC_CONCERT_EVENTS, NULL};
    size_t duplicates = 0;
    size_t distinct = ct_model_read_outputs(&model, &cfg, topics, WAIT_MS, &duplicates);
    cr_log_info("outputs expected=%zu seen=%zu duplicates=%zu; restores by the new instance=%d", model.out_count,
                distinct, duplicates, count_in_log("c", "restored topic"));
    cr_assert_eq(distinct, model.out_count, "%zu of %zu outputs (logs in %s)", distinct, model.out_count, dir);
    cr_assert_eq(duplicates, 0, "%zu outputs committed twice", duplicates);
    cr_assert_gt(count_in_log("c", "restored topic"), 0, "the new instance rebuilt its partitions from the topic");

    /* State: each partition's freshest store (highest applied offset). */
    ct_test_stop_clean(b, "instance b", log_of("b"));
    ct_test_stop_clean(c, "instance c", log_of("c"));
    static char paths[6][256];
    const char *stores[7] = {0};
    int n = 0;
    for (int p = 0; p < 6; p++) {
        if (!partition_used[p]) continue;
        int64_t best = -2;
        for (const char *i = "abc"; *i; i++) {
            char path[256];
            snprintf(path, sizeof path, "%s/processors/concert-%c%s/p%d", dir, *i, run, p);
            ct_store *st = ct_fs_exists(path) ? ct_store_open(path, &err) : NULL;
            int64_t off = -1;
            if (st && ct_store_applied_offset(st, &off, &err) == 0 && off > best) {
                best = off;
                snprintf(paths[n], sizeof paths[n], "%s", path);
            }
            ct_store_close(st);
        }
        stores[n] = paths[n];
        n++;
    }
    ct_model_compare_stores(&model, stores);
    ct_model_fini(&model);
    ct_test_cleanup_run(dir);
}
