/* Configuration: defaults, overrides, and every invalid value rejected with
 * a message that names the variable. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ct_config.h"
#include "ct_log.h"

static int load(ct_config *cfg, ct_error *err, const char *a, const char *b) {
    char *env[3] = {(char *)a, (char *)b, NULL};
    if (!a) env[0] = NULL;
    return ct_config_load(cfg, env, err);
}

Test(config, defaults_apply_when_nothing_is_set) {
    ct_config cfg;
    ct_error err = {0};
    cr_assert_eq(load(&cfg, &err, NULL, NULL), 0, "%s", err.msg);
    cr_assert_eq(cfg.data_dir[0], '/', "data dir is made absolute");
    cr_assert(strstr(cfg.data_dir, "/.concert") != NULL);
    cr_assert_str_empty(cfg.kafka_brokers);
    cr_assert_str_empty(cfg.pg_url);
    cr_assert_eq(cfg.kafka_base_port, 19092);
    cr_assert_eq(cfg.kafka_partitions, 6);
    cr_assert_eq(cfg.kafka_replication, 3);
    cr_assert_eq(cfg.kafka_min_isr, 2);
    cr_assert_eq(cfg.kafka_heap_mb, 512);
    cr_assert_eq(cfg.kafka_network_threads, 1);
    cr_assert_eq(cfg.kafka_io_threads, 2);
    cr_assert_eq(cfg.pg_port, 15432);
    cr_assert_eq(cfg.http_port, 8080);
    cr_assert_str_eq(cfg.http_addr, "127.0.0.1");
    cr_assert_eq(cfg.log_level, CT_LOG_INFO);
    cr_assert_eq(cfg.kafka_conf_count, 0);
    cr_assert_str_empty(cfg.admin_key, "admin endpoints off unless a key is set");
    cr_assert_eq(cfg.outbox_max_attempts, 10);
    cr_assert_eq(cfg.tick_ms, 1000);
    cr_assert_eq(cfg.ingress_read_conns, 2);
    cr_assert_eq(cfg.ingress_waiters_max, 10000);
    cr_assert_str_empty(cfg.slack_webhook_url, "without a URL notifications stay unsent");
    cr_assert_eq(cfg.projector_batch_max, 2000);
    cr_assert_eq(cfg.processor_batch_max, 5000);
}

Test(config, overrides_replace_defaults) {
    char *env[] = {"CONCERT_DATA_DIR=/var/lib/concert/",
                   "CONCERT_KAFKA_BROKERS=k1:9092,k2:9094",
                   "CONCERT_PG_URL=postgresql://u:p@db:5432/c",
                   "CONCERT_KAFKA_PARTITIONS=12",
                   "CONCERT_KAFKA_REPLICATION=5",
                   "CONCERT_KAFKA_MIN_ISR=3",
                   "CONCERT_LOG_LEVEL=DEBUG",
                   "CONCERT_HTTP_PORT=0",
                   "PATH=/bin",
                   "CONCERT_SOMETHING_ELSE=ignored",
                   NULL};
    ct_config cfg;
    ct_error err = {0};
    cr_assert_eq(ct_config_load(&cfg, env, &err), 0, "%s", err.msg);
    cr_assert_str_eq(cfg.data_dir, "/var/lib/concert", "trailing slash trimmed");
    cr_assert_str_eq(cfg.kafka_brokers, "k1:9092,k2:9094");
    cr_assert_str_eq(cfg.pg_url, "postgresql://u:p@db:5432/c");
    cr_assert_eq(cfg.kafka_partitions, 12);
    cr_assert_eq(cfg.kafka_replication, 5, "an external cluster may have more than 3 brokers");
    cr_assert_eq(cfg.kafka_min_isr, 3);
    cr_assert_eq(cfg.log_level, CT_LOG_DEBUG);
    cr_assert_eq(cfg.http_port, 0);
}

Test(config, kafka_properties_pass_through) {
    ct_config cfg;
    ct_error err = {0};
    cr_assert_eq(load(&cfg, &err, "CONCERT_KAFKA_CONF_SOCKET_TIMEOUT_MS=5000", "CONCERT_KAFKA_CONF_SASL_PASSWORD=pw"),
                 0, "%s", err.msg);
    cr_assert_eq(cfg.kafka_conf_count, 2);
    cr_assert_str_eq(cfg.kafka_conf[0].name, "socket.timeout.ms");
    cr_assert_str_eq(cfg.kafka_conf[0].value, "5000");
    cr_assert_eq(cfg.kafka_conf[0].secret, 0);
    cr_assert_str_eq(cfg.kafka_conf[1].name, "sasl.password");
    cr_assert_eq(cfg.kafka_conf[1].secret, 1, "passwords are never logged");
}

Test(config, broker_properties_pass_through) {
    ct_config cfg;
    ct_error err = {0};
    cr_assert_eq(load(&cfg, &err, "CONCERT_KAFKA_BROKER_CONF_REPLICA_FETCH_WAIT_MAX_MS=5",
                      "CONCERT_KAFKA_BROKER_CONF_SSL_KEYSTORE_PASSWORD=pw"),
                 0, "%s", err.msg);
    cr_assert_eq(cfg.kafka_conf_count, 0, "not a client property");
    cr_assert_eq(cfg.broker_conf_count, 2);
    cr_assert_str_eq(cfg.broker_conf[0].name, "replica.fetch.wait.max.ms");
    cr_assert_str_eq(cfg.broker_conf[0].value, "5");
    cr_assert_eq(cfg.broker_conf[0].secret, 0);
    cr_assert_str_eq(cfg.broker_conf[1].name, "ssl.keystore.password");
    cr_assert_eq(cfg.broker_conf[1].secret, 1, "passwords are never logged");
}

typedef struct bad_case {
    const char *a, *b;
    const char *var;     /* the message must name it */
    const char *problem; /* and say what is wrong */
} bad_case;

