/* The local Kafka cluster, for real: topics as DESIGN.md section 2 says,
 * records crossing processes through a consumer group, and the
 * transactional guarantees the processors rest on (aborted records invisible
 * to read_committed, offsets committed through a transaction visible to the
 * group). Needs the cluster scripts/test starts (or CONCERT_KAFKA_BROKERS). */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/ct_test_kafka.h"
#include "ct_localkafka.h"
#include "ct_proc.h"

#define WAIT_MS 60000

static ct_config cfg;
static void setup(void) { ct_test_load_config(&cfg); }

Test(kafka_cluster, topics_have_configured_partitions_and_replicas, .init = setup, .timeout = 300) {
    ct_error err = {0};
    rd_kafka_t *rk = ct_kafka_admin_new(&cfg, "ct-test", &err);
    cr_assert_not_null(rk);
    size_t n;
    const ct_topic_spec *t = ct_kafka_topics(&n);
    cr_assert_geq(n, 5);
    for (size_t i = 0; i < n; i++) {
        int parts, replicas, isr;
        cr_assert_eq(ct_kafka_describe_topic(rk, t[i].name, &parts, &replicas, &isr, 10000, &err), 0, "%s", err.msg);
        cr_assert_eq(parts, cfg.kafka_partitions, "%s: %d partitions", t[i].name, parts);
        cr_assert_eq(replicas, cfg.kafka_replication, "%s: %d replicas", t[i].name, replicas);
        cr_assert_geq(isr, cfg.kafka_min_isr, "%s: isr %d", t[i].name, isr);
    }
    int parts, replicas, isr;
    cr_assert_eq(ct_kafka_describe_topic(rk, "no-such-topic-ct", &parts, &replicas, &isr, 10000, &err), 0);
    cr_assert_eq(parts, -1, "a missing topic is reported as missing");
    rd_kafka_destroy(rk);
}

#define CROSS_COUNT 200

/* Child process: produce CROSS_COUNT records keyed by run id, exit 0 when
 * every one was acknowledged. */
static int produce_in_child(const char *run) {
    ct_error err = {0};
    ct_kafka_producer_opts o = {.client_id = "ct-test-child", .linger_ms = 5};
    rd_kafka_t *p = ct_kafka_producer_new(&cfg, &o, &err);
    if (!p) return 3;
    for (int i = 0; i < CROSS_COUNT; i++) {
        char v[32];
        int n = snprintf(v, sizeof v, "%d", i);
        if (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(CT_TOPIC_TEST), RD_KAFKA_V_KEY(run, strlen(run)),
                              RD_KAFKA_V_VALUE(v, (size_t)n), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END))
            return 4;
    }
    int left = rd_kafka_flush(p, WAIT_MS) == 0 ? 0 : rd_kafka_outq_len(p);
    rd_kafka_destroy(p);
    return left == 0 ? 0 : 5;
}

Test(kafka_cluster, records_produced_in_one_process_are_consumed_in_another_in_order, .init = setup, .timeout = 300) {
    char run[32], group[64];
    ct_test_run_id(run, sizeof run);
    snprintf(group, sizeof group, "ct-test-cross-%s", run);
    /* fork() before this process has any librdkafka thread: a child forked
     * from a multithreaded parent can deadlock on a lock held at fork. */
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) _exit(produce_in_child(run));
    rd_kafka_t *c = ct_test_consumer(&cfg, group, 1);
    int next = 0;
    int64_t deadline = ct_clock_mono_ms() + WAIT_MS;
    while (next < CROSS_COUNT && ct_clock_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (!m) continue;
        if (!m->err && m->key_len == strlen(run) && memcmp(m->key, run, m->key_len) == 0) {
            char v[32];
            snprintf(v, sizeof v, "%.*s", (int)m->len, (const char *)m->payload);
            cr_assert_eq(atoi(v), next, "one key, one partition: order kept (got %s, want %d)", v, next);
            next++;
        }
        rd_kafka_message_destroy(m);
    }
    int status = 0;
    if (!ct_proc_wait(child, WAIT_MS, &status)) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
    }
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "producer process failed: %d", status);
    cr_assert_eq(next, CROSS_COUNT, "consumed %d of %d", next, CROSS_COUNT);
    ct_test_consumer_close(c);
}

