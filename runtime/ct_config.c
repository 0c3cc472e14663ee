/*
 * ct_config: the settings table. To add a setting: add the field to
 * ct_config, one row here, and (if it relates to another) a check in
 * config_finalize(). `concert help config` and the docs follow from the row.
 */
#include "ct_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

typedef enum { SET_STR, SET_INT, SET_LOGLEVEL } setting_type;

enum { SET_SECRET = 1 };

typedef struct setting {
    const char *name;
    setting_type type;
    size_t offset;
    size_t size; /* SET_STR: capacity of the field */
    long min, max;
    const char *def;
    int flags;
    const char *doc;
} setting;

#define STR(field) SET_STR, offsetof(ct_config, field), sizeof(((ct_config *)0)->field), 0, 0
#define INT(field, lo, hi) SET_INT, offsetof(ct_config, field), sizeof(int), (lo), (hi)

static const setting settings[] = {
    {"CONCERT_DATA_DIR", STR(data_dir), ".concert", 0,
     "Directory for local state: the local Kafka cluster, the local Postgres cluster, processor stores."},
    {"CONCERT_LOG_LEVEL", SET_LOGLEVEL, offsetof(ct_config, log_level), sizeof(int), 0, 0, "info", 0,
     "Minimum log level: debug, info, warn or error."},
    {"CONCERT_TRACE_SAMPLE", INT(trace_sample, 0, 1000000), "0", 0,
     "Log each hop (ingress, relay, processors, projector) of 1 in N commands, picked by command id, with its"
     " wall-clock time in µs: bench/trace_report.py turns the lines into per-hop latencies (0: off)."},
    {"CONCERT_KAFKA_BROKERS", STR(kafka_brokers), "", 0,
     "Bootstrap brokers host:port[,host:port...] of an existing cluster. Empty: run the local 3-broker cluster."},
    {"CONCERT_KAFKA_BASE_PORT", INT(kafka_base_port, 1024, 65000), "19092", 0,
     "Local cluster: broker N (1..3) listens on base+N-1, its controller on base+10+N-1, all on 127.0.0.1."},
    {"CONCERT_KAFKA_HEAP_MB", INT(kafka_heap_mb, 128, 16384), "512", 0,
     "Local cluster: JVM heap of each broker, in MiB."},
    {"CONCERT_KAFKA_JVM_OPTS", STR(kafka_jvm_opts), CT_KAFKA_JVM_OPTS_DEFAULT, 0,
     "Local cluster: each broker's JVM flags besides its heap and log settings, separated by spaces (the"
     " garbage collector, the JIT). docs/decisions.md has the collectors measured on a 2-core machine."},
    {"CONCERT_KAFKA_NETWORK_THREADS", INT(kafka_network_threads, 1, 64), "1", 0,
     "Local cluster: each broker's network threads (num.network.threads; Kafka's default is 3). Three brokers"
     " share the machine: docs/decisions.md has 1 network and 2 I/O threads measured against 3 and 8 on 2 cores."},
    {"CONCERT_KAFKA_IO_THREADS", INT(kafka_io_threads, 1, 256), "2", 0,
     "Local cluster: each broker's request handler threads (num.io.threads; Kafka's default is 8)."},
    {"CONCERT_KAFKA_PARTITIONS", INT(kafka_partitions, 1, 1024), "6", 0,
     "Partitions of each topic the system creates."},
    {"CONCERT_KAFKA_REPLICATION", INT(kafka_replication, 1, 32), "3", 0,
     "Replication factor of each topic the system creates."},
    {"CONCERT_KAFKA_MIN_ISR", INT(kafka_min_isr, 1, 32), "2", 0,
     "min.insync.replicas of each topic the system creates (at most the replication factor)."},
    {"CONCERT_KAFKA_TIMEOUT_MS", INT(kafka_timeout_ms, 100, 600000), "30000", 0,
     "Timeout of Kafka admin and metadata operations, in ms."},
    {"CONCERT_KAFKA_START_TIMEOUT_MS", INT(kafka_start_timeout_ms, 1000, 900000), "120000", 0,
     "Local cluster: how long to wait for all brokers to answer metadata requests, in ms."},
    {"CONCERT_KAFKA_LIBS_DIR", STR(kafka_libs_dir), "", 0,
     "Local cluster: directory of the broker's jars. Empty: <data dir>/kafka/libs (fetched once with Maven)."},
    {"CONCERT_JAVA", STR(java), "java", 0, "Local cluster: the java executable."},
    {"CONCERT_MAVEN", STR(maven), "mvn", 0, "Local cluster: the mvn executable used to fetch the broker's jars."},
    {"CONCERT_PG_URL", STR(pg_url), "", SET_SECRET,
     "libpq connection string or URL of an existing database. Empty: run the local Postgres cluster."},
    {"CONCERT_PG_PORT", INT(pg_port, 1024, 65535), "15432", 0,
     "Local Postgres: TCP port on 127.0.0.1 (its unix socket lives under the data dir)."},
    {"CONCERT_PG_BINDIR", STR(pg_bindir), "", 0,
     "Local Postgres: directory of initdb/pg_ctl/postgres. Empty: newest /usr/lib/postgresql/<v>/bin."},
    {"CONCERT_HTTP_ADDR", STR(http_addr), "127.0.0.1", 0,
     "Ingress: address to listen on, an IPv4 or IPv6 literal (0.0.0.0: every IPv4 interface; ::1; no host names)."},
    {"CONCERT_HTTP_PORT", INT(http_port, 0, 65535), "8080", 0, "Ingress: TCP port to listen on (0: any free port)."},
    {"CONCERT_HTTP_CONNECTIONS_MAX", INT(http_connections_max, 1, 65536), "1024", 0,
     "Ingress: concurrent connections accepted; more are refused at accept."},
    {"CONCERT_HTTP_CONNECTIONS_PER_IP", INT(http_connections_per_ip, 0, 65536), "256", 0,
     "Ingress: concurrent connections from one IP address (0: no limit, e.g. behind a proxy that is the only"
     " client); more are refused at accept."},
    {"CONCERT_HTTP_REQUEST_TIMEOUT_MS", INT(http_request_timeout_ms, 100, 600000), "10000", 0,
     "Ingress: a request's body must arrive within this time of its headers, or the connection is cut"
     " (a client trickling a body holds no slot for long)."},
    {"CONCERT_RATE_USER_WRITES", INT(rate_user_writes, 0, 1000000), "20", 0,
     "Ingress: writes per second one user may make (a token bucket holding two seconds' worth); more are"
     " answered 429 with Retry-After. 0: no limit."},
    {"CONCERT_RATE_IP_WRITES", INT(rate_ip_writes, 0, 1000000), "0", 0,
     "Ingress: writes per second from one IP address, as CONCERT_RATE_USER_WRITES (0: no limit, the default:"
     " behind a proxy every user shares its address)."},
    {"CONCERT_ADMIN_KEY", STR(admin_key), "", SET_SECRET,
     "Bearer key of the admin endpoints (Authorization: Bearer <key>). Empty: admin endpoints are disabled."},
    {"CONCERT_AUTH_KEY", STR(auth_key), "", SET_SECRET,
     "HS256 key (32 to 255 characters) of users' bearer tokens: JWTs whose sub is the user id, exp required."
     " Empty: the key in <CONCERT_DATA_DIR>/auth.key, which `concert up` creates; with neither, the user"
     " endpoints answer 403. `concert auth token USER` prints a token."},
    {"CONCERT_PROCESSOR_APPLIED_IDS_WINDOW", INT(processor_applied_ids_window, 1, 100000000), "1000000", 0,
     "Processors: applied record ids are remembered at least this many input offsets back, and at least"
     " CONCERT_OUTBOX_RETENTION_S (plus an hour) of log time back, so a command the outbox publishes again"
     " is applied once."},
    {"CONCERT_CLOCK_SKEW_MAX_MS", INT(clock_skew_max_ms, 0, 3600000), "2000", 0,
     "Processors: a command's ts may be at most this far ahead of the time the brokers logged it; a later ts"
     " is lowered to that bound and counted, so one host with a fast clock cannot expire holds and tokens"
     " early."},
    {"CONCERT_INGRESS_PG_CONNS", INT(ingress_pg_conns, 1, 64), "1", 0,
     "Ingress: Postgres connections of the group-commit writer (each commits whatever requests are waiting;"
     " outbox writes take turns, so more connections mean smaller batches, not more throughput)."},
    {"CONCERT_INGRESS_QUEUE_MAX", INT(ingress_queue_max, 1, 1000000), "8192", 0,
     "Ingress: commands waiting for a commit; beyond it requests get 429."},
    {"CONCERT_INGRESS_BATCH_MAX", INT(ingress_batch_max, 1, 10000), "512", 0,
     "Ingress: most commands committed in one Postgres transaction."},
    {"CONCERT_INGRESS_READ_CONNS", INT(ingress_read_conns, 1, 64), "2", 0,
     "Ingress: Postgres connections answering GET requests and outcome checks (apart from the writer, so reads"
     " never wait behind a group commit)."},
    {"CONCERT_INGRESS_WAITERS_MAX", INT(ingress_waiters_max, 0, 1000000), "10000", 0,
     "Ingress: requests held open by Prefer: wait at once; beyond it writes answer 202 at once."},
    {"CONCERT_OUTBOX_MAX_ATTEMPTS", INT(outbox_max_attempts, 1, 1000), "10", 0,
     "Relay: publish attempts of an outbox row before it becomes FAILED (and a Slack alert)."},
    {"CONCERT_OUTBOX_RETENTION_S", INT(outbox_retention_s, 0, 315360000), "604800", 0,
     "Relay: SENT outbox rows (and the Idempotency-Keys naming them) are deleted this long after they were"
     " sent, in s (default 7 days, the local topics' retention; 0: kept forever). PENDING and FAILED rows stay."},
    {"CONCERT_PROJECTOR_RETENTION_S", INT(projector_retention_s, 0, 315360000), "1209600", 0,
     "Projector: applied event ids, command outcomes and Slack notifications (delivered, or undelivered and"
     " untried) are deleted this long after they were written or due, in s (default 14 days, twice the local topics' retention: an event id must"
     " outlive every copy of the event in Kafka; 0: kept forever). At least CONCERT_OUTBOX_RETENTION_S."},
    {"CONCERT_RELAY_BATCH_MAX", INT(relay_batch_max, 1, 100000), "2000", 0,
     "Relay: most outbox rows claimed and published per round."},
    {"CONCERT_RELAY_LINGER_MS", INT(relay_linger_ms, 0, 1000), "0", 0,
     "Relay: when rounds average at least 16 rows, after one that did not fill CONCERT_RELAY_BATCH_MAX, wait"
     " this long for more rows before the next (fewer, larger produce requests; smaller rounds go on at"
     " once), in ms. 0 (the default): no wait, since the processors' window already batches downstream."},
    {"CONCERT_RELAY_POLL_MS", INT(relay_poll_ms, 10, 60000), "1000", 0,
     "Relay: polling interval when no NOTIFY arrives (also the standby's leadership retry), in ms."},
    {"CONCERT_RELAY_PUBLISH_TIMEOUT_MS", INT(relay_publish_timeout_ms, 1000, 600000), "30000", 0,
     "Relay: how long one publish attempt may take before it counts as failed (message.timeout.ms), in ms."},
    {"CONCERT_RELAY_BACKOFF_BASE_MS", INT(relay_backoff_base_ms, 1, 600000), "500", 0,
     "Relay: first retry delay of a failed row; doubles per attempt, with jitter, in ms."},
    {"CONCERT_RELAY_BACKOFF_MAX_MS", INT(relay_backoff_max_ms, 1, 3600000), "60000", 0,
     "Relay: ceiling of the retry delay, in ms (at least CONCERT_RELAY_BACKOFF_BASE_MS)."},
    {"CONCERT_TICK_MS", INT(tick_ms, 10, 3600000), "1000", 0,
     "Relay leader: interval of the Tick record sent to every partition of concert.commands, in ms."},
    {"CONCERT_PROCESSOR_BATCH_MAX", INT(processor_batch_max, 1, 100000), "5000", 0,
     "Processors: most records per Kafka transaction (a commit costs tens of ms: bigger transactions, more"
     " records/s)."},
    {"CONCERT_PROCESSOR_BATCH_MS", INT(processor_batch_ms, 1, 60000), "40", 0,
     "Processors: longest wait to fill a transaction before committing what there is, in ms."},
    {"CONCERT_PROJECTOR_GROUP", STR(projector_group), "concert-projector", 0,
     "Projector: Kafka consumer group (letters, digits, '.', '_', '-'). Its positions live in Postgres"
     " (projector_offsets), not in Kafka: a new group on a fresh database rebuilds the read models."},
    {"CONCERT_PROJECTOR_BATCH_MAX", INT(projector_batch_max, 1, 100000), "2000", 0,
     "Projector: most events applied in one Postgres transaction."},
    {"CONCERT_PROJECTOR_BATCH_MS", INT(projector_batch_ms, 1, 60000), "1", 0,
     "Projector: when batches average at least 64 events, longest wait to fill the next transaction before"
     " applying what there is (smaller batches take what has arrived and go), in ms."},
    {"CONCERT_SLACK_WEBHOOK_URL", STR(slack_webhook_url), "", SET_SECRET,
     "Slack incoming-webhook URL (http:// or https://) the projector posts notifications to. Empty: notifications"
     " are kept unsent in slack_notifications for CONCERT_PROJECTOR_RETENTION_S."},
    {"CONCERT_SLACK_POLL_MS", INT(slack_poll_ms, 10, 60000), "1000", 0,
     "Slack sender: interval between looks for due notifications, in ms."},
    {"CONCERT_SLACK_BACKOFF_BASE_MS", INT(slack_backoff_base_ms, 1, 600000), "1000", 0,
     "Slack sender: first retry delay of an undelivered notification; doubles per attempt, with jitter, in ms."},
    {"CONCERT_SLACK_BACKOFF_MAX_MS", INT(slack_backoff_max_ms, 1, 3600000), "300000", 0,
     "Slack sender: ceiling of the retry delay, in ms (at least CONCERT_SLACK_BACKOFF_BASE_MS)."},
    {"CONCERT_UP_READY_TIMEOUT_MS", INT(up_ready_timeout_ms, 1000, 900000), "180000", 0,
     "concert up: how long to wait for everything to be ready before giving up, in ms."},
    {"CONCERT_UP_RESTART_BACKOFF_MAX_MS", INT(up_restart_backoff_max_ms, 100, 600000), "30000", 0,
     "concert up: ceiling of the exponential restart backoff of a crashed component, in ms."},
};
#define SETTINGS_COUNT (sizeof settings / sizeof settings[0])
#define PASSTHROUGH_PREFIX "CONCERT_KAFKA_CONF_"
#define BROKER_PASSTHROUGH_PREFIX "CONCERT_KAFKA_BROKER_CONF_"

