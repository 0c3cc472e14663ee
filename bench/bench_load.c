/* ct_bench_load: HTTP load on the ingress's write path, then the relay's
 * publish rate; or whole journeys through the pipeline.
 *
 *   ct_bench_load [--url http://127.0.0.1:8080] [--connections 64]
 *                 [--duration 10] [--rate 0] [--pg] [--scenario write|journey]
 *                 [--max-active N]
 *
 * --scenario journey (needs CONCERT_ADMIN_KEY and the whole pipeline, e.g.
 * `concert up`): creates a concert admitting --max-active users at once
 * (default twice the connections), then each connection plays one user
 * after another: charge, token, wait for admission (unless the token's
 * issue already answered ACTIVE, a token read with Prefer: wait, answered
 * when the token is admitted), hold a seat, pay,
 * each write with `Prefer: wait=30`. With --rate R users arrive R per
 * second whatever the answers do (open loop; a user who finds every
 * connection busy starts late and the wait counts against the charge's
 * latency). Prints completed journeys/s (a journey counts when its payment
 * SUCCEEDED), latency p50/p99/p999 from POST to outcome per step, and CPU
 * use per component (from /proc) over the run.
 *
 * The write scenario drives every keep-alive connection from one epoll
 * loop, posting balance charges (random users). --rate 0: closed loop (next request when the
 * answer arrives). --rate R: open loop, R requests/s in total, latency
 * measured from each request's scheduled time (a stall counts against
 * latency: no coordinated omission). --pg: afterwards, waits until every
 * row written during the run is SENT and prints the relay's rate,
 * rows / (last sent_at - first created_at), from the configured Postgres,
 * then waits until every command has its outcome and prints how many
 * SUCCEEDED and how long after the load stopped the last was written. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ctype.h>
#include <dirent.h>

#include "ct_auth.h"
#include "ct_config.h"
#include "ct_pg.h"

#define SAMPLES_MAX (4 << 20)

static char host[64] = "127.0.0.1";
/* Users' bearer tokens are signed here with the pipeline's key, as its
 * login service would: the write scenario's users ahead of the run (so the
 * load costs no signing), each journey's user when it starts. */
#define WRITE_USERS 100000
static char auth_key[CT_AUTH_KEY_BYTES_MAX];
static char (*write_auth)[CT_AUTH_TOKEN_BYTES_MAX];

static int user_auth(const char *user, char *out, size_t n) {
    char tok[CT_AUTH_TOKEN_BYTES_MAX];
    ct_error err = {0};
    if (ct_auth_token_new(auth_key, user, (int64_t)time(NULL), 24 * 3600, tok, sizeof tok, &err) != 0) {
        fprintf(stderr, "error: token for %s: %s\n", user, err.msg);
        return -1;
    }
    snprintf(out, n, "Authorization: Bearer %s\r\n", tok);
    return 0;
}
static int port = 8080, connections = 64, duration_s = 10;
static double rate;
static _Atomic long ok, bad, errors, nsamples;
static float *samples; /* ms */
static int64_t t_start_ns, t_end_ns;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int dial(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- the write scenario: one thread, epoll, every connection ------------ */

/* A load program that spends a thread (and two context switches) per
 * request takes a good part of two cores away from what it measures; one
 * epoll loop drives all the connections instead, as wrk does. */
typedef struct wconn {
    int fd;
    unsigned seed;
    bool busy;    /* a request is out */
    int64_t t0;   /* when it was due (open loop) or sent */
    int64_t next; /* open loop: when the next request is due */
    size_t have;  /* response bytes read so far */
    char buf[8192];
} wconn;

static int wconn_send(int ep, wconn *c, int64_t due) {
    if (c->fd < 0) {
        if ((c->fd = dial()) < 0) return -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) return -1;
    }
    char req[1536];
    const char *body = "{\"amount\":1000}";
    unsigned u = rand_r(&c->seed) % WRITE_USERS;
    int len = snprintf(req, sizeof req,
                       "POST /v1/users/u%u/balance/charge HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                       "%sContent-Length: %zu\r\n\r\n%s",
                       u, host, write_auth[u], strlen(body), body);
    if (write(c->fd, req, (size_t)len) != len) return -1;
    c->busy = true, c->have = 0, c->t0 = due;
    return 0;
}

static void wconn_drop(int ep, wconn *c) {
    if (c->fd >= 0) epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL), close(c->fd);
    c->fd = -1, c->busy = false;
    atomic_fetch_add(&errors, 1);
}