static rd_kafka_t *txn_producer(const char *run) {
    char tid[64];
    snprintf(tid, sizeof tid, "ct-test-txn-%s", run);
    ct_error err = {0};
    ct_kafka_producer_opts o = {.client_id = "ct-test-txn", .transactional_id = tid, .linger_ms = 5};
    rd_kafka_t *p = ct_kafka_producer_new(&cfg, &o, &err);
    cr_assert_not_null(p, "%s %s", err.msg, err.detail);
    rd_kafka_error_t *e = rd_kafka_init_transactions(p, WAIT_MS);
    cr_assert_null(e, "init_transactions: %s", e ? rd_kafka_error_string(e) : "");
    return p;
}

static void produce_values(rd_kafka_t *p, const char *run, const char *prefix, int n) {
    for (int i = 0; i < n; i++) {
        char v[64];
        int len = snprintf(v, sizeof v, "%s-%d", prefix, i);
        cr_assert_eq(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(CT_TOPIC_TEST), RD_KAFKA_V_KEY(run, strlen(run)),
                                       RD_KAFKA_V_VALUE(v, (size_t)len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_END),
                     0);
    }
}

/* Reads the run's records until `until` is seen; counts values by prefix. */
static void read_run(rd_kafka_t *c, const char *run, const char *until, int *aborted, int *committed) {
    *aborted = *committed = 0;
    int64_t deadline = ct_clock_mono_ms() + WAIT_MS;
    int done = 0;
    while (!done && ct_clock_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (!m) continue;
        if (!m->err && m->key_len == strlen(run) && memcmp(m->key, run, m->key_len) == 0) {
            char v[64];
            snprintf(v, sizeof v, "%.*s", (int)m->len, (const char *)m->payload);
            if (strncmp(v, "aborted-", 8) == 0) (*aborted)++;
            if (strncmp(v, "committed-", 10) == 0) (*committed)++;
            done = strcmp(v, until) == 0;
        }
        rd_kafka_message_destroy(m);
    }
    cr_assert(done, "did not see %s within %d ms", until, WAIT_MS);
}

Test(kafka_cluster, aborted_records_are_invisible_to_read_committed, .init = setup, .timeout = 300) {
    char run[32], group[64];
    ct_test_run_id(run, sizeof run);
    rd_kafka_t *p = txn_producer(run);
    cr_assert_null(rd_kafka_begin_transaction(p));
    produce_values(p, run, "aborted", 5);
    /* Abort purges what is still queued: flush first so the aborted records
     * really are in the log (the read_uncommitted control below checks it). */
    cr_assert_eq(rd_kafka_flush(p, WAIT_MS), 0);
    cr_assert_null(rd_kafka_abort_transaction(p, WAIT_MS));
    cr_assert_null(rd_kafka_begin_transaction(p));
    produce_values(p, run, "committed", 5);
    cr_assert_null(rd_kafka_commit_transaction(p, WAIT_MS));
    rd_kafka_destroy(p);

    int aborted, committed;
    snprintf(group, sizeof group, "ct-test-rc-%s", run);
    rd_kafka_t *c = ct_test_consumer(&cfg, group, 1);
    read_run(c, run, "committed-4", &aborted, &committed);
    ct_test_consumer_close(c);
    cr_assert_eq(aborted, 0, "read_committed saw %d aborted records", aborted);
    cr_assert_eq(committed, 5);

    /* The control: the aborted records are in the log, a read_uncommitted
     * consumer sees them, so the check above can fail. */
    snprintf(group, sizeof group, "ct-test-ru-%s", run);
    c = ct_test_consumer(&cfg, group, 0);
    read_run(c, run, "committed-4", &aborted, &committed);
    ct_test_consumer_close(c);
    cr_assert_eq(aborted, 5, "read_uncommitted saw %d aborted records", aborted);
}

static int64_t committed_offset(rd_kafka_t *c, int32_t partition) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, CT_TOPIC_TEST, partition);
    cr_assert_eq(rd_kafka_committed(c, l, WAIT_MS), 0);
    int64_t off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return off;
}