/* What the local cluster's server.properties says itself: its layout
 * (roles, ids, listeners, directories) and what CONCERT_KAFKA_* settings
 * size. A later line would win over these, so none may be passed. */
static const char *const broker_owned[] = {"process.roles",
                                           "node.id",
                                           "controller.quorum.voters",
                                           "listeners",
                                           "advertised.listeners",
                                           "controller.listener.names",
                                           "inter.broker.listener.name",
                                           "listener.security.protocol.map",
                                           "log.dirs",
                                           "num.partitions",
                                           "default.replication.factor",
                                           "min.insync.replicas",
                                           "offsets.topic.replication.factor",
                                           "transaction.state.log.replication.factor",
                                           "transaction.state.log.min.isr",
                                           "num.network.threads",
                                           "num.io.threads"};

static int set_value(ct_config *cfg, const setting *s, const char *value, ct_error *err) {
    char *field = (char *)cfg + s->offset;
    switch (s->type) {
    case SET_STR: {
        size_t len = strlen(value);
        if (len >= s->size) {
            CT_ERR(err, CT_ERR_PERMANENT, "%s: value is too long (%zu bytes, at most %zu)", s->name, len, s->size - 1);
            return -1;
        }
        for (size_t i = 0; i < len; i++) {
            if (iscntrl((unsigned char)value[i])) {
                CT_ERR(err, CT_ERR_PERMANENT, "%s: value contains a control character", s->name);
                return -1;
            }
        }
        memcpy(field, value, len + 1);
        return 0;
    }
    case SET_INT: {
        char *end = NULL;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (value[0] == '\0' || isspace((unsigned char)value[0]) || *end != '\0' || errno == ERANGE) {
            CT_ERR(err, CT_ERR_PERMANENT, "%s: '%s' is not an integer", s->name, value);
            return -1;
        }
        if (v < s->min || v > s->max) {
            CT_ERR(err, CT_ERR_PERMANENT, "%s: %ld is out of range [%ld, %ld]", s->name, v, s->min, s->max);
            return -1;
        }
        *(int *)field = (int)v;
        return 0;
    }
    case SET_LOGLEVEL: {
        ct_log_level lvl;
        if (ct_log_level_parse(value, &lvl) != 0) {
            CT_ERR(err, CT_ERR_PERMANENT, "%s: '%s' is not one of debug, info, warn, error", s->name, value);
            return -1;
        }
        *(ct_log_level *)field = lvl;
        return 0;
    }
    }
    return -1;
}

