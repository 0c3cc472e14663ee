/* ct_localkafka: see ct_localkafka.h. */
#include "ct_localkafka.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ct_kafka.h"
#include "ct_log.h"
#include "ct_proc.h"

/* The pom.xml of local/kafka, embedded at build time. */
extern const char ct_localkafka_pom_xml[];

#define MAVEN_TIMEOUT_MS (15 * 60 * 1000) /* first fetch of ~60 jars on a slow link */
#define FORMAT_TIMEOUT_MS (120 * 1000)
#define STOP_GRACE_MS (30 * 1000) /* controlled shutdown moves leadership away */

static void kdir(const ct_config *cfg, const char *rel, char *out, size_t n) {
    char sub[256];
    snprintf(sub, sizeof sub, "kafka/%s", rel);
    ct_config_path(cfg, sub, out, n);
}

static void node_dir(const ct_config *cfg, int node, const char *rel, char *out, size_t n) {
    char sub[256];
    snprintf(sub, sizeof sub, "kafka/node-%d%s%s", node, rel[0] ? "/" : "", rel);
    ct_config_path(cfg, sub, out, n);
}

static void libs_dir(const ct_config *cfg, char *out, size_t n) {
    if (cfg->kafka_libs_dir[0])
        snprintf(out, n, "%s", cfg->kafka_libs_dir);
    else
        kdir(cfg, "libs", out, n);
}

void ct_localkafka_node_log(const ct_config *cfg, int node, char *out, size_t out_bytes) {
    node_dir(cfg, node, "logs/server.log", out, out_bytes);
}

static int fetch_jars(const ct_config *cfg, ct_error *err) {
    char libs[CT_CONFIG_PATH_MAX + 32], marker[CT_CONFIG_PATH_MAX + 64], partial[CT_CONFIG_PATH_MAX + 64];
    char pom[CT_CONFIG_PATH_MAX + 32], log[CT_CONFIG_PATH_MAX + 32], outdir_arg[CT_CONFIG_PATH_MAX + 96];
    libs_dir(cfg, libs, sizeof libs);
    snprintf(marker, sizeof marker, "%s/.complete", libs);
    if (ct_fs_exists(marker)) return 0;
    kdir(cfg, "pom.xml", pom, sizeof pom);
    kdir(cfg, "maven.log", log, sizeof log);
    snprintf(partial, sizeof partial, "%s.partial", libs);
    if (ct_fs_write_file(pom, ct_localkafka_pom_xml, strlen(ct_localkafka_pom_xml), err) != 0) return -1;
    snprintf(outdir_arg, sizeof outdir_arg, "-DoutputDirectory=%s", partial);
    CT_LOG_INFO("kafka", "fetching the Kafka broker's jars with Maven (once) dir=%s log=%s", libs, log);
    const char *argv[] = {
        cfg->maven, "-B", "-q", "-f", pom, "dependency:copy-dependencies", outdir_arg, "-DincludeScope=runtime", NULL};
    ct_proc_opts po = {.argv = argv, .output_path = log, .output_fd = -1, .null_stdin = true};
    if (ct_proc_run(&po, MAVEN_TIMEOUT_MS, err) != 0) {
        ct_error_detail(err, "see %s", log);
        return -1;
    }
    /* Publish the directory only once it is complete. */
    char rm_cmd[CT_CONFIG_PATH_MAX * 2 + 64];
    if (ct_fs_exists(libs)) {
        snprintf(rm_cmd, sizeof rm_cmd, "%s.old", libs);
        if (rename(libs, rm_cmd) != 0) {
            CT_ERR(err, CT_ERR_FATAL, "cannot move aside %s: %s", libs, strerror(errno));
            return -1;
        }
    }
    if (rename(partial, libs) != 0) {
        CT_ERR(err, CT_ERR_FATAL, "cannot publish %s: %s", libs, strerror(errno));
        return -1;
    }
    return ct_fs_write_file(marker, "ok\n", 3, err);
}

static int ensure_cluster_id(const ct_config *cfg, char *id, size_t n, ct_error *err) {
    char path[CT_CONFIG_PATH_MAX + 32];
    kdir(cfg, "cluster.id", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (f) {
        int ok = fscanf(f, "%63s", id) == 1;
        fclose(f);
        if (ok && strlen(id) == 22 && id[0] != '-') return 0;
    }
    /* A Kafka cluster id is a UUID in URL-safe base64 without padding. Like
     * Kafka's own generator, never start with '-': the storage tool's
     * argument parser would take the id for an option. */
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    do {
        unsigned char raw[16];
        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
            CT_ERR(err, CT_ERR_FATAL, "getrandom failed: %s", strerror(errno));
            return -1;
        }
        raw[6] = (raw[6] & 0x0f) | 0x40; /* version 4 */
        raw[8] = (raw[8] & 0x3f) | 0x80;
        size_t o = 0;
        unsigned bits = 0, acc = 0;
        for (size_t i = 0; i < sizeof raw; i++) {
            acc = (acc << 8) | raw[i];
            bits += 8;
            while (bits >= 6) id[o++] = b64[(acc >> (bits -= 6)) & 63];
        }
        if (bits) id[o++] = b64[(acc << (6 - bits)) & 63];
        id[o] = '\0';
    } while (id[0] == '-');
    (void)n;
    char line[64];
    int len = snprintf(line, sizeof line, "%s\n", id);
    return ct_fs_write_file(path, line, (size_t)len, err);
}