static const bad_case bad_cases[] = {
    {"CONCERT_KAFKA_BASE_PORT=abc", NULL, "CONCERT_KAFKA_BASE_PORT", "not an integer"},
    {"CONCERT_KAFKA_BASE_PORT=", NULL, "CONCERT_KAFKA_BASE_PORT", "not an integer"},
    {"CONCERT_KAFKA_BASE_PORT=12x", NULL, "CONCERT_KAFKA_BASE_PORT", "not an integer"},
    {"CONCERT_KAFKA_BASE_PORT= 19092", NULL, "CONCERT_KAFKA_BASE_PORT", "not an integer"},
    {"CONCERT_KAFKA_BASE_PORT=99999999999999999999", NULL, "CONCERT_KAFKA_BASE_PORT", "not an integer"},
    {"CONCERT_KAFKA_BASE_PORT=80", NULL, "CONCERT_KAFKA_BASE_PORT", "out of range"},
    {"CONCERT_KAFKA_HEAP_MB=64", NULL, "CONCERT_KAFKA_HEAP_MB", "out of range"},
    {"CONCERT_KAFKA_JVM_OPTS=-XX:+UseSerialGC kafka.Kafka", NULL, "CONCERT_KAFKA_JVM_OPTS", "not a JVM flag"},
    {"CONCERT_KAFKA_NETWORK_THREADS=0", NULL, "CONCERT_KAFKA_NETWORK_THREADS", "out of range"},
    {"CONCERT_KAFKA_IO_THREADS=257", NULL, "CONCERT_KAFKA_IO_THREADS", "out of range"},
    {"CONCERT_KAFKA_PARTITIONS=0", NULL, "CONCERT_KAFKA_PARTITIONS", "out of range"},
    {"CONCERT_KAFKA_REPLICATION=0", NULL, "CONCERT_KAFKA_REPLICATION", "out of range"},
    {"CONCERT_KAFKA_REPLICATION=4", NULL, "CONCERT_KAFKA_REPLICATION", "3 brokers of the local cluster"},
    {"CONCERT_KAFKA_MIN_ISR=3", "CONCERT_KAFKA_REPLICATION=2", "CONCERT_KAFKA_MIN_ISR", "exceeds"},
    {"CONCERT_KAFKA_TIMEOUT_MS=-5", NULL, "CONCERT_KAFKA_TIMEOUT_MS", "out of range"},
    {"CONCERT_PG_PORT=70000", NULL, "CONCERT_PG_PORT", "out of range"},
    {"CONCERT_HTTP_PORT=65536", NULL, "CONCERT_HTTP_PORT", "out of range"},
    {"CONCERT_HTTP_CONNECTIONS_MAX=0", NULL, "CONCERT_HTTP_CONNECTIONS_MAX", "out of range"},
    {"CONCERT_HTTP_CONNECTIONS_PER_IP=-1", NULL, "CONCERT_HTTP_CONNECTIONS_PER_IP", "out of range"},
    {"CONCERT_HTTP_REQUEST_TIMEOUT_MS=50", NULL, "CONCERT_HTTP_REQUEST_TIMEOUT_MS", "out of range"},
    {"CONCERT_RATE_USER_WRITES=ten", NULL, "CONCERT_RATE_USER_WRITES", "not an integer"},
    {"CONCERT_RATE_IP_WRITES=-5", NULL, "CONCERT_RATE_IP_WRITES", "out of range"},
    {"CONCERT_CLOCK_SKEW_MAX_MS=3600001", NULL, "CONCERT_CLOCK_SKEW_MAX_MS", "out of range"},
    {"CONCERT_PROCESSOR_APPLIED_IDS_WINDOW=0", NULL, "CONCERT_PROCESSOR_APPLIED_IDS_WINDOW", "out of range"},
    {"CONCERT_UP_READY_TIMEOUT_MS=10", NULL, "CONCERT_UP_READY_TIMEOUT_MS", "out of range"},
    {"CONCERT_RELAY_BACKOFF_BASE_MS=5000", "CONCERT_RELAY_BACKOFF_MAX_MS=1000", "CONCERT_RELAY_BACKOFF_MAX_MS",
     "below"},
    {"CONCERT_SLACK_WEBHOOK_URL=hooks.slack.com/services/x", NULL, "CONCERT_SLACK_WEBHOOK_URL", "https://"},
    {"CONCERT_SLACK_WEBHOOK_URL=ftp://hooks/x", NULL, "CONCERT_SLACK_WEBHOOK_URL", "https://"},
    {"CONCERT_SLACK_BACKOFF_BASE_MS=5000", "CONCERT_SLACK_BACKOFF_MAX_MS=1000", "CONCERT_SLACK_BACKOFF_MAX_MS",
     "below"},
    {"CONCERT_SLACK_POLL_MS=5", NULL, "CONCERT_SLACK_POLL_MS", "out of range"},
    {"CONCERT_PROJECTOR_GROUP=", NULL, "CONCERT_PROJECTOR_GROUP", "letters, digits"},
    {"CONCERT_PROJECTOR_GROUP=a b", NULL, "CONCERT_PROJECTOR_GROUP", "letters, digits"},
    {"CONCERT_PROJECTOR_BATCH_MAX=0", NULL, "CONCERT_PROJECTOR_BATCH_MAX", "out of range"},
    {"CONCERT_PROJECTOR_BATCH_MS=0", NULL, "CONCERT_PROJECTOR_BATCH_MS", "out of range"},
    {"CONCERT_OUTBOX_MAX_ATTEMPTS=0", NULL, "CONCERT_OUTBOX_MAX_ATTEMPTS", "out of range"},
    {"CONCERT_OUTBOX_RETENTION_S=-1", NULL, "CONCERT_OUTBOX_RETENTION_S", "out of range"},
    {"CONCERT_OUTBOX_RETENTION_S=7d", NULL, "CONCERT_OUTBOX_RETENTION_S", "not an integer"},
    {"CONCERT_PROJECTOR_RETENTION_S=-1", NULL, "CONCERT_PROJECTOR_RETENTION_S", "out of range"},
    {"CONCERT_PROJECTOR_RETENTION_S=86400", NULL, "CONCERT_PROJECTOR_RETENTION_S", "below CONCERT_OUTBOX"},
    {"CONCERT_PROJECTOR_RETENTION_S=86400", "CONCERT_OUTBOX_RETENTION_S=0", "CONCERT_PROJECTOR_RETENTION_S",
     "0 meaning forever"},
    {"CONCERT_TICK_MS=1", NULL, "CONCERT_TICK_MS", "out of range"},
    {"CONCERT_TRACE_SAMPLE=-1", NULL, "CONCERT_TRACE_SAMPLE", "out of range"},
    {"CONCERT_INGRESS_PG_CONNS=65", NULL, "CONCERT_INGRESS_PG_CONNS", "out of range"},
    {"CONCERT_INGRESS_READ_CONNS=0", NULL, "CONCERT_INGRESS_READ_CONNS", "out of range"},
    {"CONCERT_INGRESS_WAITERS_MAX=-1", NULL, "CONCERT_INGRESS_WAITERS_MAX", "out of range"},
    {"CONCERT_LOG_LEVEL=loud", NULL, "CONCERT_LOG_LEVEL", "not one of"},
    {"CONCERT_KAFKA_BROKERS=nohost", NULL, "CONCERT_KAFKA_BROKERS", "not host:port"},
    {"CONCERT_KAFKA_BROKERS=h:9092,,h2:9092", NULL, "CONCERT_KAFKA_BROKERS", "not host:port"},
    {"CONCERT_KAFKA_BROKERS=h:", NULL, "CONCERT_KAFKA_BROKERS", "not host:port"},
    {"CONCERT_KAFKA_BROKERS=h:0", NULL, "CONCERT_KAFKA_BROKERS", "invalid port"},
    {"CONCERT_KAFKA_BROKERS=h:70000", NULL, "CONCERT_KAFKA_BROKERS", "invalid port"},
    {"CONCERT_KAFKA_BROKERS=h:90a", NULL, "CONCERT_KAFKA_BROKERS", "invalid port"},
    {"CONCERT_PG_URL=host=db port", NULL, "CONCERT_PG_URL", "not a valid connection string"},
    {"CONCERT_PG_URL=postgresql://db:5432/c?nosuchoption=1", NULL, "CONCERT_PG_URL", "not a valid connection string"},
    {"CONCERT_DATA_DIR=", NULL, "CONCERT_DATA_DIR", "must not be empty"},
    {"CONCERT_DATA_DIR=/tmp/\x01x", NULL, "CONCERT_DATA_DIR", "control character"},
    {"CONCERT_KAFKA_START_TIMEOUT_MS=999", NULL, "CONCERT_KAFKA_START_TIMEOUT_MS", "out of range"},
    {"CONCERT_KAFKA_START_TIMEOUT_MS=900001", NULL, "CONCERT_KAFKA_START_TIMEOUT_MS", "out of range"},
    {"CONCERT_KAFKA_LIBS_DIR=/opt/\x1b[2Jkafka", NULL, "CONCERT_KAFKA_LIBS_DIR", "control character"},
    {"CONCERT_JAVA=java\n", NULL, "CONCERT_JAVA", "control character"},
    {"CONCERT_MAVEN=m\tvn", NULL, "CONCERT_MAVEN", "control character"},
    {"CONCERT_PG_BINDIR=/usr/lib/\x7fpostgresql", NULL, "CONCERT_PG_BINDIR", "control character"},
    {"CONCERT_ADMIN_KEY=key\r", NULL, "CONCERT_ADMIN_KEY", "control character"},
    {"CONCERT_AUTH_KEY=short-key", NULL, "CONCERT_AUTH_KEY", "at least 32 characters"},
    {"CONCERT_HTTP_ADDR=localhost", NULL, "CONCERT_HTTP_ADDR", "not an IPv4 or IPv6 address literal"},
    {"CONCERT_HTTP_ADDR=", NULL, "CONCERT_HTTP_ADDR", "not an IPv4 or IPv6 address literal"},
    {"CONCERT_HTTP_ADDR=256.0.0.1", NULL, "CONCERT_HTTP_ADDR", "not an IPv4 or IPv6 address literal"},
    {"CONCERT_HTTP_ADDR=127.0.0.1:8080", NULL, "CONCERT_HTTP_ADDR", "not an IPv4 or IPv6 address literal"},
    {"CONCERT_HTTP_ADDR=[::1]", NULL, "CONCERT_HTTP_ADDR", "not an IPv4 or IPv6 address literal"},
    {"CONCERT_HTTP_ADDR=fe80::1%eth0", NULL, "CONCERT_HTTP_ADDR", "not an IPv4 or IPv6 address literal"},
    {"CONCERT_HTTP_ADDR= 127.0.0.1", NULL, "CONCERT_HTTP_ADDR", "not an IPv4 or IPv6 address literal"},
    {"CONCERT_INGRESS_QUEUE_MAX=0", NULL, "CONCERT_INGRESS_QUEUE_MAX", "out of range"},
    {"CONCERT_INGRESS_QUEUE_MAX=1000001", NULL, "CONCERT_INGRESS_QUEUE_MAX", "out of range"},
    {"CONCERT_INGRESS_BATCH_MAX=0", NULL, "CONCERT_INGRESS_BATCH_MAX", "out of range"},
    {"CONCERT_INGRESS_BATCH_MAX=10001", NULL, "CONCERT_INGRESS_BATCH_MAX", "out of range"},
    {"CONCERT_RELAY_BATCH_MAX=0", NULL, "CONCERT_RELAY_BATCH_MAX", "out of range"},
    {"CONCERT_RELAY_BATCH_MAX=100001", NULL, "CONCERT_RELAY_BATCH_MAX", "out of range"},
    {"CONCERT_RELAY_LINGER_MS=1001", NULL, "CONCERT_RELAY_LINGER_MS", "out of range"},
    {"CONCERT_RELAY_LINGER_MS=-1", NULL, "CONCERT_RELAY_LINGER_MS", "out of range"},
    {"CONCERT_RELAY_POLL_MS=9", NULL, "CONCERT_RELAY_POLL_MS", "out of range"},
    {"CONCERT_RELAY_POLL_MS=1s", NULL, "CONCERT_RELAY_POLL_MS", "not an integer"},
    {"CONCERT_RELAY_PUBLISH_TIMEOUT_MS=999", NULL, "CONCERT_RELAY_PUBLISH_TIMEOUT_MS", "out of range"},
    {"CONCERT_RELAY_PUBLISH_TIMEOUT_MS=600001", NULL, "CONCERT_RELAY_PUBLISH_TIMEOUT_MS", "out of range"},
    {"CONCERT_RELAY_BACKOFF_BASE_MS=0", NULL, "CONCERT_RELAY_BACKOFF_BASE_MS", "out of range"},
    {"CONCERT_RELAY_BACKOFF_MAX_MS=0", NULL, "CONCERT_RELAY_BACKOFF_MAX_MS", "out of range"},
    {"CONCERT_RELAY_BACKOFF_MAX_MS=499", NULL, "CONCERT_RELAY_BACKOFF_MAX_MS", "below CONCERT_RELAY_BACKOFF_BASE_MS"},
    {"CONCERT_PROCESSOR_BATCH_MAX=0", NULL, "CONCERT_PROCESSOR_BATCH_MAX", "out of range"},
    {"CONCERT_PROCESSOR_BATCH_MAX=100001", NULL, "CONCERT_PROCESSOR_BATCH_MAX", "out of range"},
    {"CONCERT_PROCESSOR_BATCH_MS=0", NULL, "CONCERT_PROCESSOR_BATCH_MS", "out of range"},
    {"CONCERT_PROCESSOR_BATCH_MS=60001", NULL, "CONCERT_PROCESSOR_BATCH_MS", "out of range"},
    {"CONCERT_SLACK_BACKOFF_BASE_MS=0", NULL, "CONCERT_SLACK_BACKOFF_BASE_MS", "out of range"},
    {"CONCERT_SLACK_BACKOFF_MAX_MS=3600001", NULL, "CONCERT_SLACK_BACKOFF_MAX_MS", "out of range"},
    {"CONCERT_UP_RESTART_BACKOFF_MAX_MS=99", NULL, "CONCERT_UP_RESTART_BACKOFF_MAX_MS", "out of range"},
    {"CONCERT_UP_RESTART_BACKOFF_MAX_MS=600001", NULL, "CONCERT_UP_RESTART_BACKOFF_MAX_MS", "out of range"},
    {"CONCERT_KAFKA_CONF_NO_SUCH_PROPERTY=1", NULL, "CONCERT_KAFKA_CONF_NO_SUCH_PROPERTY", "librdkafka rejects"},
    {"CONCERT_KAFKA_CONF_SOCKET_TIMEOUT_MS=soon", NULL, "CONCERT_KAFKA_CONF_SOCKET_TIMEOUT_MS", "librdkafka rejects"},
    /* server.properties is written line by line: a newline would add one */
    {"CONCERT_KAFKA_BROKER_CONF_LOG_RETENTION_MS=1\nnode.id=9", NULL, "CONCERT_KAFKA_BROKER_CONF_LOG_RETENTION_MS",
     "control character"},
    {"CONCERT_KAFKA_BROKER_CONF_NODE_ID=9", NULL, "CONCERT_KAFKA_BROKER_CONF_NODE_ID", "written by `concert kafka`"},
    {"CONCERT_KAFKA_BROKER_CONF_NUM_PARTITIONS=3", NULL, "CONCERT_KAFKA_BROKER_CONF_NUM_PARTITIONS",
     "written by `concert kafka`"},
    {"CONCERT_KAFKA_BROKER_CONF_LOG-DIRS=/x", NULL, "CONCERT_KAFKA_BROKER_CONF_LOG-DIRS", "not a broker property name"},
    {"CONCERT_KAFKA_BROKER_CONF__LOG_DIRS=/x", NULL, "CONCERT_KAFKA_BROKER_CONF__LOG_DIRS",
     "not a broker property name"},
    {"CONCERT_KAFKA_BROKER_CONF_=1", NULL, "CONCERT_KAFKA_BROKER_CONF_", "empty"},
};