static const setting *find_setting(const char *name, size_t name_len) {
    for (size_t i = 0; i < SETTINGS_COUNT; i++)
        if (strlen(settings[i].name) == name_len && memcmp(settings[i].name, name, name_len) == 0) return &settings[i];
    return NULL;
}

/* The next free entry of a pass-through list, with its name (VAR's
 * suffix lower-cased, each '_' read as '.') and value filled in; the
 * caller counts it once it has checked them. NULL when it does not fit. */
static ct_config_kv *next_kv(ct_config_kv *list, int count, const char *what, const char *var, const char *suffix,
                             const char *value, ct_error *err) {
    if (count >= CT_CONFIG_PASSTHROUGH_MAX) {
        CT_ERR(err, CT_ERR_PERMANENT, "%s: more than %d %s pass-through properties", var, CT_CONFIG_PASSTHROUGH_MAX,
               what);
        return NULL;
    }
    ct_config_kv *kv = &list[count];
    size_t n = strlen(suffix);
    if (n == 0 || n >= sizeof kv->name || strlen(value) >= sizeof kv->value) {
        CT_ERR(err, CT_ERR_PERMANENT, "%s: property name or value is empty or too long", var);
        return NULL;
    }
    for (size_t i = 0; i <= n; i++) kv->name[i] = suffix[i] == '_' ? '.' : (char)tolower((unsigned char)suffix[i]);
    snprintf(kv->value, sizeof kv->value, "%s", value);
    kv->secret = ct_log_secret_name(kv->name, n);
    return kv;
}

