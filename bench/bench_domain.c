/*
 * ct_bench_domain: benchmark (a) of issue 4 — records per second for one
 * partition through the domain core, with ct_memkv as the state port.
 *
 *   typed:  ct_concert_apply on prebuilt ct_cmd structs (+ applying the
 *           mutations to the map, reported separately and together);
 *   json:   ct_codec_decode of the record bytes + apply + mutations +
 *           ct_codec_encode of every output.
 *
 * Workload (one concert partition): 64 user sessions in flight, each
 * IssueToken -> HoldSeat -> RequestPayment -> PaymentSettled{ok}; one in
 * ten sessions abandons its hold (it and the token expire later through the
 * deadline index); a Tick every 100 records; 1 ms of logical time per
 * record. Concerts of 32 schedules x 2,000 seats are created as seats run
 * out. The wallet partition gets the matching ChargeBalance/DebitRequested
 * records, measured on their own.
 *
 * Usage: ct_bench_domain [records [concert]]   (default 2,000,000; "concert":
 * only the first figure, for profiling)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ct_codec.h"
#include "ct_domain.h"
#include "ct_memkv.h"

#define SESSIONS 64
#define CHUNK 4096
#define SCHEDULES 32
#define SEATS 2000
#define PRICE 70000

typedef struct session {
    int stage; /* 0 issue, 1 hold, 2 pay, 3 settle */
    bool abandon;
    uint64_t user, token, res, pay, concert;
    uint32_t schedule, seat;
} session;

typedef struct gen {
    int64_t now;
    uint64_t n, concert, seat, user, res, pay;
    session s[SESSIONS];
    int next;
    bool need_concert;
} gen;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_id(ct_id *id, char p, uint64_t n) {
    id->len = (uint8_t)snprintf(id->s, sizeof id->s, "%c%llu", p, (unsigned long long)n);
}

static void envelope(gen *g, ct_cmd *c, ct_cmd_type t) {
    c->type = t;
    c->ts_ms = ++g->now;
    g->n++;
    c->id_len = (uint8_t)snprintf(c->id, sizeof c->id, "in-%llu", (unsigned long long)g->n);
    set_id(&c->command_id, 'k', g->n);
}

/* The next concert-partition record. */
static void next_concert(gen *g, ct_cmd *c) {
    c->type = CT_CMD_NONE; /* no memset of the whole (large) struct: fields are set per type */
    if (g->need_concert || g->n == 0) {
        memset(c, 0, sizeof *c);
        envelope(g, c, CT_CMD_CREATE_CONCERT);
        g->concert++;
        ct_create_concert *x = &c->u.create_concert;
        set_id(&x->concert_id, 'c', g->concert);
        c->key = x->concert_id;
        x->title_len =
            (uint16_t)snprintf(x->title, sizeof x->title, "Bench concert %llu", (unsigned long long)g->concert);
        /* 1 ms of logical time per record makes the 600 s active window
         * 600,000 records long: a big sale, so the limit is not what is
         * measured (abandoned tokens stay active until they expire). */
        x->max_active = CT_MAX_ACTIVE_MAX;
        x->active_ttl_ms = CT_ACTIVE_TTL_MS_DEFAULT;
        x->hold_ttl_ms = CT_HOLD_TTL_MS_DEFAULT;
        x->schedule_count = SCHEDULES;
        for (int i = 0; i < SCHEDULES; i++) {
            set_id(&x->schedules[i].schedule_id, 's', (uint64_t)i);
            x->schedules[i].starts_at_ms = 1800000000000;
            x->schedules[i].seats = SEATS;
            x->schedules[i].price_won = PRICE;
        }
        g->seat = 0;
        g->need_concert = false;
        return;
    }
    if (g->n % 100 == 0) {
        envelope(g, c, CT_CMD_TICK);
        c->command_id.len = 0;
        c->command_id.s[0] = '\0';
        c->key.len = 0;
        c->key.s[0] = '\0';
        return;
    }
    session *s = &g->s[g->next];
    g->next = (g->next + 1) % SESSIONS;
    switch (s->stage) {
    case 0:
        s->user = ++g->user;
        s->token = s->user;
        s->concert = g->concert;
        s->abandon = s->user % 10 == 0;
        envelope(g, c, CT_CMD_ISSUE_TOKEN);
        set_id(&c->u.issue_token.token, 't', s->token);
        set_id(&c->u.issue_token.user_id, 'u', s->user);
        set_id(&c->u.issue_token.concert_id, 'c', s->concert);
        c->key = c->u.issue_token.concert_id;
        s->stage = 1;
        return;
    case 1:
        s->res = ++g->res;
        s->schedule = (uint32_t)(g->seat / SEATS);
        s->seat = (uint32_t)(g->seat % SEATS) + 1;
        if (++g->seat == (uint64_t)SEATS * SCHEDULES) g->need_concert = true;
        envelope(g, c, CT_CMD_HOLD_SEAT);
        set_id(&c->u.hold_seat.reservation_id, 'r', s->res);
        set_id(&c->u.hold_seat.token, 't', s->token);
        set_id(&c->u.hold_seat.user_id, 'u', s->user);
        set_id(&c->u.hold_seat.concert_id, 'c', s->concert);
        set_id(&c->u.hold_seat.schedule_id, 's', s->schedule);
        c->u.hold_seat.seat_no = s->seat;
        c->key = c->u.hold_seat.concert_id;
        s->stage = s->abandon ? 0 : 2;
        return;
    case 2:
        s->pay = ++g->pay;
        envelope(g, c, CT_CMD_REQUEST_PAYMENT);
        set_id(&c->u.request_payment.payment_id, 'p', s->pay);
        set_id(&c->u.request_payment.reservation_id, 'r', s->res);
        set_id(&c->u.request_payment.token, 't', s->token);
        set_id(&c->u.request_payment.user_id, 'u', s->user);
        set_id(&c->u.request_payment.concert_id, 'c', s->concert);
        c->key = c->u.request_payment.concert_id;
        s->stage = 3;
        return;
    default:
        envelope(g, c, CT_CMD_PAYMENT_SETTLED);
        set_id(&c->u.payment_settled.payment_id, 'p', s->pay);
        set_id(&c->u.payment_settled.reservation_id, 'r', s->res);
        set_id(&c->u.payment_settled.user_id, 'u', s->user);
        c->u.payment_settled.amount_won = PRICE;
        c->u.payment_settled.ok = true;
        c->u.payment_settled.reason = CT_REASON_NONE;
        set_id(&c->key, 'c', s->concert);
        s->stage = 0;
        return;
    }
}

