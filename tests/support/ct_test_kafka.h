/* Shared helpers for tests that talk to the real Kafka cluster. Header-only
 * (static functions) so each test binary stays one file plus this. */
#ifndef CT_TEST_KAFKA_H
#define CT_TEST_KAFKA_H

#include <criterion/criterion.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>

#include "ct_config.h"
#include "ct_kafka.h"
#include "ct_log.h"
#include "ct_proc.h"

static inline void ct_test_load_config(ct_config *cfg) {
    ct_error err = {0};
    cr_assert_eq(ct_config_load_env(cfg, &err), 0, "%s", err.msg);
    ct_log_init("test", CT_LOG_WARN);
}

/* A fresh hex id, so runs against a long-lived cluster never see each
 * other's records, groups or transactional ids. */
static inline void ct_test_run_id(char *out, size_t n) {
    unsigned char r[8];
    cr_assert_eq(getrandom(r, sizeof r, 0), (ssize_t)sizeof r);
    snprintf(out, n, "%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
}

/* One command record (DESIGN.md section 3 envelope) with id = command_id =
 * "<run>-<name>"; malloc'd. */
static inline char *ct_test_envelope(const char *run, const char *name, const char *type, int64_t ts, const char *key,
                                     const char *data) {
    char *s = NULL;
    cr_assert_geq(asprintf(&s,
                           "{\"id\":\"%s-%s\",\"type\":\"%s\",\"v\":1,\"ts\":%lld,\"command_id\":\"%s-%s\","
                           "\"key\":\"%s\",\"data\":%s}",
                           run, name, type, (long long)ts, run, name, key, data),
                  0);
    return s;
}

/* The common start of a test that runs processes: configuration, a fresh
 * run id, a directory /tmp/ct-test-<what>-<run> that becomes the children's
 * CONCERT_DATA_DIR. */
static inline void ct_test_setup_run(ct_config *cfg, const char *what, char *run, size_t run_n, char *dir,
                                     size_t dir_n) {
    ct_test_load_config(cfg);
    ct_test_run_id(run, run_n);
    snprintf(dir, dir_n, "/tmp/ct-test-%s-%s", what, run);
    ct_error err = {0};
    cr_assert_eq(ct_fs_mkdirs(dir, 0755, &err), 0, "%s", err.msg);
    setenv("CONCERT_DATA_DIR", dir, 1);
}

/* Removes the run's directory unless CT_TEST_KEEP is set (to look at logs). */
static inline void ct_test_cleanup_run(const char *dir) {
    if (getenv("CT_TEST_KEEP")) return;
    char rm[CT_CONFIG_PATH_MAX + 16];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    cr_assert_eq(system(rm), 0);
}

/* Subscribes c to the NULL-terminated list of topics. */
static inline void ct_test_subscribe(rd_kafka_t *c, const char *const *topics) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    for (const char *const *t = topics; *t; t++) rd_kafka_topic_partition_list_add(l, *t, RD_KAFKA_PARTITION_UA);
    cr_assert_eq(rd_kafka_subscribe(c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
}

/* A consumer of its own group on `topics` (NULL: test-topic). */
static inline rd_kafka_t *ct_test_consumer_on(const ct_config *cfg, const char *group, int read_committed,
                                              const char *const *topics) {
    static const char *const test_topic[] = {CT_TOPIC_TEST, NULL};
    ct_error err = {0};
    ct_kafka_consumer_opts o = {.client_id = "ct-test", .group_id = group, .read_committed = read_committed};
    rd_kafka_t *rk = ct_kafka_consumer_new(cfg, &o, &err);
    cr_assert_not_null(rk, "%s %s", err.msg, err.detail);
    ct_test_subscribe(rk, topics ? topics : test_topic);
    return rk;
}

static inline rd_kafka_t *ct_test_consumer(const ct_config *cfg, const char *group, int read_committed) {
    return ct_test_consumer_on(cfg, group, read_committed, NULL);
}

/* `concert processor --role <role> --instance <instance>` as a child that
 * dies with this process, its output appended to log_path. Call before
 * this process creates any librdkafka handle, or with exec right after
 * fork as here (a forked child must not run librdkafka code). */
/* `concert <argv...>` (argv[0] is CT_CONCERT_BIN) as a child that dies with
 * this process, its output appended to log_path. */
static inline pid_t ct_test_spawn(const char *const *argv, const char *log_path) {
    ct_proc_opts po = {
        .argv = argv, .output_path = log_path, .output_fd = -1, .die_with_parent = true, .null_stdin = true};
    ct_error err = {0};
    pid_t pid = ct_proc_spawn(&po, &err);
    cr_assert_gt(pid, 0, "%s", err.msg);
    return pid;
}

/* /proc/<pid>/<name> (stat, cmdline, environ) into buf, NUL-terminated;
 * its length, 0 when it cannot be read. */
static inline size_t ct_test_proc_file(pid_t pid, const char *name, char *buf, size_t n) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    FILE *f = fopen(path, "r");
    size_t len = f ? fread(buf, 1, n - 1, f) : 0;
    if (f) fclose(f);
    buf[len] = '\0';
    return len;
}

/* Runs argv to its end (up to timeout_ms, then killed), its output
 * appended to log_path; returns its exit code, -1 if killed. */
static inline int ct_test_run(const char *const *argv, const char *log_path, int timeout_ms) {
    ct_proc_opts po = {.argv = argv, .output_path = log_path, .output_fd = -1, .null_stdin = true};
    ct_error err = {0};
    pid_t pid = ct_proc_spawn(&po, &err);
    cr_assert_gt(pid, 0, "%s", err.msg);
    int status = 0;
    if (!ct_proc_wait(pid, timeout_ms, &status)) kill(pid, SIGKILL), waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static inline pid_t ct_test_start_processor(const char *role, const char *instance, const char *log_path) {
    const char *argv[] = {CT_CONCERT_BIN, "processor", "--role", role, "--instance", instance, NULL};
    return ct_test_spawn(argv, log_path);
}

/* The last `lines` lines of a child's log into the test's output, so a
 * failure on a CI machine (whose /tmp is gone afterwards) explains itself. */
static inline void ct_test_print_log_tail(const char *log_path, int lines) {
    FILE *f = log_path ? fopen(log_path, "r") : NULL;
    if (!f) return;
    static char ring[64][512];
    int n = 0;
    if (lines > 64) lines = 64;
    while (fgets(ring[n % lines], sizeof ring[0], f)) n++;
    fclose(f);
    cr_log_warn("---- last lines of %s ----", log_path);
    for (int i = n > lines ? n - lines : 0; i < n; i++) cr_log_warn("%s", ring[i % lines]);
}

/* The first line of a child's log that holds one of marks[0..n), copied
 * into found (empty when none, or no log). */
static inline void ct_test_log_find(const char *log_path, const char *const *marks, size_t n, char *found,
                                    size_t found_len) {
    FILE *f = log_path ? fopen(log_path, "r") : NULL;
    char line[1024];
    found[0] = 0;
    while (f && !found[0] && fgets(line, sizeof line, f))
        for (size_t i = 0; i < n && !found[0]; i++)
            if (strstr(line, marks[i])) snprintf(found, found_len, "%s", line);
    if (f) fclose(f);
}

/* A sanitizer build's children report to their logs, not to the test's
 * output that ctest checks: a finding there (a restarted child's too) must
 * fail the test all the same. */
static inline void ct_test_assert_no_sanitizer_finding(const char *what, const char *log_path) {
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error: "};
    char found[1024];
    ct_test_log_find(log_path, marks, sizeof marks / sizeof marks[0], found, sizeof found);
    if (found[0]) ct_test_print_log_tail(log_path, 60);
    cr_assert(!found[0], "sanitizer finding in %s's log %s: %s", what, log_path, found);
}

/* SIGTERM; the process must exit 0 within 30 s (else it is killed and the
 * test fails, with the tail of its log printed). */
static inline void ct_test_stop_clean(pid_t pid, const char *what, const char *log_path) {
    kill(pid, SIGTERM);
    int status = 0;
    int done = ct_proc_wait(pid, 30000, &status);
    if (!done) kill(pid, SIGKILL), waitpid(pid, &status, 0);
    bool clean = done && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!clean) ct_test_print_log_tail(log_path, 40);
    cr_assert(clean, "%s did not stop cleanly (status %d)", what, status);
    ct_test_assert_no_sanitizer_finding(what, log_path);
}

static inline void ct_test_consumer_close(rd_kafka_t *rk) {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

#endif
