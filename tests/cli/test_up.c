/* `concert up` from nothing: its own data directory and ports, so it starts
 * its own local Postgres and three Kafka brokers next to the test cluster.
 * It must print its ready line, answer /healthz, restart a component killed
 * under it, and on SIGTERM stop every process it started: afterwards no
 * process carries the marker variable all its descendants inherit. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ct_config.h"
#include "ct_kafka.h"
#include "ct_log.h"
#include "ct_pg.h"
#include "ct_proc.h"
#include "ct_supervisor.h"
#include "../support/ct_test_kafka.h"

#define HTTP_PORT 30080
#define READY_WAIT_MS 240000

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* GET path with an optional extra header line (no CRLF). */
static int http_get_with(int port, const char *path, const char *header, char *body, size_t n) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 3};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int status = -1;
    char req[512], resp[2048];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n%s%sConnection: close\r\n\r\n", path,
                       header ? header : "", header ? "\r\n" : "");
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, req, (size_t)len) == len) {
        size_t got = 0;
        ssize_t r;
        while (got < sizeof resp - 1 && (r = read(fd, resp + got, sizeof resp - 1 - got)) > 0) got += (size_t)r;
        resp[got] = '\0';
        if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1) status = -1;
        const char *b = strstr(resp, "\r\n\r\n");
        snprintf(body, n, "%s", b ? b + 4 : "");
    }
    close(fd);
    return status;
}

static int http_get(int port, const char *path, char *body, size_t n) {
    return http_get_with(port, path, NULL, body, n);
}

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot read %s", path);
    char *buf = NULL;
    size_t cap = 0;
    *n = 0;
    for (;;) {
        if (cap - *n < 4096) cr_assert_not_null(buf = realloc(buf, cap = cap * 2 + 4096));
        size_t got = fread(buf + *n, 1, cap - *n - 1, f);
        if (got == 0) break;
        *n += got;
    }
    fclose(f);
    buf[*n] = '\0';
    return buf;
}

/* pids of live processes whose environment holds marker (optionally whose
 * command line contains `cmd`). */
static int find_marked(const char *marker, const char *cmd, pid_t *pids, int max) {
    int n = 0;
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && (e = readdir(d));) {
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0 || pid == getpid() || !ct_proc_alive(pid)) continue;
        static char buf[65536];
        size_t len = ct_test_proc_file(pid, "environ", buf, sizeof buf);
        bool marked = memmem(buf, len, marker, strlen(marker)) != NULL;
        if (marked && cmd) {
            len = ct_test_proc_file(pid, "cmdline", buf, sizeof buf);
            marked = memmem(buf, len, cmd, strlen(cmd) + 1) != NULL;
        }
        if (marked && n < max) pids[n++] = pid;
    }
    if (d) closedir(d);
    return n;
}

/* Starts `concert up` with the given extra environment (NAME=VALUE
 * strings, NULL-terminated) on top of the marker and data dir; its stdout
 * comes back through *out_fd, its stderr goes to log_path. */
/* The `concert up` a test started, so that a failed test still stops it
 * (its children die with it: PR_SET_PDEATHSIG). */
static pid_t launched;

static void stop_launched(void) {
    if (launched <= 0) return;
    if (kill(launched, SIGTERM) == 0) {
        int64_t until = ct_clock_mono_ms() + 20000;
        while (waitpid(launched, NULL, WNOHANG) == 0 && ct_clock_mono_ms() < until) sleep_ms(100);
        if (kill(launched, 0) == 0) kill(launched, SIGKILL), waitpid(launched, NULL, 0);
    }
    launched = 0;
}

/* Fails at once when something already listens on a port the test's own
 * cluster needs (another cluster on these ports would be used instead). */
static void expect_port_free(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int used = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    cr_assert(!used, "port %d is in use: stop what listens there, this test starts its own cluster on it", port);
}