/* A broker property for the local cluster: the name is [a-z0-9.], the
 * value one line (it is written into server.properties as it is). */
static int add_broker_passthrough(ct_config *cfg, const char *var, const char *suffix, const char *value,
                                  ct_error *err) {
    ct_config_kv *kv = next_kv(cfg->broker_conf, cfg->broker_conf_count, "broker", var, suffix, value, err);
    if (!kv) return -1;
    size_t n = strlen(kv->name);
    bool ok = kv->name[0] != '.' && kv->name[n - 1] != '.';
    for (size_t i = 0; ok && i < n; i++)
        ok = (kv->name[i] >= 'a' && kv->name[i] <= 'z') || isdigit((unsigned char)kv->name[i]) || kv->name[i] == '.';
    if (!ok) {
        CT_ERR(err, CT_ERR_PERMANENT, "%s: '%s' is not a broker property name", var, kv->name);
        return -1;
    }
    for (size_t i = 0; i < sizeof broker_owned / sizeof broker_owned[0]; i++) {
        if (strcmp(kv->name, broker_owned[i]) == 0) {
            CT_ERR(err, CT_ERR_PERMANENT,
                   "%s: %s is written by `concert kafka` itself (the cluster's layout, or a CONCERT_KAFKA_* setting)",
                   var, kv->name);
            return -1;
        }
    }
    for (const char *c = value; *c; c++) {
        if (iscntrl((unsigned char)*c)) {
            CT_ERR(err, CT_ERR_PERMANENT, "%s: value contains a control character", var);
            return -1;
        }
    }
    cfg->broker_conf_count++;
    return 0;
}