/* The next wallet-partition record: a charge, then a debit, per user. */
static void next_wallet(gen *g, ct_cmd *c) {
    uint64_t u = g->n / 2 + 1;
    if (g->n % 2 == 0) {
        envelope(g, c, CT_CMD_CHARGE_BALANCE);
        set_id(&c->u.charge_balance.user_id, 'u', u);
        c->u.charge_balance.amount_won = PRICE;
        c->key = c->u.charge_balance.user_id;
    } else {
        envelope(g, c, CT_CMD_DEBIT_REQUESTED);
        set_id(&c->u.debit_requested.payment_id, 'p', u);
        set_id(&c->u.debit_requested.reservation_id, 'r', u);
        set_id(&c->u.debit_requested.user_id, 'u', u);
        set_id(&c->u.debit_requested.concert_id, 'c', 1);
        c->u.debit_requested.amount_won = PRICE;
        c->key = c->u.debit_requested.user_id;
    }
}

/* JSON bytes of an input record (what the processor would consume). */
static size_t to_json(const ct_cmd *c, char *b, size_t cap) {
    int n = snprintf(
        b, cap,
        "{\"id\":\"%s\",\"type\":\"%s\",\"v\":1,\"ts\":%lld,\"command_id\":\"%s\",\"key\":\"%s\",\"data\":", c->id,
        ct_cmd_type_name(c->type), (long long)c->ts_ms, c->command_id.s, c->key.s);
    const char *f = "";
    char d[4096];
    switch (c->type) {
    case CT_CMD_CREATE_CONCERT: {
        const ct_create_concert *x = &c->u.create_concert;
        int m =
            snprintf(d, sizeof d, "{\"concert_id\":\"%s\",\"title\":\"%s\",\"schedules\":[", x->concert_id.s, x->title);
        for (uint32_t i = 0; i < x->schedule_count; i++)
            m += snprintf(d + m, sizeof d - (size_t)m,
                          "%s{\"schedule_id\":\"%s\",\"starts_at\":%lld,\"seats\":%u,\"price\":%lld}", i ? "," : "",
                          x->schedules[i].schedule_id.s, (long long)x->schedules[i].starts_at_ms, x->schedules[i].seats,
                          (long long)x->schedules[i].price_won);
        snprintf(d + m, sizeof d - (size_t)m, "],\"max_active\":%u,\"active_ttl_ms\":%lld,\"hold_ttl_ms\":%lld}",
                 x->max_active, (long long)x->active_ttl_ms, (long long)x->hold_ttl_ms);
        f = d;
        break;
    }
    case CT_CMD_ISSUE_TOKEN:
        snprintf(d, sizeof d, "{\"token\":\"%s\",\"user_id\":\"%s\",\"concert_id\":\"%s\"}", c->u.issue_token.token.s,
                 c->u.issue_token.user_id.s, c->u.issue_token.concert_id.s);
        f = d;
        break;
    case CT_CMD_HOLD_SEAT:
        snprintf(
            d, sizeof d,
            "{\"reservation_id\":\"%s\",\"token\":\"%s\",\"user_id\":\"%s\",\"concert_id\":\"%s\",\"schedule_id\":\"%s\",\"seat_no\":%u}",
            c->u.hold_seat.reservation_id.s, c->u.hold_seat.token.s, c->u.hold_seat.user_id.s,
            c->u.hold_seat.concert_id.s, c->u.hold_seat.schedule_id.s, c->u.hold_seat.seat_no);
        f = d;
        break;
    case CT_CMD_REQUEST_PAYMENT:
        snprintf(
            d, sizeof d,
            "{\"payment_id\":\"%s\",\"reservation_id\":\"%s\",\"token\":\"%s\",\"user_id\":\"%s\",\"concert_id\":\"%s\"}",
            c->u.request_payment.payment_id.s, c->u.request_payment.reservation_id.s, c->u.request_payment.token.s,
            c->u.request_payment.user_id.s, c->u.request_payment.concert_id.s);
        f = d;
        break;
    case CT_CMD_PAYMENT_SETTLED:
        snprintf(d, sizeof d,
                 "{\"payment_id\":\"%s\",\"reservation_id\":\"%s\",\"user_id\":\"%s\",\"amount\":%lld,\"ok\":true}",
                 c->u.payment_settled.payment_id.s, c->u.payment_settled.reservation_id.s,
                 c->u.payment_settled.user_id.s, (long long)c->u.payment_settled.amount_won);
        f = d;
        break;
    case CT_CMD_TICK: f = "{}"; break;
    case CT_CMD_CHARGE_BALANCE:
        snprintf(d, sizeof d, "{\"user_id\":\"%s\",\"amount\":%lld}", c->u.charge_balance.user_id.s,
                 (long long)c->u.charge_balance.amount_won);
        f = d;
        break;
    case CT_CMD_DEBIT_REQUESTED:
        snprintf(
            d, sizeof d,
            "{\"payment_id\":\"%s\",\"reservation_id\":\"%s\",\"user_id\":\"%s\",\"concert_id\":\"%s\",\"amount\":%lld}",
            c->u.debit_requested.payment_id.s, c->u.debit_requested.reservation_id.s, c->u.debit_requested.user_id.s,
            c->u.debit_requested.concert_id.s, (long long)c->u.debit_requested.amount_won);
        f = d;
        break;
    default: break;
    }
    n += snprintf(b + n, cap - (size_t)n, "%s}", f);
    return (size_t)n;
}