static pid_t launch_up(char *const *env, const char *log_path, FILE **out) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t up = fork();
    cr_assert_geq(up, 0);
    if (up == 0) {
        unsetenv("CONCERT_KAFKA_BROKERS");
        unsetenv("CONCERT_PG_URL");
        for (char *const *e = env; *e; e++) putenv(*e);
        dup2(fds[1], STDOUT_FILENO);
        FILE *log = fopen(log_path, "w");
        if (log) dup2(fileno(log), STDERR_FILENO);
        close(fds[0]);
        execl(CT_CONCERT_BIN, "concert", "up", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    *out = fdopen(fds[0], "r");
    launched = up;
    return up;
}

/* Reads stdout until the ready line for port; kills up if it never comes. */
static void expect_ready(pid_t up, FILE *out, int port, const char *log_path) {
    char want[64], line[256] = "";
    snprintf(want, sizeof want, "ready: http://127.0.0.1:%d", port);
    int64_t t0 = ct_clock_mono_ms();
    bool ready = false;
    while (!ready && fgets(line, sizeof line, out)) ready = strncmp(line, want, strlen(want)) == 0;
    if (!ready) kill(up, SIGKILL);
    cr_assert(ready, "no ready line (see %s); last stdout: %s", log_path, line);
    cr_log_info("concert up ready after %lld ms", (long long)(ct_clock_mono_ms() - t0));
}

/* SIGTERM: up exits 0 and no process carrying marker is left. */
static void expect_clean_stop(pid_t up, const char *marker) {
    cr_assert_eq(kill(up, SIGTERM), 0);
    int status = 0;
    int exited = ct_proc_wait(up, 120000, &status);
    if (!exited) kill(up, SIGKILL);
    cr_assert(exited, "concert up did not stop within 120 s");
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
    pid_t pids[64];
    int left = 0;
    int64_t deadline = ct_clock_mono_ms() + 10000;
    while ((left = find_marked(marker, NULL, pids, 64)) > 0 && ct_clock_mono_ms() < deadline) sleep_ms(200);
    for (int i = 0; i < left; i++) kill(pids[i], SIGKILL);
    cr_assert_eq(left, 0, "%d processes left behind", left);
}

Test(up, starts_everything_reports_ready_supervises_and_stops_without_orphans, .timeout = 600, .fini = stop_launched) {
    char dir[] = "/tmp/ct-test-up-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    chmod(dir, 0755); /* the local Postgres runs as the postgres user */
    char marker[80], data_env[128], libs_env[700], log_path[128];
    snprintf(marker, sizeof marker, "CONCERT_TEST_MARKER=%s", dir + 5);
    snprintf(data_env, sizeof data_env, "CONCERT_DATA_DIR=%s/data", dir);
    snprintf(log_path, sizeof log_path, "%s/up.log", dir);
    /* Reuse the test cluster's jars instead of fetching them again. */
    const char *test_data = getenv("CONCERT_DATA_DIR");
    snprintf(libs_env, sizeof libs_env, "CONCERT_KAFKA_LIBS_DIR=%s/kafka/libs", test_data ? test_data : ".concert");

    /* Below Linux's ephemeral range (32768-60999): a broker listening on
     * 39094 once found it taken by some client socket's local port. */
    static const int own_ports[] = {30092, 30093, 30094, 30102, 30103, 30104, 30432, HTTP_PORT};
    for (size_t i = 0; i < sizeof own_ports / sizeof own_ports[0]; i++) expect_port_free(own_ports[i]);
    char *env[] = {marker,
                   data_env,
                   libs_env,
                   "CONCERT_KAFKA_BASE_PORT=30092",
                   "CONCERT_PG_PORT=30432",
                   "CONCERT_HTTP_PORT=30080",
                   "CONCERT_KAFKA_HEAP_MB=384",
                   "CONCERT_UP_RESTART_BACKOFF_MAX_MS=1000",
                   NULL};
    FILE *f = NULL;
    pid_t up = launch_up(env, log_path, &f);
    expect_ready(up, f, HTTP_PORT, log_path);

    char body[1024];
    cr_assert_eq(http_get(HTTP_PORT, "/healthz", body, sizeof body), 200);
    cr_assert(strstr(body, "\"ok\"") != NULL, "%s", body);
    cr_assert_eq(http_get(HTTP_PORT, "/readyz", body, sizeof body), 200, "%s", body);
    cr_assert_eq(http_get(HTTP_PORT, "/nope", body, sizeof body), 404);

    /* Every part runs under up: brokers, postgres, ingress. */
    pid_t pids[64];
    cr_assert_eq(find_marked(marker, "kafka.Kafka", pids, 64), 3, "three brokers");
    cr_assert_eq(find_marked(marker, "processor", pids, 64), 2, "one processor per role");
    cr_assert_eq(find_marked(marker, "projector", pids, 64), 1, "the projector");
    cr_assert_geq(find_marked(marker, NULL, pids, 64), 7, "postgres and ingress too");

    /* A component killed under the supervisor comes back. */
    cr_assert_eq(find_marked(marker, "ingress", pids, 64), 1);
    kill(pids[0], SIGKILL);
    int64_t deadline = ct_clock_mono_ms() + 30000;
    int code = -1;
    sleep_ms(200);
    while (ct_clock_mono_ms() < deadline && (code = http_get(HTTP_PORT, "/healthz", body, sizeof body)) != 200)
        sleep_ms(200);
    cr_assert_eq(code, 200, "ingress was not restarted");
    pid_t again[4];
    cr_assert_eq(find_marked(marker, "ingress", again, 4), 1);
    cr_assert_neq(again[0], pids[0], "a new ingress process");

    /* A component that keeps dying is a crash loop: a Slack row says so. */
    for (int k = 0; k < CT_SUPERVISOR_CRASHLOOP_RESTARTS; k++) {
        pid_t relay[4];
        int64_t until = ct_clock_mono_ms() + 20000;
        while (find_marked(marker, "relay", relay, 4) != 1 && ct_clock_mono_ms() < until) sleep_ms(50);
        cr_assert_eq(find_marked(marker, "relay", relay, 4), 1, "relay back for kill %d", k + 1);
        kill(relay[0], SIGKILL);
        while (find_marked(marker, "relay", again, 4) == 1 && again[0] == relay[0]) sleep_ms(20);
    }
    ct_config upcfg;
    ct_error err = {0};
    char *upenv[] = {data_env, "CONCERT_PG_PORT=30432", NULL};
    cr_assert_eq(ct_config_load(&upcfg, upenv, &err), 0, "%s", err.msg);
    PGconn *pg = ct_pg_connect(&upcfg, NULL, &err);
    cr_assert_not_null(pg, "%s", err.msg);
    long alerts = 0;
    deadline = ct_clock_mono_ms() + 15000;
    while (alerts == 0 && ct_clock_mono_ms() < deadline) {
        PGresult *r = PQexec(pg, "SELECT count(*) FROM slack_notifications WHERE kind = 'crash_loop'"
                                 " AND text LIKE 'Component relay %crash-looping%'");
        cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(pg));
        alerts = atol(PQgetvalue(r, 0, 0));
        PQclear(r);
        if (alerts == 0) sleep_ms(100);
    }
    PQfinish(pg);
    cr_assert_eq(alerts, 1, "one crash-loop alert for the relay");

    /* SIGTERM: everything stops, up exits 0, nothing is left behind. */
    expect_clean_stop(up, marker);
    launched = 0; /* stopped and reaped */
    fclose(f);

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* With CONCERT_KAFKA_BROKERS and CONCERT_PG_URL set (here: the test
 * cluster), up starts no local Kafka or Postgres: it ensures the topics,
 * migrates, and supervises the components only. */
/* Also: every component at debug, given known secrets (the admin key, a
 * webhook URL, a password in the Postgres URL's query, a librdkafka
 * password) and asked with the admin key, writes none of them. */
Test(up, uses_configured_kafka_and_postgres_and_logs_no_secret_at_debug, .timeout = 300, .fini = stop_launched) {
    char dir[] = "/tmp/ct-test-upx-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    if (getenv("CONCERT_KAFKA_BROKERS") || getenv("CONCERT_PG_URL"))
        cr_skip_test("the suite runs against external infrastructure already");
    /* The local test cluster stands in for "external" infrastructure. */
    ct_config cfg;
    ct_error err = {0};
    cr_assert_eq(ct_config_load_env(&cfg, &err), 0, "%s", err.msg);
    char marker[80], data_env[128], brokers[CT_CONFIG_URL_MAX + 32], pg_url[128], log_path[128];
    snprintf(marker, sizeof marker, "CONCERT_TEST_MARKER=%s", dir + 5);
    snprintf(data_env, sizeof data_env, "CONCERT_DATA_DIR=%s/data", dir);
    strcpy(brokers, "CONCERT_KAFKA_BROKERS=");
    ct_kafka_bootstrap(&cfg, brokers + strlen(brokers), sizeof brokers - strlen(brokers));
    snprintf(pg_url, sizeof pg_url, "CONCERT_PG_URL=postgresql://concert@127.0.0.1:%d/concert?password=pw-S3KRIT-3",
             cfg.pg_port);
    snprintf(log_path, sizeof log_path, "%s/up.log", dir);
    expect_port_free(30081);
    char *env[] = {marker,
                   data_env,
                   brokers,
                   pg_url,
                   "CONCERT_HTTP_PORT=30081",
                   "CONCERT_LOG_LEVEL=debug",
                   "CONCERT_ADMIN_KEY=adm-S3KRIT-1",
                   "CONCERT_SLACK_WEBHOOK_URL=http://127.0.0.1:9/services/hook-S3KRIT-2",
                   "CONCERT_KAFKA_CONF_SASL_PASSWORD=sasl-S3KRIT-4",
                   NULL};
    FILE *f = NULL;
    pid_t up = launch_up(env, log_path, &f);
    expect_ready(up, f, 30081, log_path);
    char body[1024];
    cr_assert_eq(http_get(30081, "/readyz", body, sizeof body), 200, "%s", body);
    cr_assert_eq(
        http_get_with(30081, "/v1/admin/outbox?limit=1", "Authorization: Bearer adm-S3KRIT-1", body, sizeof body), 200,
        "%s", body);
    cr_assert_eq(
        http_get_with(30081, "/v1/admin/outbox?limit=1", "Authorization: Bearer adm-S3KRIT-5", body, sizeof body), 401,
        "%s", body);
    pid_t pids[64];
    cr_assert_eq(find_marked(marker, "kafka.Kafka", pids, 64), 0, "no local broker");
    cr_assert_eq(find_marked(marker, "postgres", pids, 64), 0, "no local Postgres");
    cr_assert_eq(find_marked(marker, "processor", pids, 64), 2, "the components run");
    char path[160];
    snprintf(path, sizeof path, "%s/data/kafka", dir);
    cr_assert_not(ct_fs_exists(path), "nothing of a local cluster was prepared");
    snprintf(path, sizeof path, "%s/data/pg", dir);
    cr_assert_not(ct_fs_exists(path));
    expect_clean_stop(up, marker);
    launched = 0; /* stopped and reaped */
    fclose(f);
    size_t n = 0;
    char *log = read_file(log_path, &n);
    bool debug = strstr(log, " DEBUG ") && strstr(log, "CONCERT_ADMIN_KEY=***");
    int lines = 0, leaks = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n"), lines++)
        if (strstr(line, "S3KRIT") && leaks++ < 5) fprintf(stderr, "a secret in the log: %s\n", line);
    cr_assert_eq(leaks, 0, "%d of %d log lines hold a secret (above)", leaks, lines);
    cr_assert(debug, "no debug configuration lines in %s", log_path);
    free(log);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