/* Reads what arrived; 1 when a whole response is in (status in *status),
 * 0 when more is to come, -1 when the connection broke. */
static int wconn_read(wconn *c, int *status) {
    ssize_t r = read(c->fd, c->buf + c->have, sizeof c->buf - c->have - 1);
    if (r <= 0) return -1;
    c->have += (size_t)r;
    c->buf[c->have] = 0;
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end) return c->have + 1 < sizeof c->buf ? 0 : -1;
    const char *cl = strcasestr(c->buf, "Content-Length:");
    size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0, head = (size_t)(end + 4 - c->buf);
    if (head + body >= sizeof c->buf) return -1;
    if (c->have < head + body) return 0;
    *status = atoi(c->buf + 9);
    return 1;
}

static void run_writes(void) {
    int ep = epoll_create1(0);
    wconn *cs = calloc((size_t)connections, sizeof *cs);
    double interval_ns = rate > 0 ? 1e9 * connections / rate : 0;
    for (int i = 0; i < connections; i++) {
        cs[i].fd = -1, cs[i].seed = (unsigned)(i + 1) * 2654435761u;
        cs[i].next = t_start_ns + (int64_t)(interval_ns * i / connections);
    }
    struct epoll_event evs[256];
    for (;;) {
        int64_t now = now_ns(), wake = t_end_ns;
        bool out = false;
        for (int i = 0; i < connections; i++) {
            wconn *c = &cs[i];
            if (c->busy) {
                out = true;
                continue;
            }
            if (now >= t_end_ns) continue;
            if (rate > 0 && c->next > now) {
                if (c->next < wake) wake = c->next;
                continue;
            }
            int64_t due = rate > 0 ? c->next : now;
            c->next += (int64_t)interval_ns;
            if (wconn_send(ep, c, due) != 0)
                wconn_drop(ep, c);
            else
                out = true;
        }
        if (!out && now >= t_end_ns) break;
        /* A timeout in nanoseconds: at 20,000/s the next request is due in
         * well under a millisecond, and epoll_wait's milliseconds rounded
         * that to 0, a busy loop that took a quarter of a core from the
         * system it measured. */
        int64_t wait_ns = rate > 0 || !out ? wake - now : 100000000;
        if (wait_ns < 0) wait_ns = 0;
        if (wait_ns > 100000000) wait_ns = 100000000;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait_ns};
        int ne = epoll_pwait2(ep, evs, 256, &ts, NULL);
        for (int e = 0; e < ne; e++) {
            wconn *c = evs[e].data.ptr;
            int status = 0, rc = wconn_read(c, &status);
            if (rc == 0) continue;
            if (rc < 0) {
                wconn_drop(ep, c);
                continue;
            }
            c->busy = false;
            atomic_fetch_add(status == 202 ? &ok : &bad, 1);
            long i = atomic_fetch_add(&nsamples, 1);
            if (i < SAMPLES_MAX) samples[i] = (float)((now_ns() - c->t0) / 1e6);
        }
    }
    for (int i = 0; i < connections; i++)
        if (cs[i].fd >= 0) close(cs[i].fd);
    free(cs);
    close(ep);
}

/* ---- the journey scenario ------------------------------------------------ */

enum { STEP_CHARGE, STEP_TOKEN, STEP_ADMIT, STEP_HOLD, STEP_PAY, STEPS };
static const char *const step_names[STEPS] = {"charge", "token", "admission", "hold", "pay"};
static float *step_samples[STEPS];
static _Atomic long step_n[STEPS], journeys, journey_failures, next_user;
static char concert_id[64], admin_key[256];
static int max_active;              /* the bench concert's; 0: twice the connections (nobody waits) */
static _Atomic long arrivals_taken; /* open loop: arrivals handed to a user so far */
static _Atomic long late_arrivals;  /* open loop: arrivals that found every connection busy */
#define JOURNEY_PRICE 1000

/* Sends one request and reads the whole answer into buf (body at *body).
 * Returns the status or -1. */
