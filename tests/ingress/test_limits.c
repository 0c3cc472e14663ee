/* `concert ingress` under abuse, as a child process on the real Postgres:
 * 1,500 sockets from one address trickling their headers leave /healthz
 * and a real user's charge from another address answered (the per-address
 * connection limit); a body trickled past the request time limit is cut;
 * a user writing too fast, or too many writes from one address, get 429
 * with Retry-After while others go on; /metrics needs the admin key. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../support/ct_test_http.h"
#include "../support/ct_test_kafka.h"
#include "../support/ct_test_pg.h"

#define TRICKLERS 1500
#define ADMIN_KEY "limits-admin-key"

static ct_config cfg;
static char run[32], dir[96], base[64], log_path[160], dbname[64];
static PGconn *db;
static pid_t ingress;
static int port;

static void setup(void) {
    ct_test_setup_run(&cfg, "limits", run, sizeof run, dir, sizeof dir);
    snprintf(dbname, sizeof dbname, "ct_test_limits_%s", run);
    db = ct_test_pg_database(&cfg, dbname);
    setenv("CONCERT_ADMIN_KEY", ADMIN_KEY, 1);
    setenv("CONCERT_HTTP_CONNECTIONS_PER_IP", "100", 1);
    setenv("CONCERT_HTTP_REQUEST_TIMEOUT_MS", "1000", 1);
    setenv("CONCERT_RATE_USER_WRITES", "2", 1); /* a bucket of 4 */
    setenv("CONCERT_RATE_IP_WRITES", "5", 1);   /* a bucket of 10 */
    snprintf(log_path, sizeof log_path, "%s/ingress.log", dir);
    ingress = ct_test_spawn_http("ingress", "/healthz", 20000, base, sizeof base, log_path);
    cr_assert_eq(sscanf(base, "http://127.0.0.1:%d", &port), 1);
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = rl.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    cr_assert_geq(rl.rlim_cur, (rlim_t)TRICKLERS + 256, "the test needs %d descriptors", TRICKLERS + 256);
}

static void teardown(void) {
    if (ingress > 0) ct_test_stop_clean(ingress, "the ingress", log_path);
    ct_test_pg_drop(db, &cfg, dbname);
    ct_test_cleanup_run(dir);
}

/* A socket from source address src to the ingress; -1 if refused. */
static int dial_from(const char *src) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &a.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind %s: %s", src, strerror(errno));
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* One request from src; its status (0: no answer) and, into out, its text. */
static int request_from(const char *src, const char *method, const char *path, const char *headers, const char *body,
                        char *out, size_t n) {
    int fd = dial_from(src);
    if (fd < 0) return 0;
    char req[4096];
    int len =
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n%s",
                 method, path, headers ? headers : "", body ? strlen(body) : 0, body ? body : "");
    int status = 0;
    if (send(fd, req, (size_t)len, MSG_NOSIGNAL) == len) {
        size_t got = 0;
        ssize_t r;
        while (got < n - 1 && (r = read(fd, out + got, n - 1 - got)) > 0) got += (size_t)r;
        out[got] = 0;
        if (sscanf(out, "HTTP/1.%*d %d", &status) != 1) status = 0;
    }
    close(fd);
    return status;
}

static void user_auth(const char *user, char *out, size_t n) {
    char h[CT_AUTH_TOKEN_BYTES_MAX + 32];
    ct_test_auth_header(user, h, sizeof h);
    snprintf(out, n, "%s\r\nContent-Type: application/json\r\n", h);
}