Test(config, every_invalid_value_is_rejected_naming_the_variable) {
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        ct_config cfg;
        ct_error err = {0};
        cr_assert_eq(load(&cfg, &err, c->a, c->b), -1, "%s accepted", c->a);
        cr_assert_eq(err.klass, CT_ERR_PERMANENT);
        cr_assert(strstr(err.msg, c->var) != NULL, "'%s' does not name %s", err.msg, c->var);
        cr_assert(strstr(err.msg, c->problem) != NULL, "'%s' does not say '%s'", err.msg, c->problem);
    }
}

/* What `concert help config` prints, malloc'd. */
static char *help_text(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    ct_config_print_help(f);
    fclose(f);
    return buf;
}

/* Every variable `concert help config` lists has an invalid value in
 * bad_cases, so a new setting cannot arrive without its rejection test. */
Test(config, every_variable_has_an_invalid_case) {
    char *buf = help_text();
    int vars = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char name[96];
        if (!strstr(line, " default: ") || sscanf(line, " %95[A-Z_]", name) != 1 || strncmp(name, "CONCERT_", 8) != 0)
            continue;
        vars++;
        size_t n = strlen(name);
        bool found = false;
        for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0] && !found; i++)
            found = strncmp(bad_cases[i].var, name, n) == 0 && bad_cases[i].var[n] == '\0';
        cr_assert(found, "%s has no invalid value in bad_cases", name);
    }
    cr_assert_geq(vars, 40, "help listed only %d variables", vars);
    free(buf);
}