static int http(int *fd, const char *method, const char *path, const char *extra_headers, const char *body, char *buf,
                size_t cap, char **resp_body) {
    char req[2048];
    int len =
        snprintf(req, sizeof req,
                 "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n%s",
                 method, path, host, extra_headers ? extra_headers : "", body ? strlen(body) : 0, body ? body : "");
    if (*fd < 0 && (*fd = dial()) < 0) return -1;
    if (write(*fd, req, (size_t)len) != len) goto broken;
    size_t n = 0;
    char *end = NULL;
    while (!end) {
        ssize_t r = read(*fd, buf + n, cap - n - 1);
        if (r <= 0) goto broken;
        n += (size_t)r;
        buf[n] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    const char *cl = strcasestr(buf, "Content-Length:");
    size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0, head = (size_t)(end + 4 - buf);
    if (head + want >= cap) goto broken;
    while (n < head + want) {
        ssize_t r = read(*fd, buf + n, cap - n - 1);
        if (r <= 0) goto broken;
        n += (size_t)r;
    }
    buf[n] = 0;
    *resp_body = buf + head;
    return atoi(buf + 9);
broken:
    close(*fd);
    *fd = -1;
    return -1;
}

/* The string value of "field" in a flat JSON answer. */
static bool json_field(const char *json, const char *field, char *out, size_t cap) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":\"", field);
    const char *p = strstr(json, key);
    if (!p) return false;
    p += strlen(key);
    size_t i = 0;
    while (p[i] && p[i] != '"' && i + 1 < cap) out[i] = p[i], i++;
    out[i] = 0;
    return p[i] == '"';
}

static void sample(int step, int64_t t0) {
    long i = atomic_fetch_add(&step_n[step], 1);
    if (i < SAMPLES_MAX / STEPS) step_samples[step][i] = (float)((now_ns() - t0) / 1e6);
}

static void *journey_worker(void *arg) {
    (void)arg;
    int fd = -1;
    char buf[16384], path[256], body[512], headers[CT_AUTH_TOKEN_BYTES_MAX + 256], token[64], reservation[128];
    char *rb = NULL;
    char wait[CT_AUTH_TOKEN_BYTES_MAX + 64];
    while (now_ns() < t_end_ns) {
        int64_t t0 = now_ns();
        if (rate > 0) {
            /* Open loop: arrival k is due at start + k / rate whatever the
             * answers do; a user who finds every connection busy starts
             * late, and the wait counts in the first step's latency (no
             * coordinated omission). */
            long k = atomic_fetch_add(&arrivals_taken, 1);
            int64_t due = t_start_ns + (int64_t)((double)k * 1e9 / rate);
            if (due >= t_end_ns) break;
            if (due > t0) {
                struct timespec ts = {.tv_sec = (due - t0) / 1000000000, .tv_nsec = (due - t0) % 1000000000};
                nanosleep(&ts, NULL);
            } else if (t0 - due > 1000000) {
                atomic_fetch_add(&late_arrivals, 1);
            }
            t0 = due;
        }
        long u = atomic_fetch_add(&next_user, 1);
        char user[96];
        snprintf(user, sizeof user, "j%ld-%.24s", u, concert_id);
        if (user_auth(user, wait, sizeof wait - 32) != 0) goto failed;
        strcat(wait, "Prefer: wait=30\r\n");
        snprintf(path, sizeof path, "/v1/users/%s/balance/charge", user);
        snprintf(body, sizeof body, "{\"amount\":%d}", JOURNEY_PRICE);
        if (http(&fd, "POST", path, wait, body, buf, sizeof buf, &rb) != 200) goto failed;
        sample(STEP_CHARGE, t0);
        t0 = now_ns();
        snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"concert_id\":\"%s\"}", user, concert_id);
        if (http(&fd, "POST", "/v1/queue/tokens", wait, body, buf, sizeof buf, &rb) != 201 ||
            !json_field(rb, "token", token, sizeof token))
            goto failed;
        sample(STEP_TOKEN, t0);
        t0 = now_ns();
        snprintf(path, sizeof path, "/v1/queue/tokens/%s", token);
        /* The outcome already says whether the token is ACTIVE
         * (admitted at once: nobody waits and a slot is free), as a fan's
         * client reads it; only a token still WAITING is read again. */
        char status[32] = "";
        const char *result = strstr(rb, "\"result\":{");
        if (!result || !json_field(result, "status", status, sizeof status)) status[0] = 0;
        /* A fan waits for admission with a long poll (Prefer: wait): the
         * ingress answers when the token is admitted. A server that answers
         * WAITING at once (no long poll) is polled every 20 ms. */
        while (strcmp(status, "ACTIVE") != 0) {
            int64_t asked = now_ns();
            if (http(&fd, "GET", path, wait, NULL, buf, sizeof buf, &rb) != 200 ||
                !json_field(rb, "status", status, sizeof status) || now_ns() > t_end_ns + 30000000000LL)
                goto failed;
            if (strcmp(status, "ACTIVE") != 0 && now_ns() - asked < 10000000) usleep(20000);
        }
        sample(STEP_ADMIT, t0);
        t0 = now_ns();
        snprintf(headers, sizeof headers, "%sX-Queue-Token: %s\r\n", wait, token);
        snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"concert_id\":\"%s\",\"schedule_id\":\"1\",\"seat_no\":%ld}",
                 user, concert_id, u + 1);
        if (http(&fd, "POST", "/v1/reservations", headers, body, buf, sizeof buf, &rb) != 201 ||
            !json_field(rb, "reservation_id", reservation, sizeof reservation))
            goto failed;
        sample(STEP_HOLD, t0);
        t0 = now_ns();
        snprintf(body, sizeof body, "{\"user_id\":\"%s\",\"reservation_id\":\"%s\"}", user, reservation);
        if (http(&fd, "POST", "/v1/payments", headers, body, buf, sizeof buf, &rb) != 200) goto failed;
        sample(STEP_PAY, t0);
        atomic_fetch_add(&journeys, 1);
        continue;
    failed:
        atomic_fetch_add(&journey_failures, 1);
        if (journey_failures <= 5) fprintf(stderr, "journey of %s failed at: %.300s\n", user, rb ? rb : "(no answer)");
    }
    if (fd >= 0) close(fd);
    return NULL;
}