static int add_passthrough(ct_config *cfg, const char *var, const char *suffix, const char *value, ct_error *err) {
    ct_config_kv *kv = next_kv(cfg->kafka_conf, cfg->kafka_conf_count, "Kafka", var, suffix, value, err);
    if (!kv) return -1;
    /* Validate against librdkafka now, so a typo is a startup error. */
    char errstr[256];
    rd_kafka_conf_t *probe = rd_kafka_conf_new();
    rd_kafka_conf_res_t res = rd_kafka_conf_set(probe, kv->name, kv->value, errstr, sizeof errstr);
    rd_kafka_conf_destroy(probe);
    if (res != RD_KAFKA_CONF_OK) {
        CT_ERR(err, CT_ERR_PERMANENT, "%s: librdkafka rejects %s: %s", var, kv->name, errstr);
        return -1;
    }
    cfg->kafka_conf_count++;
    return 0;
}

static int validate_brokers(const char *list, ct_error *err) {
    if (list[0] == '\0') return 0;
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *colon = memrchr(p, ':', len);
        if (len == 0 || !colon || colon == p || colon == p + len - 1) {
            CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_KAFKA_BROKERS: '%.*s' is not host:port", (int)len, p);
            return -1;
        }
        long port = 0;
        for (const char *d = colon + 1; d < p + len; d++) {
            if (!isdigit((unsigned char)*d) || (port = port * 10 + (*d - '0')) > 65535) {
                CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_KAFKA_BROKERS: '%.*s' has an invalid port", (int)len, p);
                return -1;
            }
        }
        if (port == 0) {
            CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_KAFKA_BROKERS: '%.*s' has an invalid port", (int)len, p);
            return -1;
        }
        p += len;
        if (*p == ',') p++;
    }
    return 0;
}