Test(config, listen_addresses_are_ipv4_or_ipv6_literals) {
    static const char *const good[] = {"127.0.0.1", "0.0.0.0", "::1", "::", "fd00::2", "::ffff:10.0.0.1"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char var[96];
        snprintf(var, sizeof var, "CONCERT_HTTP_ADDR=%s", good[i]);
        ct_config cfg;
        ct_error err = {0};
        cr_assert_eq(load(&cfg, &err, var, NULL), 0, "%s: %s", var, err.msg);
        cr_assert_str_eq(cfg.http_addr, good[i]);
        struct sockaddr_storage ss;
        socklen_t sl = 0;
        cr_assert_eq(ct_config_listen_addr(cfg.http_addr, 8080, &ss, &sl), 0);
        cr_assert_eq(ss.ss_family, strchr(good[i], ':') ? AF_INET6 : AF_INET, "%s", good[i]);
        cr_assert_eq(sl, ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    }
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    cr_assert_eq(ct_config_listen_addr("127.0.0.1", 65536, &ss, &sl), -1, "a port out of range");
    cr_assert_eq(ct_config_listen_addr("localhost", 80, &ss, &sl), -1, "no name lookup");
}

/* main turns a configuration error into exit code 2 and names the
 * variable before a command starts anything. */
Test(config, a_bad_listen_address_exits_2_naming_the_variable) {
    char out[] = "/tmp/ct-test-config-XXXXXX";
    int fd = mkstemp(out);
    cr_assert_geq(fd, 0);
    close(fd);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "CONCERT_HTTP_ADDR=localhost %s ingress > %s 2>&1", CT_CONCERT_BIN, out);
    int st = system(cmd);
    char text[1024] = "";
    FILE *f = fopen(out, "r");
    cr_assert_not_null(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(out);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "exit status %d: %s", st, text);
    cr_assert(strstr(text, "CONCERT_HTTP_ADDR") && strstr(text, "localhost"), "%s", text);
}