static int create_concert(int seats) {
    int fd = -1;
    char buf[8192], body[512], headers[320];
    char *rb = NULL;
    snprintf(headers, sizeof headers, "Authorization: Bearer %s\r\nPrefer: wait=30\r\n", admin_key);
    snprintf(body, sizeof body,
             "{\"title\":\"bench\",\"max_active\":%d,\"active_ttl_ms\":600000,\"hold_ttl_ms\":600000,"
             "\"schedules\":[{\"starts_at\":1893456000000,\"seats\":%d,\"price\":%d}]}",
             max_active > 0 ? max_active : connections * 2, seats, JOURNEY_PRICE);
    int st = http(&fd, "POST", "/v1/admin/concerts", headers, body, buf, sizeof buf, &rb);
    if (fd >= 0) close(fd);
    if (st != 201 || !json_field(rb, "concert_id", concert_id, sizeof concert_id)) {
        fprintf(stderr, "error: cannot create the bench concert: %d %.300s\n", st, rb ? rb : "");
        return -1;
    }
    return 0;
}

/* ---- CPU per component ---------------------------------------------------- */

/* The last is part of "kafka": its JIT compiler threads, which on two cores
 * take most of a core for the first minutes under load and a few percent
 * once the brokers are warm (docs/decisions.md): a figure taken while it
 * is high is not the brokers' steady state. */
#define COMPONENTS 9
#define KAFKA 5
#define KAFKA_JIT 8
static const char *const component_names[COMPONENTS] = {"ingress", "relay", "processor",     "projector", "postgres",
                                                        "kafka",   "bench", "other concert", "kafka jit"};

/* The utime + stime ticks in a /proc stat file's text. */
static long long stat_ticks(const char *path) {
    char stat[1024];
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = 0;
    const char *rp = strrchr(stat, ')'); /* the command name may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (rp && sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
        return (long long)(ut + st);
    return 0;
}

/* The ticks of a JVM's C1/C2 compiler threads. */
static long long jit_ticks(const char *pid) {
    char p[600];
    snprintf(p, sizeof p, "/proc/%s/task", pid);
    DIR *d = opendir(p);
    long long t = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        char comm[64] = "";
        snprintf(p, sizeof p, "/proc/%s/task/%s/comm", pid, e->d_name);
        FILE *f = fopen(p, "r");
        if (!f) continue;
        if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
        fclose(f);
        if (strncmp(comm, "C1 Compiler", 11) != 0 && strncmp(comm, "C2 Compiler", 11) != 0) continue;
        snprintf(p, sizeof p, "/proc/%s/task/%s/stat", pid, e->d_name);
        t += stat_ticks(p);
    }
    if (d) closedir(d);
    return t;
}