int ct_config_listen_addr(const char *addr, int port, struct sockaddr_storage *out, socklen_t *out_len) {
    memset(out, 0, sizeof *out);
    if (port < 0 || port > 65535) return -1;
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *out_len = sizeof *v4;
        return 0;
    }
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *out_len = sizeof *v6;
        return 0;
    }
    return -1;
}

static int config_finalize(ct_config *cfg, ct_error *err) {
    struct sockaddr_storage listen;
    socklen_t listen_len;
    if (ct_config_listen_addr(cfg->http_addr, cfg->http_port, &listen, &listen_len) != 0) {
        CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_HTTP_ADDR: '%s' is not an IPv4 or IPv6 address literal", cfg->http_addr);
        return -1;
    }
    /* Each word goes to java as an argument of its own, before the main
     * class: anything but a flag would be taken for the class to run. */
    for (const char *w = cfg->kafka_jvm_opts; *w;) {
        while (*w == ' ') w++;
        if (!*w) break;
        int len = (int)strcspn(w, " ");
        if (w[0] != '-') {
            CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_KAFKA_JVM_OPTS: '%.*s' is not a JVM flag (flags start with -)",
                   len > 64 ? 64 : len, w);
            return -1;
        }
        w += len;
    }
    if (cfg->kafka_min_isr > cfg->kafka_replication) {
        CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_KAFKA_MIN_ISR: %d exceeds CONCERT_KAFKA_REPLICATION (%d)",
               cfg->kafka_min_isr, cfg->kafka_replication);
        return -1;
    }
    if (cfg->kafka_brokers[0] == '\0' && cfg->kafka_replication > 3) {
        CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_KAFKA_REPLICATION: %d exceeds the 3 brokers of the local cluster",
               cfg->kafka_replication);
        return -1;
    }
    /* A command's status comes from the outbox until its outcome exists:
     * an outcome deleted before its outbox row would read PUBLISHED again. */
    if (cfg->projector_retention_s != 0 &&
        (cfg->outbox_retention_s == 0 || cfg->projector_retention_s < cfg->outbox_retention_s)) {
        CT_ERR(err, CT_ERR_PERMANENT,
               "CONCERT_PROJECTOR_RETENTION_S: %d is below CONCERT_OUTBOX_RETENTION_S (%d, 0 meaning forever):"
               " a command's outcome must outlive its outbox row",
               cfg->projector_retention_s, cfg->outbox_retention_s);
        return -1;
    }
    if (cfg->auth_key[0] != '\0' && strlen(cfg->auth_key) < 32) {
        CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_AUTH_KEY: must be at least 32 characters (an HS256 key of 256 bits)");
        return -1;
    }
    if (cfg->relay_backoff_base_ms > cfg->relay_backoff_max_ms) {
        CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_RELAY_BACKOFF_MAX_MS: %d is below CONCERT_RELAY_BACKOFF_BASE_MS (%d)",
               cfg->relay_backoff_max_ms, cfg->relay_backoff_base_ms);
        return -1;
    }
    if (cfg->projector_group[0] == '\0' ||
        strspn(cfg->projector_group, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
            strlen(cfg->projector_group)) {
        CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_PROJECTOR_GROUP: must be letters, digits, '.', '_' or '-'");
        return -1;
    }
    if (cfg->slack_backoff_base_ms > cfg->slack_backoff_max_ms) {
        CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_SLACK_BACKOFF_MAX_MS: %d is below CONCERT_SLACK_BACKOFF_BASE_MS (%d)",
               cfg->slack_backoff_max_ms, cfg->slack_backoff_base_ms);
        return -1;
    }
    if (cfg->slack_webhook_url[0] != '\0' && strncmp(cfg->slack_webhook_url, "https://", 8) != 0 &&
        strncmp(cfg->slack_webhook_url, "http://", 7) != 0) {
        CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_SLACK_WEBHOOK_URL: must start with https:// or http://");
        return -1;
    }
    if (validate_brokers(cfg->kafka_brokers, err) != 0) return -1;
    if (cfg->pg_url[0] != '\0') {
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(cfg->pg_url, &perr);
        if (!opts) {
            CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_PG_URL: not a valid connection string");
            if (perr) ct_error_detail(err, "%s", perr);
            PQfreemem(perr);
            return -1;
        }
        PQconninfoFree(opts);
    }
    if (cfg->data_dir[0] == '\0') {
        CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_DATA_DIR: must not be empty");
        return -1;
    }
    if (cfg->data_dir[0] != '/') {
        char cwd[CT_CONFIG_PATH_MAX];
        char abs[CT_CONFIG_PATH_MAX * 2];
        if (!getcwd(cwd, sizeof cwd)) {
            CT_ERR(err, CT_ERR_FATAL, "CONCERT_DATA_DIR: cannot resolve relative path: %s", strerror(errno));
            return -1;
        }
        int n = snprintf(abs, sizeof abs, "%s/%s", cwd, cfg->data_dir);
        if (n < 0 || (size_t)n >= sizeof cfg->data_dir) {
            CT_ERR(err, CT_ERR_PERMANENT, "CONCERT_DATA_DIR: absolute path is too long");
            return -1;
        }
        memcpy(cfg->data_dir, abs, (size_t)n + 1);
    }
    size_t dl = strlen(cfg->data_dir);
    while (dl > 1 && cfg->data_dir[dl - 1] == '/') cfg->data_dir[--dl] = '\0';
    return 0;
}

