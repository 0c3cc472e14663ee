/* ct_bench_load: HTTP load on the ingress's write path, then the relay's
 * publish rate.
 *
 *   ct_bench_load [--url http://127.0.0.1:8080] [--connections 64]
 *                 [--duration 10] [--rate 0] [--pg]
 *
 * Each connection is a thread with a keep-alive socket posting balance
 * charges (random users). --rate 0: closed loop (next request when the
 * answer arrives). --rate R: open loop, R requests/s in total, latency
 * measured from each request's scheduled time (a stall counts against
 * latency: no coordinated omission). --pg: afterwards, waits until every
 * row written during the run is SENT and prints the relay's rate,
 * rows / (last sent_at - first created_at), from the configured Postgres. */
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ct_config.h"
#include "ct_pg.h"

#define SAMPLES_MAX (4 << 20)

static char host[64] = "127.0.0.1";
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

/* Reads one response; returns its status or -1. */
static int read_response(int fd, char *buf, size_t cap) {
    size_t n = 0;
    char *end = NULL;
    while (!end) {
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r <= 0) return -1;
        n += (size_t)r;
        buf[n] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    const char *cl = strcasestr(buf, "Content-Length:");
    size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0, have = n - (size_t)(end + 4 - buf);
    while (have < body) {
        ssize_t r = read(fd, buf, cap - 1);
        if (r <= 0) return -1;
        have += (size_t)r;
    }
    return atoi(buf + 9);
}

static void *worker(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u;
    int fd = dial();
    char req[512], buf[8192];
    double interval_ns = rate > 0 ? 1e9 * connections / rate : 0;
    int64_t next = t_start_ns + (int64_t)(interval_ns * ((uintptr_t)arg % 1000) / 1000.0);
    while (now_ns() < t_end_ns) {
        if (rate > 0) {
            int64_t w = next - now_ns();
            if (w > 0) nanosleep(&(struct timespec){w / 1000000000, w % 1000000000}, NULL);
        }
        int64_t t0 = rate > 0 ? next : now_ns();
        next += (int64_t)interval_ns;
        if (fd < 0 && (fd = dial()) < 0) {
            atomic_fetch_add(&errors, 1);
            usleep(10000);
            continue;
        }
        const char *body = "{\"amount\":1000}";
        int len = snprintf(req, sizeof req,
                           "POST /v1/users/u%u/balance/charge HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                           "Content-Length: %zu\r\n\r\n%s",
                           rand_r(&seed) % 100000, host, strlen(body), body);
        int st = write(fd, req, (size_t)len) == len ? read_response(fd, buf, sizeof buf) : -1;
        if (st < 0) {
            atomic_fetch_add(&errors, 1);
            close(fd);
            fd = -1;
            continue;
        }
        atomic_fetch_add(st == 202 ? &ok : &bad, 1);
        long i = atomic_fetch_add(&nsamples, 1);
        if (i < SAMPLES_MAX) samples[i] = (float)((now_ns() - t0) / 1e6);
    }
    if (fd >= 0) close(fd);
    return NULL;
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
    bool pg_report = false;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--url") == 0 && v && sscanf(v, "http://%63[^:]:%d", host, &port) == 2) i++;
        else if (strcmp(argv[i], "--connections") == 0 && v && (connections = atoi(v)) > 0) i++;
        else if (strcmp(argv[i], "--duration") == 0 && v && (duration_s = atoi(v)) > 0) i++;
        else if (strcmp(argv[i], "--rate") == 0 && v && (rate = atof(v)) >= 0) i++;
        else if (strcmp(argv[i], "--pg") == 0) pg_report = true;
        else {
            fprintf(stderr, "usage: ct_bench_load [--url http://HOST:PORT] [--connections N] [--duration S] [--rate R] [--pg]\n");
            return 2;
        }
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
    pthread_t *t = calloc((size_t)connections, sizeof *t);
    t_start_ns = now_ns();
    t_end_ns = t_start_ns + (int64_t)duration_s * 1000000000;
    for (int i = 0; i < connections; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < connections; i++) pthread_join(t[i], NULL);
    double secs = (now_ns() - t_start_ns) / 1e9;
    long n = nsamples < SAMPLES_MAX ? nsamples : SAMPLES_MAX;
    qsort(samples, (size_t)n, sizeof *samples, cmp_float);
#define PCT(p) (n ? samples[(long)fmin((double)n - 1, ceil((p) * (double)n) - 1)] : 0)
    printf("load: connections=%d mode=%s duration=%ds\n", connections, rate > 0 ? "open" : "closed", duration_s);
    printf("requests=%ld 202=%ld other=%ld errors=%ld\n", (long)(ok + bad), (long)ok, (long)bad, (long)errors);
    printf("accepted/s=%.1f\n", ok / secs);
    printf("latency ms p50=%.2f p99=%.2f p999=%.2f max=%.2f\n", PCT(0.50), PCT(0.99), PCT(0.999), n ? samples[n - 1] : 0);
    if (pg) {
        char from[32];
        snprintf(from, sizeof from, "%ld", first_id);
        const char *p[1] = {from};
        for (int waited = 0; waited < 120; waited++) {
            PGresult *r = PQexecParams(pg, "SELECT count(*) FILTER (WHERE status <> 'SENT') FROM outbox WHERE id > $1::bigint",
                                       1, NULL, p, NULL, NULL, 0);
            long left = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
            PQclear(r);
            if (left == 0) break;
            sleep(1);
        }
        PGresult *r = PQexecParams(pg,
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
        PQfinish(pg);
    }
    free(samples);
    free(t);
    return ok > 0 ? 0 : 1;
}