int ct_localkafka_node_config(const ct_config *cfg, int node, char *body, size_t body_bytes, ct_error *err) {
    char data[CT_CONFIG_PATH_MAX + 64];
    node_dir(cfg, node, "data", data, sizeof data);
    int b = cfg->kafka_base_port, c = cfg->kafka_base_port + 10;
    int len = snprintf(body, body_bytes,
                       "# Written by `concert kafka` at every start; edit the CONCERT_* settings instead.\n"
                       "process.roles=broker,controller\n"
                       "node.id=%d\n"
                       "controller.quorum.voters=1@127.0.0.1:%d,2@127.0.0.1:%d,3@127.0.0.1:%d\n"
                       "listeners=PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d\n"
                       "advertised.listeners=PLAINTEXT://127.0.0.1:%d\n"
                       "controller.listener.names=CONTROLLER\n"
                       "inter.broker.listener.name=PLAINTEXT\n"
                       "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
                       "log.dirs=%s\n"
                       "num.partitions=%d\n"
                       "default.replication.factor=3\n"
                       "min.insync.replicas=2\n"
                       "auto.create.topics.enable=false\n"
                       "offsets.topic.replication.factor=3\n"
                       "offsets.topic.num.partitions=12\n"
                       "transaction.state.log.replication.factor=3\n"
                       "transaction.state.log.min.isr=2\n"
                       "transaction.state.log.num.partitions=12\n"
                       /* A processor killed inside a transaction blocks its partitions'
         * offsets until the coordinator aborts it: look every 2 s, not 10. */
                       "transaction.abort.timed.out.transaction.cleanup.interval.ms=2000\n"
                       "group.initial.rebalance.delay.ms=0\n"
                       "unclean.leader.election.enable=false\n"
                       "broker.session.timeout.ms=6000\n"
                       "log.retention.hours=168\n"
                       /* Three brokers share one machine: Kafka's 3 network, 8 request
         * handler and 10 background threads each are sized for a machine of
         * its own (docs/decisions.md, the eighth round). */
                       "num.network.threads=%d\n"
                       "num.io.threads=%d\n"
                       "background.threads=2\n",
                       node, c, c + 1, c + 2, b + node - 1, c + node - 1, b + node - 1, data, cfg->kafka_partitions,
                       cfg->kafka_network_threads, cfg->kafka_io_threads);
    /* CONCERT_KAFKA_BROKER_CONF_*: after Kafka's own lines, so they win
     * where both name a property (ct_config refuses the layout's). */
    for (int i = 0; i < cfg->broker_conf_count && len >= 0 && (size_t)len < body_bytes; i++)
        len += snprintf(body + len, body_bytes - (size_t)len, "%s=%s\n", cfg->broker_conf[i].name,
                        cfg->broker_conf[i].value);
    if (len < 0 || (size_t)len >= body_bytes) {
        CT_ERR(err, CT_ERR_PERMANENT, "server.properties of node %d does not fit %zu bytes", node, body_bytes);
        return -1;
    }
    return len;
}

static int write_node_config(const ct_config *cfg, int node, ct_error *err) {
    char path[CT_CONFIG_PATH_MAX + 64], body[CT_LOCALKAFKA_NODE_CONFIG_BYTES];
    node_dir(cfg, node, "server.properties", path, sizeof path);
    int len = ct_localkafka_node_config(cfg, node, body, sizeof body, err);
    return len < 0 ? -1 : ct_fs_write_file(path, body, (size_t)len, err);
}

static void classpath(const ct_config *cfg, char *out, size_t n) {
    char libs[CT_CONFIG_PATH_MAX + 32];
    libs_dir(cfg, libs, sizeof libs);
    snprintf(out, n, "%s/*", libs);
}