int ct_config_load(ct_config *cfg, char *const *env, ct_error *err) {
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < SETTINGS_COUNT; i++)
        if (set_value(cfg, &settings[i], settings[i].def, err) != 0) return -1; /* a bad default is a bug */
    for (char *const *e = env; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || strncmp(*e, "CONCERT_", 8) != 0) continue;
        size_t name_len = (size_t)(eq - *e);
        const char *value = eq + 1;
        bool client = strncmp(*e, PASSTHROUGH_PREFIX, strlen(PASSTHROUGH_PREFIX)) == 0;
        if (client || strncmp(*e, BROKER_PASSTHROUGH_PREFIX, strlen(BROKER_PASSTHROUGH_PREFIX)) == 0) {
            char var[160];
            snprintf(var, sizeof var, "%.*s", (int)name_len, *e);
            const char *suffix = var + strlen(client ? PASSTHROUGH_PREFIX : BROKER_PASSTHROUGH_PREFIX);
            if ((client ? add_passthrough : add_broker_passthrough)(cfg, var, suffix, value, err) != 0) return -1;
            continue;
        }
        const setting *s = find_setting(*e, name_len);
        if (!s) continue; /* other CONCERT_* variables belong to scripts and tests */
        if (set_value(cfg, s, value, err) != 0) return -1;
    }
    return config_finalize(cfg, err);
}