Test(config, overlong_path_is_rejected) {
    char var[CT_CONFIG_PATH_MAX + 64];
    snprintf(var, sizeof var, "CONCERT_DATA_DIR=/%0*d", CT_CONFIG_PATH_MAX, 0);
    ct_config cfg;
    ct_error err = {0};
    cr_assert_eq(load(&cfg, &err, var, NULL), -1);
    cr_assert(strstr(err.msg, "CONCERT_DATA_DIR") && strstr(err.msg, "too long"), "%s", err.msg);
}

Test(config, help_lists_every_variable_with_its_default) {
    char *buf = help_text();
    const char *names[] = {"CONCERT_DATA_DIR",    "CONCERT_KAFKA_BROKERS",     "CONCERT_PG_URL",
                           "CONCERT_HTTP_PORT",   "CONCERT_KAFKA_BASE_PORT",   "CONCERT_LOG_LEVEL",
                           "CONCERT_KAFKA_CONF_", "CONCERT_KAFKA_BROKER_CONF_"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        cr_assert(strstr(buf, names[i]) != NULL, "%s missing from help", names[i]);
    cr_assert(strstr(buf, "default: 19092") != NULL);
    free(buf);
}

Test(log, secrets_are_redacted) {
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"postgresql://alice:s3cret@db:5432/concert", "postgresql://alice:***@db:5432/concert"},
        {"postgresql://alice@db/concert", "postgresql://alice@db/concert"}, /* nothing to hide */
        {"postgres://db:5432/concert?user=alice&password=s3cret&sslmode=require",
         "postgres://db:5432/concert?user=alice&password=***&sslmode=require"},
        {"postgresql://db/c?sslpassword=s3cret", "postgresql://db/c?sslpassword=***"},
        {"host=db password=s3cret user=alice", "host=db password=*** user=alice"},
        {"host=db password='s3 cret' user=alice", "host=db password=*** user=alice"},
        {"https://hooks.slack.com/services/T000/B000/s3cret", "https://hooks.slack.com/***"},
        {"http://user:s3cret@127.0.0.1:9/hook?token=s3cret", "http://user:***@127.0.0.1:9/***"},
        {"s3cret-admin-key", "***"},
        {"", ""},
    };
    char out[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_log_redact_secret(cases[i].in, out, sizeof out);
        cr_expect_str_eq(out, cases[i].want, "%s", cases[i].in);
        cr_expect(strstr(out, "s3cret") == NULL, "%s leaks as %s", cases[i].in, out);
    }
    ct_log_redact_secret("postgresql://alice:s3cret@db:5432/concert", out, 12); /* bounded */
    cr_assert_eq(strlen(out), 11u);
}