typedef struct result {
    double core_s, store_s, codec_s;
    uint64_t records, outputs, mutations, rejected, expired;
} result;

static void die(const char *what, const ct_error *err) {
    fprintf(stderr, "ct_bench_domain: %s: %s %s\n", what, err->msg, err->detail);
    exit(1);
}

/* mode 0: typed; mode 1: JSON decode + encode around the core. */
static result run(ct_role role, long records, int mode) {
    result r = {0};
    gen g;
    memset(&g, 0, sizeof g);
    ct_memkv *kv = ct_memkv_new();
    ct_effects *fx = ct_effects_new();
    ct_cmd *cmds = malloc(CHUNK * sizeof *cmds);
    char *json = malloc((size_t)CHUNK * 4096);
    size_t *json_len = malloc(CHUNK * sizeof *json_len);
    ct_cmd *decoded = malloc(sizeof *decoded);
    char out[CT_OUTPUT_RECORD_BYTES_MAX];
    ct_error err = {0};
    if (!kv || !fx || !cmds || !json || !json_len || !decoded) die("out of memory", &err);
    ct_kv_port port = ct_memkv_port(kv);
    for (long done = 0; done < records;) {
        long n = records - done < CHUNK ? records - done : CHUNK;
        for (long i = 0; i < n; i++) {
            if (role == CT_ROLE_CONCERT)
                next_concert(&g, &cmds[i]);
            else
                next_wallet(&g, &cmds[i]);
            if (mode == 1) json_len[i] = to_json(&cmds[i], json + (size_t)i * 4096, 4096);
        }
        for (long i = 0; i < n; i++) {
            const ct_cmd *c = &cmds[i];
            double t0 = now_s();
            if (mode == 1) {
                if (ct_codec_decode(json + (size_t)i * 4096, json_len[i], decoded, &err)) die("decode", &err);
                c = decoded;
            }
            double t1 = now_s();
            if (ct_domain_apply(role, &port, c, fx, &err)) die("apply", &err);
            double t2 = now_s();
            if (ct_memkv_apply(kv, fx, &err)) die("memkv", &err);
            double t3 = now_s();
            size_t no = ct_effects_output_count(fx);
            if (mode == 1)
                for (size_t k = 0; k < no; k++) {
                    size_t len;
                    if (ct_codec_encode_effect(fx, k, out, sizeof out, &len, &err)) die("encode", &err);
                }
            double t4 = now_s();
            r.codec_s += (t1 - t0) + (t4 - t3);
            r.core_s += t2 - t1;
            r.store_s += t3 - t2;
            r.outputs += no;
            for (size_t k = 0; k < no; k++) {
                ct_out_type t = ct_effects_output_at(fx, k)->type;
                r.rejected += t == CT_OUT_COMMAND_REJECTED;
                r.expired += t == CT_OUT_SEAT_HOLD_EXPIRED || t == CT_OUT_TOKEN_EXPIRED;
            }
            r.mutations += ct_effects_mutation_count(fx);
        }
        done += n;
    }
    r.records = (uint64_t)records;
    free(decoded);
    free(json_len);
    free(json);
    free(cmds);
    ct_effects_destroy(fx);
    ct_memkv_destroy(kv);
    return r;
}