Test(kafka_cluster, offsets_sent_through_a_transaction_are_visible_to_the_group, .init = setup, .timeout = 300) {
    char run[32], group[64];
    ct_test_run_id(run, sizeof run);
    snprintf(group, sizeof group, "ct-test-txoff-%s", run);
    /* Input: three records of this run. */
    ct_error err = {0};
    ct_kafka_producer_opts po = {.client_id = "ct-test", .linger_ms = 0};
    rd_kafka_t *plain = ct_kafka_producer_new(&cfg, &po, &err);
    cr_assert_not_null(plain);
    produce_values(plain, run, "input", 3);
    cr_assert_eq(rd_kafka_flush(plain, WAIT_MS), 0);
    rd_kafka_destroy(plain);

    rd_kafka_t *c = ct_test_consumer(&cfg, group, 1);
    int32_t partition = -1;
    int64_t last = -1;
    int seen = 0;
    int64_t deadline = ct_clock_mono_ms() + WAIT_MS;
    while (seen < 3 && ct_clock_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (!m) continue;
        if (!m->err && m->key_len == strlen(run) && memcmp(m->key, run, m->key_len) == 0) {
            partition = m->partition;
            last = m->offset;
            seen++;
        }
        rd_kafka_message_destroy(m);
    }
    cr_assert_eq(seen, 3);

    /* Consume-transform-produce: output and input offset in one transaction. */
    rd_kafka_t *p = txn_producer(run);
    rd_kafka_consumer_group_metadata_t *gm = rd_kafka_consumer_group_metadata(c);
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(offs, CT_TOPIC_TEST, partition)->offset = last + 1;
    cr_assert_null(rd_kafka_begin_transaction(p));
    produce_values(p, run, "output", 1);
    rd_kafka_error_t *e = rd_kafka_send_offsets_to_transaction(p, offs, gm, WAIT_MS);
    cr_assert_null(e, "%s", e ? rd_kafka_error_string(e) : "");
    cr_assert_null(rd_kafka_commit_transaction(p, WAIT_MS));
    cr_assert_eq(committed_offset(c, partition), last + 1, "committed through the transaction");

    /* An aborted transaction's offsets never reach the group. */
    offs->elems[0].offset = last + 100;
    cr_assert_null(rd_kafka_begin_transaction(p));
    produce_values(p, run, "output-aborted", 1);
    e = rd_kafka_send_offsets_to_transaction(p, offs, gm, WAIT_MS);
    cr_assert_null(e, "%s", e ? rd_kafka_error_string(e) : "");
    cr_assert_null(rd_kafka_abort_transaction(p, WAIT_MS));
    cr_assert_eq(committed_offset(c, partition), last + 1, "aborted offsets are not committed");

    rd_kafka_topic_partition_list_destroy(offs);
    rd_kafka_consumer_group_metadata_destroy(gm);
    rd_kafka_destroy(p);
    ct_test_consumer_close(c);
}

/* CONCERT_KAFKA_JVM_OPTS reaches java one word per argument, after the
 * heap and before the main class, in place of the default's flags. */
Test(kafka_cluster, the_jvm_options_are_the_brokers_arguments) {
    char opts[] = "CONCERT_KAFKA_JVM_OPTS=  -XX:+UseSerialGC   -Xss512k ", *env[] = {opts, NULL}, *none[] = {NULL};
    ct_config c;
    ct_error err = {0};
    cr_assert_eq(ct_config_load(&c, env, &err), 0, "%s", err.msg);
    char **argv = NULL;
    cr_assert_eq(ct_localkafka_node_argv(&c, 1, &argv, &err), 0, "%s", err.msg);
    int n = 0, gc = -1, ss = -1, heap = -1, main_class = -1;
    for (; argv[n]; n++) {
        if (strcmp(argv[n], "-XX:+UseSerialGC") == 0) gc = n;
        if (strcmp(argv[n], "-Xss512k") == 0) ss = n;
        if (strncmp(argv[n], "-Xmx", 4) == 0) heap = n;
        if (strcmp(argv[n], "kafka.Kafka") == 0) main_class = n;
        cr_assert_neq(argv[n][0], '\0', "an empty argument at %d", n);
        cr_assert_null(strstr(argv[n], "G1"), "the default's collector is still there: %s", argv[n]);
    }
    cr_assert(heap >= 0 && gc == heap + 1 && ss == gc + 1 && main_class > ss, "heap %d gc %d ss %d main %d", heap, gc,
              ss, main_class);
    cr_assert_str_eq(argv[n - 1] + strlen(argv[n - 1]) - strlen("server.properties"), "server.properties");
    ct_localkafka_argv_free(argv);
    cr_assert_eq(ct_config_load(&c, none, &err), 0, "%s", err.msg);
    cr_assert_eq(ct_localkafka_node_argv(&c, 1, &argv, &err), 0, "%s", err.msg);
    bool g1 = false;
    for (char **a = argv; *a; a++) g1 |= strcmp(*a, "-XX:+UseG1GC") == 0;
    cr_assert(g1, "the default is G1 (CT_KAFKA_JVM_OPTS_DEFAULT)");
    ct_localkafka_argv_free(argv);
}