Test(limits, trickling_sockets_from_one_address_do_not_lock_out_another, .init = setup, .fini = teardown,
     .timeout = 120) {
    static int fds[TRICKLERS];
    int open = 0;
    for (int i = 0; i < TRICKLERS; i++) {
        fds[i] = dial_from("127.0.0.1");
        if (fds[i] < 0) continue;
        /* Headers begun and never finished: a slow-loris client. */
        const char *part = "POST /v1/users/x/balance/charge HTTP/1.1\r\nHost: x\r\n";
        if (send(fds[i], part, strlen(part), MSG_NOSIGNAL) > 0) open++;
    }
    usleep(300 * 1000);
    /* The ones past the per-address limit were closed at accept. */
    int alive = 0;
    for (int i = 0; i < TRICKLERS; i++) {
        if (fds[i] < 0) continue;
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        char c;
        /* Closed with our bytes unread, the kernel resets it: -1 too. */
        bool closed = poll(&p, 1, 0) == 1 && read(fds[i], &c, 1) <= 0;
        if (!closed) alive++;
    }
    cr_assert_leq(alive, 100, "%d of %d trickling sockets are held (limit 100 per address)", alive, open);
    char out[8192], auth[CT_AUTH_TOKEN_BYTES_MAX + 128];
    cr_assert_eq(request_from("127.0.0.2", "GET", "/healthz", NULL, NULL, out, sizeof out), 200, "%s", out);
    user_auth("fan-1", auth, sizeof auth);
    cr_assert_eq(
        request_from("127.0.0.2", "POST", "/v1/users/fan-1/balance/charge", auth, "{\"amount\":100}", out, sizeof out),
        202, "%s", out);
    /* A trickle goes on for a while: the held ones keep their slot, others still get in. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < TRICKLERS; i++)
            if (fds[i] >= 0 && send(fds[i], "X", 1, MSG_NOSIGNAL) < 0) close(fds[i]), fds[i] = -1;
        usleep(200 * 1000);
        cr_assert_eq(request_from("127.0.0.2", "GET", "/healthz", NULL, NULL, out, sizeof out), 200, "round %d", round);
    }
    for (int i = 0; i < TRICKLERS; i++)
        if (fds[i] >= 0) close(fds[i]);
    cr_assert_eq(ct_test_pg_count(db, "SELECT count(*) FROM outbox"), 1);
}

Test(limits, a_body_trickled_past_the_request_time_limit_is_cut, .init = setup, .fini = teardown) {
    char auth[CT_AUTH_TOKEN_BYTES_MAX + 128], req[CT_AUTH_TOKEN_BYTES_MAX + 512];
    user_auth("fan-2", auth, sizeof auth);
    int fd = dial_from("127.0.0.4");
    cr_assert_geq(fd, 0);
    int len =
        snprintf(req, sizeof req,
                 "POST /v1/users/fan-2/balance/charge HTTP/1.1\r\nHost: x\r\n%sContent-Length: 40\r\n\r\n{", auth);
    cr_assert_eq(write(fd, req, (size_t)len), len);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool cut = false;
    for (int i = 0; i < 30 && !cut; i++) {
        usleep(200 * 1000);
        cut = send(fd, " ", 1, MSG_NOSIGNAL) < 0; /* the peer closed: EPIPE */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char c;
        if (!cut && poll(&p, 1, 0) == 1 && read(fd, &c, 1) <= 0) cut = true;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    close(fd);
    cr_assert(cut, "a body trickled for %.1f s was not cut (limit 1 s)", s);
    cr_assert_lt(s, 4.0, "cut only after %.1f s", s);
    cr_assert_eq(ct_test_pg_count(db, "SELECT count(*) FROM outbox"), 0);
}

Test(limits, writes_over_a_users_or_an_addresss_rate_get_429_with_retry_after, .init = setup, .fini = teardown) {
    char auth[CT_AUTH_TOKEN_BYTES_MAX + 128], out[8192];
    user_auth("fast", auth, sizeof auth);
    int ok = 0, limited = 0;
    for (int i = 0; i < 8; i++) {
        int st =
            request_from("127.0.0.5", "POST", "/v1/users/fast/balance/charge", auth, "{\"amount\":1}", out, sizeof out);
        if (st == 202) ok++;
        if (st == 429) {
            limited++;
            cr_assert(strstr(out, "Retry-After: "), "%s", out);
            cr_assert(strstr(out, "RATE_LIMITED"), "%s", out);
        }
    }
    cr_assert(ok >= 4 && ok <= 5 && limited == 8 - ok, "%d accepted, %d limited (a bucket of 4 at 2/s)", ok, limited);
    /* Another user from another address is not slowed by it. */
    user_auth("calm", auth, sizeof auth);
    cr_assert_eq(
        request_from("127.0.0.6", "POST", "/v1/users/calm/balance/charge", auth, "{\"amount\":1}", out, sizeof out),
        202, "%s", out);
    /* Many users from one address: its bucket of 10 runs out. */
    int from_one = 0, addr_limited = 0;
    for (int i = 0; i < 16; i++) {
        char user[32];
        snprintf(user, sizeof user, "crowd-%d", i);
        user_auth(user, auth, sizeof auth);
        char path[96];
        snprintf(path, sizeof path, "/v1/users/%s/balance/charge", user);
        int st = request_from("127.0.0.7", "POST", path, auth, "{\"amount\":1}", out, sizeof out);
        if (st == 202) from_one++;
        if (st == 429 && strstr(out, "from this address")) addr_limited++;
    }
    cr_assert(from_one >= 10 && from_one <= 12 && addr_limited == 16 - from_one, "%d accepted, %d limited", from_one,
              addr_limited);
    long accepted = ok + 1 + from_one;
    cr_assert_eq(ct_test_pg_count(db, "SELECT count(*) FROM outbox"), accepted, "a refused write reached the outbox");
    /* The operators' figures: only with the admin key. */
    cr_assert_eq(request_from("127.0.0.5", "GET", "/metrics", NULL, NULL, out, sizeof out), 401, "%s", out);
    cr_assert_eq(
        request_from("127.0.0.5", "GET", "/metrics", "Authorization: Bearer " ADMIN_KEY "\r\n", NULL, out, sizeof out),
        200, "%s", out);
    char want[64];
    snprintf(want, sizeof want, "concert_ingress_rate_limited_total %d", limited + addr_limited);
    cr_assert(strstr(out, want), "no '%s' in the metrics", want);
}