/* CPU ticks used so far per component, from /proc/<pid>/stat. */
static void cpu_ticks(long long out[COMPONENTS]) {
    memset(out, 0, sizeof(long long) * COMPONENTS);
    DIR *d = opendir("/proc");
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!isdigit((unsigned char)e->d_name[0])) continue;
        char p[300], cmd[512] = "";
        snprintf(p, sizeof p, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f) continue;
        size_t n = fread(cmd, 1, sizeof cmd - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i++)
            if (!cmd[i]) cmd[i] = ' ';
        cmd[n] = 0;
        int c = -1;
        if (strstr(cmd, "ct_bench_load"))
            c = 6;
        else if (strstr(cmd, "postgres"))
            c = 4;
        else if (strstr(cmd, "java") && strstr(cmd, "kafka"))
            c = KAFKA;
        else if (strstr(cmd, "concert ingress"))
            c = 0;
        else if (strstr(cmd, "concert relay"))
            c = 1;
        else if (strstr(cmd, "concert processor"))
            c = 2;
        else if (strstr(cmd, "concert projector"))
            c = 3;
        else if (strstr(cmd, "concert "))
            c = 7;
        if (c < 0) continue;
        snprintf(p, sizeof p, "/proc/%s/stat", e->d_name);
        out[c] += stat_ticks(p);
        if (c == KAFKA) out[KAFKA_JIT] += jit_ticks(e->d_name);
    }
    if (d) closedir(d);
}

static void print_cpu(const long long before[COMPONENTS], double secs) {
    long long after[COMPONENTS];
    cpu_ticks(after);
    long hz = sysconf(_SC_CLK_TCK);
    printf("cpu %% of one core over the run:");
    for (int c = 0; c < KAFKA_JIT; c++) {
        if (after[c] - before[c] <= 0) continue;
        printf(" %s=%.0f", component_names[c], 100.0 * (double)(after[c] - before[c]) / (double)hz / secs);
        if (c == KAFKA)
            printf(" (jit %.0f)", 100.0 * (double)(after[KAFKA_JIT] - before[KAFKA_JIT]) / (double)hz / secs);
    }
    printf("\n");
}