static int format_node(const ct_config *cfg, int node, const char *cluster_id, ct_error *err) {
    char meta[CT_CONFIG_PATH_MAX + 64], props[CT_CONFIG_PATH_MAX + 64], log[CT_CONFIG_PATH_MAX + 64];
    char cp[CT_CONFIG_PATH_MAX + 40];
    node_dir(cfg, node, "data/meta.properties", meta, sizeof meta);
    if (ct_fs_exists(meta)) return 0;
    node_dir(cfg, node, "server.properties", props, sizeof props);
    node_dir(cfg, node, "logs/format.log", log, sizeof log);
    classpath(cfg, cp, sizeof cp);
    char id_arg[80];
    snprintf(id_arg, sizeof id_arg, "--cluster-id=%s", cluster_id);
    const char *argv[] = {cfg->java, "-cp", cp,    "kafka.tools.StorageTool", "format",
                          id_arg,    "-c",  props, "--ignore-formatted",      NULL};
    ct_proc_opts po = {.argv = argv, .output_path = log, .output_fd = -1, .null_stdin = true};
    CT_LOG_INFO("kafka", "formatting KRaft storage node=%d", node);
    if (ct_proc_run(&po, FORMAT_TIMEOUT_MS, err) != 0) {
        ct_error_detail(err, "see %s", log);
        return -1;
    }
    return 0;
}

int ct_localkafka_prepare(const ct_config *cfg, ct_error *err) {
    char path[CT_CONFIG_PATH_MAX + 64], cluster_id[64];
    kdir(cfg, "", path, sizeof path);
    if (ct_fs_mkdirs(path, 0755, err) != 0) return -1;
    if (fetch_jars(cfg, err) != 0) return -1;
    if (ensure_cluster_id(cfg, cluster_id, sizeof cluster_id, err) != 0) return -1;
    static const char log4j[] = "log4j.rootLogger=INFO, file\n"
                                "log4j.appender.file=org.apache.log4j.RollingFileAppender\n"
                                "log4j.appender.file.File=${kafka.logs.dir}/server.log\n"
                                "log4j.appender.file.MaxFileSize=20MB\n"
                                "log4j.appender.file.MaxBackupIndex=3\n"
                                "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
                                "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
                                "log4j.logger.org.apache.kafka.clients=WARN\n";
    kdir(cfg, "log4j.properties", path, sizeof path);
    if (ct_fs_write_file(path, log4j, sizeof log4j - 1, err) != 0) return -1;
    for (int node = 1; node <= CT_LOCALKAFKA_NODES; node++) {
        node_dir(cfg, node, "logs", path, sizeof path);
        if (ct_fs_mkdirs(path, 0755, err) != 0) return -1;
        node_dir(cfg, node, "data", path, sizeof path);
        if (ct_fs_mkdirs(path, 0755, err) != 0) return -1;
        if (write_node_config(cfg, node, err) != 0) return -1;
        if (format_node(cfg, node, cluster_id, err) != 0) return -1;
    }
    return 0;
}

int ct_localkafka_node_argv(const ct_config *cfg, int node, char ***argv_out, ct_error *err) {
    char heap_min[32], heap_max[32], logs[CT_CONFIG_PATH_MAX + 96], log4j[CT_CONFIG_PATH_MAX + 96];
    char cp[CT_CONFIG_PATH_MAX + 40], props[CT_CONFIG_PATH_MAX + 64], tmp[CT_CONFIG_PATH_MAX + 64];
    snprintf(heap_min, sizeof heap_min, "-Xms%dm", cfg->kafka_heap_mb);
    snprintf(heap_max, sizeof heap_max, "-Xmx%dm", cfg->kafka_heap_mb);
    node_dir(cfg, node, "logs", tmp, sizeof tmp);
    snprintf(logs, sizeof logs, "-Dkafka.logs.dir=%s", tmp);
    kdir(cfg, "log4j.properties", tmp, sizeof tmp);
    snprintf(log4j, sizeof log4j, "-Dlog4j.configuration=file:%s", tmp);
    classpath(cfg, cp, sizeof cp);
    node_dir(cfg, node, "server.properties", props, sizeof props);
    const char *head[] = {cfg->java, heap_min, heap_max};
    const char *tail[] = {
        "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true", logs, log4j, "-cp", cp, "kafka.Kafka", props};
    size_t nhead = sizeof head / sizeof head[0], ntail = sizeof tail / sizeof tail[0];
    /* CONCERT_KAFKA_JVM_OPTS goes between the heap and the rest, one
     * argument per space-separated word. */
    char opts[sizeof cfg->kafka_jvm_opts];
    snprintf(opts, sizeof opts, "%s", cfg->kafka_jvm_opts);
    size_t nopts = strlen(opts) / 2 + 1; /* at most: each word is a character and a space */
    char **argv = calloc(nhead + nopts + ntail + 1, sizeof *argv);
    if (!argv) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return -1;
    }
    size_t i = 0;
    bool oom = false;
    for (size_t k = 0; k < nhead; k++) oom |= !(argv[i++] = strdup(head[k]));
    for (char *save = NULL, *w = strtok_r(opts, " ", &save); w; w = strtok_r(NULL, " ", &save))
        oom |= !(argv[i++] = strdup(w));
    for (size_t k = 0; k < ntail; k++) oom |= !(argv[i++] = strdup(tail[k]));
    if (oom) {
        for (size_t k = 0; k < i; k++) free(argv[k]);
        free(argv);
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return -1;
    }
    *argv_out = argv;
    return 0;
}