int ct_config_load_env(ct_config *cfg, ct_error *err) { return ct_config_load(cfg, environ, err); }

void ct_config_print_help(FILE *out) {
    fprintf(out, "Configuration (environment variables):\n\n");
    for (size_t i = 0; i < SETTINGS_COUNT; i++) {
        const setting *s = &settings[i];
        fprintf(out, "  %-34s default: %s%s\n", s->name, s->def[0] ? s->def : "(empty)",
                s->flags & SET_SECRET ? "  [secret: never logged]" : "");
        if (s->type == SET_INT) fprintf(out, "  %-34s range: %ld..%ld\n", "", s->min, s->max);
        fprintf(out, "      %s\n", s->doc);
    }
    fprintf(out, "  %-34s\n      %s\n", PASSTHROUGH_PREFIX "<NAME>",
            "Any librdkafka property, NAME upper-cased with '.' as '_' (e.g. CONCERT_KAFKA_CONF_SECURITY_PROTOCOL). "
            "Properties named like password/secret/key/token are never logged.");
    fprintf(out, "  %-34s\n      %s\n", BROKER_PASSTHROUGH_PREFIX "<NAME>",
            "Any Kafka broker property for the local cluster's server.properties, NAME upper-cased with '.' as '_' "
            "(e.g. CONCERT_KAFKA_BROKER_CONF_REPLICA_FETCH_WAIT_MAX_MS); not the cluster's layout or what a "
            "CONCERT_KAFKA_* setting sizes. Unused with CONCERT_KAFKA_BROKERS, like the heap and thread settings.");
}

static void log_passthrough(const char *what, const ct_config_kv *list, int n) {
    for (int i = 0; i < n; i++)
        CT_LOG_DEBUG("config", "%s.%s=%s", what, list[i].name, list[i].secret ? "***" : list[i].value);
}

void ct_config_log_effective(const ct_config *cfg) {
    char line[1536];
    for (size_t i = 0; i < SETTINGS_COUNT; i++) {
        const setting *s = &settings[i];
        const char *field = (const char *)cfg + s->offset;
        switch (s->type) {
        case SET_STR:
            if (s->flags & SET_SECRET)
                ct_log_redact_secret(field, line, sizeof line);
            else
                snprintf(line, sizeof line, "%s", field);
            break;
        case SET_INT: snprintf(line, sizeof line, "%d", *(const int *)field); break;
        case SET_LOGLEVEL: snprintf(line, sizeof line, "%s", ct_log_level_name(*(const ct_log_level *)field)); break;
        }
        CT_LOG_DEBUG("config", "%s=%s", s->name, line);
    }
    log_passthrough("kafka", cfg->kafka_conf, cfg->kafka_conf_count);
    log_passthrough("broker", cfg->broker_conf, cfg->broker_conf_count);
}

const char *ct_config_path(const ct_config *cfg, const char *relative, char *out, size_t out_bytes) {
    snprintf(out, out_bytes, "%s/%s", cfg->data_dir, relative);
    return out;
}