/* Timing each record with clock_gettime adds its own cost; a second pass
 * times whole chunks of the typed path to report the figure without it. */
static double run_typed_wall(ct_role role, long records) {
    gen g;
    memset(&g, 0, sizeof g);
    ct_memkv *kv = ct_memkv_new();
    ct_effects *fx = ct_effects_new();
    ct_cmd *cmds = malloc(CHUNK * sizeof *cmds);
    ct_error err = {0};
    if (!kv || !fx || !cmds) die("out of memory", &err);
    ct_kv_port port = ct_memkv_port(kv);
    double total = 0;
    for (long done = 0; done < records;) {
        long n = records - done < CHUNK ? records - done : CHUNK;
        for (long i = 0; i < n; i++) role == CT_ROLE_CONCERT ? next_concert(&g, &cmds[i]) : next_wallet(&g, &cmds[i]);
        double t0 = now_s();
        for (long i = 0; i < n; i++) {
            if (ct_domain_apply(role, &port, &cmds[i], fx, &err)) die("apply", &err);
            if (ct_memkv_apply(kv, fx, &err)) die("memkv", &err);
        }
        total += now_s() - t0;
        done += n;
    }
    free(cmds);
    ct_effects_destroy(fx);
    ct_memkv_destroy(kv);
    return total;
}

static void print(const char *name, const result *r) {
    double rec = (double)r->records;
    printf("%-34s %9.0f rec/s core | %9.0f rec/s core+memkv | %9.0f rec/s all\n", name, rec / r->core_s,
           rec / (r->core_s + r->store_s), rec / (r->core_s + r->store_s + r->codec_s));
    printf("%-34s (per record: %.2f outputs, %.2f mutations; %.2f%% rejected, %.2f%% deadline events)\n", "",
           (double)r->outputs / rec, (double)r->mutations / rec, 100.0 * (double)r->rejected / rec,
           100.0 * (double)r->expired / rec);
}

int main(int argc, char **argv) {
    long records = argc > 1 ? atol(argv[1]) : 2000000;
    if (records <= 0) records = 2000000;
    printf("ct_bench_domain: %ld records per run, one partition, in-memory port\n", records);
    double w = run_typed_wall(CT_ROLE_CONCERT, records);
    printf("%-34s %9.0f rec/s (core + memkv, chunk-timed)\n", "concert typed", (double)records / w);
    if (argc > 2 && strcmp(argv[2], "concert") == 0) return 0; /* for profiling */
    w = run_typed_wall(CT_ROLE_WALLET, records);
    printf("%-34s %9.0f rec/s (core + memkv, chunk-timed)\n", "wallet typed", (double)records / w);
    result r = run(CT_ROLE_CONCERT, records, 0);
    print("concert typed (per-record timing)", &r);
    r = run(CT_ROLE_CONCERT, records, 1);
    print("concert json decode+encode", &r);
    r = run(CT_ROLE_WALLET, records, 1);
    print("wallet json decode+encode", &r);
    return 0;
}
