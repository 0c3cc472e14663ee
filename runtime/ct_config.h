/*
 * ct_config: every setting of the system, read from CONCERT_* environment
 * variables through one declarative table (name, type, range, default, doc).
 *
 * ct_config is a plain value: filled once by ct_config_load() in main,
 * read-only afterwards, passed by pointer to whatever needs it (no global).
 * A bad value is an error naming the variable; main exits with code 2.
 *
 * Kafka client properties pass through as CONCERT_KAFKA_CONF_<NAME>, where
 * <NAME> is the librdkafka property upper-cased with '.' written as '_'
 * (CONCERT_KAFKA_CONF_SECURITY_PROTOCOL=sasl_ssl -> security.protocol).
 */
#ifndef CT_CONFIG_H
#define CT_CONFIG_H

#include <stdio.h>
#include <sys/socket.h>

#include "ct_error.h"
#include "ct_log.h"

#define CT_CONFIG_PATH_MAX 512
#define CT_CONFIG_URL_MAX 1024
#define CT_CONFIG_PASSTHROUGH_MAX 32
/* CONCERT_KAFKA_JVM_OPTS's default (docs/decisions.md, "The journey's speed"). */
#define CT_KAFKA_JVM_OPTS_DEFAULT "-XX:+UseG1GC -XX:MaxGCPauseMillis=20"

typedef struct ct_config_kv {
    char name[128]; /* librdkafka (or, for broker_conf, Kafka broker) property name */
    char value[512];
    int secret; /* never logged */
} ct_config_kv;

typedef struct ct_config {
    char data_dir[CT_CONFIG_PATH_MAX]; /* absolute after load */
    ct_log_level log_level;
    int trace_sample; /* 1 in N commands traced per hop (ct_trace); 0: none */

    char kafka_brokers[CT_CONFIG_URL_MAX]; /* empty: the local cluster */
    int kafka_base_port;
    int kafka_heap_mb;
    char kafka_jvm_opts[CT_CONFIG_PATH_MAX]; /* the brokers' JVM flags besides heap and logs, space-separated */
    int kafka_network_threads;               /* the local brokers' num.network.threads */
    int kafka_io_threads;                    /* the local brokers' num.io.threads */
    int kafka_partitions;
    int kafka_replication;
    int kafka_min_isr;
    int kafka_timeout_ms;
    int kafka_start_timeout_ms;
    char kafka_libs_dir[CT_CONFIG_PATH_MAX]; /* empty: <data_dir>/kafka/libs */
    char java[CT_CONFIG_PATH_MAX];
    char maven[CT_CONFIG_PATH_MAX];
    ct_config_kv kafka_conf[CT_CONFIG_PASSTHROUGH_MAX];
    int kafka_conf_count;
    /* CONCERT_KAFKA_BROKER_CONF_<NAME>: lines the local cluster's
     * server.properties adds after its own (the local cluster only) */
    ct_config_kv broker_conf[CT_CONFIG_PASSTHROUGH_MAX];
    int broker_conf_count;

    char pg_url[CT_CONFIG_URL_MAX]; /* empty: the local cluster */
    int pg_port;
    char pg_bindir[CT_CONFIG_PATH_MAX]; /* empty: newest /usr/lib/postgresql/N/bin */

    char http_addr[64];
    int http_port;
    int http_connections_max;
    int http_connections_per_ip; /* 0: no limit */
    int http_request_timeout_ms;
    int rate_user_writes; /* per second, 0: no limit */
    int rate_ip_writes;

    char admin_key[256];              /* empty: admin endpoints disabled */
    char auth_key[256];               /* empty: <data_dir>/auth.key if it exists (ct_auth) */
    int clock_skew_max_ms;            /* a command's ts at most this far past its log time */
    int processor_applied_ids_window; /* input offsets (and the outbox retention in time) */
    int ingress_pg_conns;
    int ingress_queue_max;
    int ingress_batch_max;
    int ingress_read_conns;
    int ingress_waiters_max;

    int outbox_max_attempts;
    int outbox_retention_s;    /* 0: SENT rows are kept forever */
    int projector_retention_s; /* 0: the projector's ids, outcomes and sent notifications are kept forever */
    int relay_batch_max;
    int relay_poll_ms;
    int relay_linger_ms;
    int relay_publish_timeout_ms;
    int relay_backoff_base_ms;
    int relay_backoff_max_ms;
    int tick_ms;

    int processor_batch_max;
    int processor_batch_ms;

    char projector_group[128];
    int projector_batch_max;
    int projector_batch_ms;
    char slack_webhook_url[CT_CONFIG_URL_MAX]; /* empty: notifications stay unsent */
    int slack_poll_ms;
    int slack_backoff_base_ms;
    int slack_backoff_max_ms;

    int up_ready_timeout_ms;
    int up_restart_backoff_max_ms;
} ct_config;

/* Fills cfg from an environ-style array ("NAME=VALUE", NULL-terminated):
 * defaults first, then every CONCERT_* variable validated, then the cross
 * checks. Returns 0, or -1 with err naming the variable and the problem.
 * Unknown CONCERT_* variables are reported through *unknown (first one), so
 * main can warn about a likely typo. */
int ct_config_load(ct_config *cfg, char *const *env, ct_error *err);
/* ct_config_load over the process environment. */
int ct_config_load_env(ct_config *cfg, ct_error *err);

/* `concert help config`: every variable, its default and meaning. */
void ct_config_print_help(FILE *out);
/* Logs the effective configuration once, secrets redacted. */
void ct_config_log_effective(const ct_config *cfg);

/* The socket address of an IPv4 or IPv6 address literal ("0.0.0.0",
 * "::1"; no brackets, no zone, no name lookup: a listen address must not
 * depend on DNS) and a port. Returns 0 with *out and *out_len filled, or -1
 * if addr is not such a literal. Pure; any thread. config finalize checks
 * CONCERT_HTTP_ADDR with it, and the ingress binds what it returns. */
int ct_config_listen_addr(const char *addr, int port, struct sockaddr_storage *out, socklen_t *out_len);

/* Derived paths (into out; returns out). */
const char *ct_config_path(const ct_config *cfg, const char *relative, char *out, size_t out_bytes);

#endif