/* The brokers run with the thread counts the configuration sizes them to
 * (CONCERT_KAFKA_NETWORK_THREADS, CONCERT_KAFKA_IO_THREADS) and with every
 * CONCERT_KAFKA_BROKER_CONF_* property, read from their server.properties
 * (scripts/test passes one, Kafka's default value, so the tests' cluster
 * behaves as any other), as each one reports them. */
Test(kafka_cluster, the_brokers_run_the_configured_threads_and_properties, .init = setup, .timeout = 120) {
    if (cfg.kafka_brokers[0]) cr_skip_test("an existing cluster sizes its own threads");
    cr_assert_gt(cfg.broker_conf_count, 0,
                 "scripts/test starts the cluster with a CONCERT_KAFKA_BROKER_CONF_* property");
    ct_error err = {0};
    rd_kafka_t *rk = ct_kafka_admin_new(&cfg, "test-broker-threads", &err);
    cr_assert_not_null(rk, "%s", err.msg);
    for (int node = 1; node <= CT_LOCALKAFKA_NODES; node++) {
        char id[8];
        snprintf(id, sizeof id, "%d", node);
        rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_BROKER, id);
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_DescribeConfigs(rk, &res, 1, NULL, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, WAIT_MS);
        cr_assert_not_null(ev, "broker %d did not describe its configuration", node);
        cr_assert_eq(rd_kafka_event_error(ev), RD_KAFKA_RESP_ERR_NO_ERROR, "%s", rd_kafka_event_error_string(ev));
        size_t nres = 0, nent = 0;
        const rd_kafka_ConfigResource_t **got =
            rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &nres);
        cr_assert_eq(nres, 1);
        const rd_kafka_ConfigEntry_t **ents = rd_kafka_ConfigResource_configs(got[0], &nent);
        int network = -1, io = -1, passed = 0;
        for (size_t i = 0; i < nent; i++) {
            const char *name = rd_kafka_ConfigEntry_name(ents[i]), *value = rd_kafka_ConfigEntry_value(ents[i]);
            if (value && strcmp(name, "num.network.threads") == 0) network = atoi(value);
            if (value && strcmp(name, "num.io.threads") == 0) io = atoi(value);
            for (int k = 0; k < cfg.broker_conf_count; k++) {
                if (strcmp(name, cfg.broker_conf[k].name) != 0) continue;
                cr_expect_str_eq(value ? value : "(none)", cfg.broker_conf[k].value, "broker %d: %s", node, name);
                cr_expect_eq(rd_kafka_ConfigEntry_source(ents[i]), RD_KAFKA_CONFIG_SOURCE_STATIC_BROKER_CONFIG,
                             "broker %d: %s is not from its server.properties (source %s)", node, name,
                             rd_kafka_ConfigSource_name(rd_kafka_ConfigEntry_source(ents[i])));
                passed++;
            }
        }
        cr_expect_eq(network, cfg.kafka_network_threads, "broker %d: num.network.threads %d", node, network);
        cr_expect_eq(io, cfg.kafka_io_threads, "broker %d: num.io.threads %d", node, io);
        cr_expect_eq(passed, cfg.broker_conf_count, "broker %d reports %d of the %d passed properties", node, passed,
                     cfg.broker_conf_count);
        rd_kafka_event_destroy(ev);
        rd_kafka_queue_destroy(q);
        rd_kafka_ConfigResource_destroy(res);
    }
    rd_kafka_destroy(rk);
}