/* A counter of the ingress's /metrics, or -1 when it cannot be read. */
static double ingress_metric(const char *name) {
    int fd = -1;
    char buf[65536], *body = NULL, auth[320] = "";
    double v = -1;
    const char *k = getenv("CONCERT_ADMIN_KEY"); /* the metrics are the operators' */
    if (k && *k) snprintf(auth, sizeof auth, "Authorization: Bearer %.256s\r\n", k);
    if (http(&fd, "GET", "/metrics", auth, NULL, buf, sizeof buf, &body) == 200) {
        size_t len = strlen(name);
        for (const char *p = strstr(body, name); p; p = strstr(p + 1, name))
            if ((p == body || p[-1] == '\n') && p[len] == ' ') {
                v = atof(p + len + 1);
                break;
            }
    }
    if (fd >= 0) close(fd);
    return v;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static long max_id(PGconn *pg) {
    PGresult *r = PQexec(pg, "SELECT coalesce(max(id), 0) FROM outbox");
    long v = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return v;
}

int main(int argc, char **argv) {
    bool pg_report = false, journey_mode = false;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--url") == 0 && v && sscanf(v, "http://%63[^:]:%d", host, &port) == 2)
            i++;
        else if (strcmp(argv[i], "--connections") == 0 && v && (connections = atoi(v)) > 0)
            i++;
        else if (strcmp(argv[i], "--duration") == 0 && v && (duration_s = atoi(v)) > 0)
            i++;
        else if (strcmp(argv[i], "--rate") == 0 && v && (rate = atof(v)) >= 0)
            i++;
        else if (strcmp(argv[i], "--max-active") == 0 && v && (max_active = atoi(v)) > 0)
            i++;
        else if (strcmp(argv[i], "--pg") == 0)
            pg_report = true;
        else if (strcmp(argv[i], "--scenario") == 0 && v && (strcmp(v, "write") == 0 || strcmp(v, "journey") == 0))
            journey_mode = strcmp(v, "journey") == 0, i++;
        else {
            fprintf(stderr, "usage: ct_bench_load [--url http://HOST:PORT] [--connections N] [--duration S] [--rate R] "
                            "[--pg] [--scenario write|journey] [--max-active N]\n");
            return 2;
        }
    }
    ct_config acfg;
    ct_error aerr = {0};
    if (ct_config_load_env(&acfg, &aerr) != 0 || ct_auth_key_load(&acfg, false, auth_key, &aerr) != 1) {
        fprintf(stderr,
                "error: no key to sign users' tokens with: set CONCERT_AUTH_KEY, or CONCERT_DATA_DIR to the"
                " pipeline's (%s)\n",
                aerr.msg[0] ? aerr.msg : "no auth.key there");
        return 2;
    }
    if (!journey_mode) {
        if (!(write_auth = malloc(sizeof *write_auth * WRITE_USERS))) return 1;
        for (unsigned u = 0; u < WRITE_USERS; u++) {
            char user[16];
            snprintf(user, sizeof user, "u%u", u);
            if (user_auth(user, write_auth[u], sizeof write_auth[u]) != 0) return 1;
        }
    }
    long long cpu_before[COMPONENTS];
    if (journey_mode) {
        const char *k = getenv("CONCERT_ADMIN_KEY");
        if (!k || !*k) {
            fprintf(stderr, "error: --scenario journey needs CONCERT_ADMIN_KEY\n");
            return 2;
        }
        snprintf(admin_key, sizeof admin_key, "%s", k);
        if (create_concert(100000) != 0) return 1;
        for (int st = 0; st < STEPS; st++) step_samples[st] = malloc(sizeof(float) * (SAMPLES_MAX / STEPS));
        pthread_t *jt = calloc((size_t)connections, sizeof *jt);
        cpu_ticks(cpu_before);
        t_start_ns = now_ns();
        t_end_ns = t_start_ns + (int64_t)duration_s * 1000000000;
        pthread_attr_t attr; /* thousands of users: small stacks (each needs ~40 KiB) */
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        for (int i = 0; i < connections; i++)
            if (pthread_create(&jt[i], &attr, journey_worker, NULL) != 0) {
                fprintf(stderr, "error: cannot start user thread %d\n", i);
                return 1;
            }
        pthread_attr_destroy(&attr);
        for (int i = 0; i < connections; i++) pthread_join(jt[i], NULL);
        double secs = (now_ns() - t_start_ns) / 1e9;
        printf("journey: users=%d mode=%s duration=%ds max_active=%d concert=%s\n", connections,
               rate > 0 ? "open" : "closed", duration_s, max_active > 0 ? max_active : connections * 2, concert_id);
        if (rate > 0)
            printf("arrivals/s=%.1f late_arrivals=%ld (found every user connection busy)\n", rate, (long)late_arrivals);
        printf("journeys=%ld failed=%ld journeys/s=%.1f\n", (long)journeys, (long)journey_failures, journeys / secs);
        for (int st = 0; st < STEPS; st++) {
            long n = step_n[st] < SAMPLES_MAX / STEPS ? step_n[st] : SAMPLES_MAX / STEPS;
            float *sm = step_samples[st];
            qsort(sm, (size_t)n, sizeof *sm, cmp_float);
            printf("%-9s n=%ld ms p50=%.1f p99=%.1f p999=%.1f\n", step_names[st], n,
                   n ? sm[(long)fmin((double)n - 1, ceil(0.50 * (double)n) - 1)] : 0,
                   n ? sm[(long)fmin((double)n - 1, ceil(0.99 * (double)n) - 1)] : 0,
                   n ? sm[(long)fmin((double)n - 1, ceil(0.999 * (double)n) - 1)] : 0);
            free(sm);
        }
        print_cpu(cpu_before, secs);
        free(jt);
        return journeys > 0 ? 0 : 1;
    }
    ct_config cfg;
    ct_error err = {0};
    PGconn *pg = NULL;
    long first_id = 0;
    if (pg_report) {
        if (ct_config_load_env(&cfg, &err) != 0 || !(pg = ct_pg_connect(&cfg, NULL, &err))) {
            fprintf(stderr, "error: %s\n", err.msg);
            return 2;
        }
        first_id = max_id(pg);
    }
    samples = malloc(sizeof *samples * SAMPLES_MAX);
    double write_s0 = ingress_metric("concert_ingress_commit_write_seconds_total");
    double rows0 = ingress_metric("concert_ingress_commit_rows_total");
    double batches0 = ingress_metric("concert_ingress_commit_batches_total");
    cpu_ticks(cpu_before);
    t_start_ns = now_ns();
    t_end_ns = t_start_ns + (int64_t)duration_s * 1000000000;
    run_writes();
    double secs = (now_ns() - t_start_ns) / 1e9;
    struct timespec load_end;
    clock_gettime(CLOCK_REALTIME, &load_end);
    long n = nsamples < SAMPLES_MAX ? nsamples : SAMPLES_MAX;
    qsort(samples, (size_t)n, sizeof *samples, cmp_float);
#define PCT(p) (n ? samples[(long)fmin((double)n - 1, ceil((p) * (double)n) - 1)] : 0)
    printf("load: connections=%d mode=%s duration=%ds\n", connections, rate > 0 ? "open" : "closed", duration_s);
    printf("requests=%ld 202=%ld other=%ld errors=%ld\n", (long)(ok + bad), (long)ok, (long)bad, (long)errors);
    printf("accepted/s=%.1f\n", ok / secs);
    printf("latency ms p50=%.2f p99=%.2f p999=%.2f max=%.2f\n", PCT(0.50), PCT(0.99), PCT(0.999),
           n ? samples[n - 1] : 0);
    print_cpu(cpu_before, secs);
    double write_s = ingress_metric("concert_ingress_commit_write_seconds_total") - write_s0;
    double wrows = ingress_metric("concert_ingress_commit_rows_total") - rows0;
    double batches = ingress_metric("concert_ingress_commit_batches_total") - batches0;
    /* The outbox writers take turns: busy near CONCERT_INGRESS_PG_CONNS
     * means the write path, not HTTP, bounds the rate. */
    if (write_s0 >= 0 && wrows > 0 && batches > 0)
        printf("writer: busy=%.2f rows/batch=%.1f us/row=%.1f\n", write_s / secs, wrows / batches,
               write_s * 1e6 / wrows);
    if (pg) {
        char from[32];
        snprintf(from, sizeof from, "%ld", first_id);
        const char *p[1] = {from};
        for (int waited = 0; waited < 120; waited++) {
            PGresult *r =
                PQexecParams(pg, "SELECT count(*) FILTER (WHERE status <> 'SENT') FROM outbox WHERE id > $1::bigint", 1,
                             NULL, p, NULL, NULL, 0);
            long left = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
            PQclear(r);
            if (left == 0) break;
            sleep(1);
        }
        PGresult *r =
            PQexecParams(pg,
                         "SELECT count(*), count(*) FILTER (WHERE status = 'SENT'),"
                         " extract(epoch FROM max(sent_at) - min(created_at)) FROM outbox WHERE id > $1::bigint",
                         1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            long rows = atol(PQgetvalue(r, 0, 0)), sent = atol(PQgetvalue(r, 0, 1));
            double span = atof(PQgetvalue(r, 0, 2));
            printf("relay: rows=%ld sent=%ld publish/s=%.1f (first created .. last sent %.2fs)\n", rows, sent,
                   span > 0 ? sent / span : 0, span);
        }
        PQclear(r);
        /* Every accepted charge must end SUCCEEDED in the read model, and
         * soon: the processors and the projector keep up with the ingress
         * or their lag grows. Reports when the last outcome was written,
         * counted from the end of the load. */
        char end[32];
        snprintf(end, sizeof end, "%.3f", (double)load_end.tv_sec + load_end.tv_nsec / 1e9);
        const char *q[2] = {from, end};
        long cmds = 0, done = 0, succeeded = 0;
        double after = 0;
        for (int waited = 0; waited <= 120; waited++) {
            r = PQexecParams(pg,
                             "SELECT count(*), count(c.command_id), count(*) FILTER (WHERE c.status = 'SUCCEEDED'),"
                             " coalesce(extract(epoch FROM max(c.completed_at)) - $2::float8, 0)"
                             " FROM outbox o LEFT JOIN commands c ON c.command_id = o.command_id::text"
                             " WHERE o.id > $1::bigint",
                             2, NULL, q, NULL, NULL, 0);
            if (PQresultStatus(r) == PGRES_TUPLES_OK)
                cmds = atol(PQgetvalue(r, 0, 0)), done = atol(PQgetvalue(r, 0, 1)),
                succeeded = atol(PQgetvalue(r, 0, 2)), after = atof(PQgetvalue(r, 0, 3));
            PQclear(r);
            if (done == cmds) break;
            sleep(1);
        }
        printf("outcomes: commands=%ld with_outcome=%ld succeeded=%ld last outcome %.2fs after the load stopped\n",
               cmds, done, succeeded, after);
        PQfinish(pg);
    }
    free(samples);
    return ok > 0 ? 0 : 1;
}