void ct_localkafka_argv_free(char **argv) {
    if (!argv) return;
    for (char **p = argv; *p; p++) free(*p);
    free(argv);
}

pid_t ct_localkafka_node_pid(const ct_config *cfg, int node) {
    char path[CT_CONFIG_PATH_MAX + 64];
    node_dir(cfg, node, "pid", path, sizeof path);
    return ct_proc_read_pidfile(path);
}

int ct_localkafka_running(const ct_config *cfg) {
    int n = 0;
    for (int node = 1; node <= CT_LOCALKAFKA_NODES; node++) n += ct_localkafka_node_pid(cfg, node) > 0;
    return n;
}

static int wait_and_ensure_topics(const ct_config *cfg, ct_error *err) {
    rd_kafka_t *rk = ct_kafka_admin_new(cfg, "concert-localkafka", err);
    if (!rk) return -1;
    int64_t deadline = ct_clock_mono_ms() + cfg->kafka_start_timeout_ms;
    int rc = ct_kafka_wait_brokers(rk, CT_LOCALKAFKA_NODES, cfg->kafka_start_timeout_ms, err);
    /* Brokers can be listed before they are unfenced; creation then fails
     * with a retriable replication-factor error for a moment. */
    while (rc == 0 && (rc = ct_kafka_ensure_topics(rk, cfg, err)) != 0 && err && err->klass == CT_ERR_RETRIABLE &&
           ct_clock_mono_ms() < deadline) {
        struct timespec ts = {0, 500 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    rd_kafka_destroy(rk);
    return rc;
}

int ct_localkafka_start(const ct_config *cfg, ct_error *err) {
    if (ct_localkafka_prepare(cfg, err) != 0) return -1;
    for (int node = 1; node <= CT_LOCALKAFKA_NODES; node++) {
        if (ct_localkafka_node_pid(cfg, node) > 0) continue;
        char **argv = NULL;
        char out[CT_CONFIG_PATH_MAX + 64], pidfile[CT_CONFIG_PATH_MAX + 64];
        if (ct_localkafka_node_argv(cfg, node, &argv, err) != 0) return -1;
        node_dir(cfg, node, "logs/stdout.log", out, sizeof out);
        node_dir(cfg, node, "pid", pidfile, sizeof pidfile);
        ct_proc_opts po = {.argv = (const char *const *)argv,
                           .output_path = out,
                           .output_fd = -1,
                           .new_session = true,
                           .null_stdin = true};
        pid_t pid = ct_proc_spawn(&po, err);
        ct_localkafka_argv_free(argv);
        if (pid < 0) return -1;
        if (ct_proc_write_pidfile(pidfile, pid, err) != 0) return -1;
        CT_LOG_INFO("kafka", "started broker node=%d pid=%d port=%d", node, (int)pid, cfg->kafka_base_port + node - 1);
    }
    if (wait_and_ensure_topics(cfg, err) != 0) {
        for (int node = 1; node <= CT_LOCALKAFKA_NODES; node++) {
            if (ct_localkafka_node_pid(cfg, node) == 0) {
                char log[CT_CONFIG_PATH_MAX + 64];
                ct_localkafka_node_log(cfg, node, log, sizeof log);
                ct_error_detail(err, "broker node %d is not running; see %s", node, log);
            }
        }
        return -1;
    }
    return 0;
}

int ct_localkafka_stop(const ct_config *cfg, ct_error *err) {
    pid_t pids[CT_LOCALKAFKA_NODES + 1] = {0};
    for (int node = 1; node <= CT_LOCALKAFKA_NODES; node++) {
        pids[node] = ct_localkafka_node_pid(cfg, node);
        if (pids[node] > 0) kill(pids[node], SIGTERM);
    }
    int64_t deadline = ct_clock_mono_ms() + STOP_GRACE_MS;
    for (int node = 1; node <= CT_LOCALKAFKA_NODES; node++) {
        if (pids[node] <= 0) continue;
        while (ct_proc_alive(pids[node]) && ct_clock_mono_ms() < deadline) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (ct_proc_alive(pids[node])) {
            CT_LOG_WARN("kafka", "broker did not stop in time, killing node=%d pid=%d", node, (int)pids[node]);
            kill(pids[node], SIGKILL);
        }
        char pidfile[CT_CONFIG_PATH_MAX + 64];
        node_dir(cfg, node, "pid", pidfile, sizeof pidfile);
        unlink(pidfile);
        CT_LOG_INFO("kafka", "stopped broker node=%d", node);
    }
    (void)err;
    return 0;
}
