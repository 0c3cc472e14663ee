/*
 * Seeded simulation of both roles (the domain's VOPR): random commands
 * across users, seats, payments, charges and ticks; DebitRequested /
 * RefundRequested routed to a wallet partition and PaymentSettled back,
 * through the JSON codec, like the real pipeline.
 *
 * After every record it checks DESIGN.md section 11:
 *   1. no seat held or sold by two reservations at once (event model, and
 *      every seat key the record wrote agrees with it);
 *   2. every balance >= 0 and = charged - debited + refunded (per user);
 *   3. every command has exactly one terminal outcome (none twice; all by
 *      the end, once the saga messages are drained);
 *   6. only an ACTIVE token of that user and concert holds a seat; at most
 *      max_active tokens are active per concert (events and stored counter).
 * and across runs:
 *   - the same seed gives byte-identical outputs and state;
 *   - ticks inserted at random (each stamped at or before the next record,
 *     as the ticker's records are) give the same final state as no ticks,
 *     once both runs have reached the same final time.
 *
 * A run issues CT_PROP_COMMANDS commands (default 100,000; CT_PROP_STEPS is
 * its old name): fresh records of every kind, counted as they are made, so
 * generator steps that issue nothing (a delivery with an empty queue, a
 * tick, a payment before any hold) do not count. Saga messages routed
 * between the roles and ticks come on top. CT_PROP_SEED (default 20240601)
 * sets the seed; every failure message names the seed and step.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ct_codec.h"
#include "ct_hash.h"
#include "ct_domain.h"
#include "ct_memkv.h"
#include "ct_state.h"

#define USERS 8
#define SCHEDULES 2
#define SEATS 10
#define MAX_ACTIVE 4
#define ACTIVE_TTL 60000
#define HOLD_TTL 8000
#define CONCERT_EVERY_STEPS 800 /* sold seats stay sold: open new concerts */
#define T_START INT64_C(1700000000000)

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rnext(rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static uint64_t rbelow(rng *r, uint64_t n) { return rnext(r) % n; }

typedef struct queue {
    ct_cmd *v;
    size_t head, len, cap;
} queue;

static void q_push(queue *q, const ct_cmd *c) {
    if (q->head + q->len == q->cap) {
        if (q->head > 0) {
            memmove(q->v, q->v + q->head, q->len * sizeof *q->v);
            q->head = 0;
        } else {
            q->cap = q->cap ? q->cap * 2 : 64;
            q->v = realloc(q->v, q->cap * sizeof *q->v);
            cr_assert(q->v);
        }
    }
    q->v[q->head + q->len++] = *c;
}
static bool q_pop(queue *q, ct_cmd *c) {
    if (!q->len) return false;
    *c = q->v[q->head++];
    q->len--;
    return true;
}

enum { EXPECT_TERMINAL = 1, EXPECT_NONE = 2 };

typedef struct sim {
    uint64_t seed;
    long target, step; /* commands to issue; generator step */
    bool ticks;
    rng r, rt;
    ct_memkv *ckv, *wkv;
    ct_effects *fx;
    int64_t gen_ms, concert_clock;
    int pending_ticks;
    queue win, cin;
    ct_cmd last_settled;
    bool have_settled;
    uint64_t n_tok, n_res, n_pay, n_cmd, n_rec, n_tick, n_forge, n_stray;
    uint64_t n_applied;          /* every record applied: commands, routed saga messages, copies, ticks */
    size_t cap_cmd, cap_concert; /* sizes of the per-command and per-concert arrays */
    /* model */
    uint8_t *tok_status, *tok_user, *res_user;
    uint32_t *tok_concert, *res_concert;
    uint64_t *res_token;
    uint64_t n_concert;
    uint64_t (*seat_owner)[SCHEDULES][SEATS + 1]; /* [concert]: reservation index + 1, 0 = free */
    uint8_t (*seat_sold)[SCHEDULES][SEATS + 1];
    int *active; /* [concert] */
    int64_t charged[USERS], debited[USERS], refunded[USERS];
    uint8_t *term, *expect;
    uint64_t hash, outputs;
    uint64_t count[CT_OUT_TYPE_COUNT_];
    uint64_t reasons[CT_REASON_COUNT_];
    ct_error err;
} sim;

#define FAIL(s, ...)                                                                                              \
    do {                                                                                                          \
        char m_[1024];                                                                                            \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                                     \
        cr_assert_fail("seed=%llu step=%ld (replay: CT_PROP_SEED=%llu CT_PROP_COMMANDS=%ld): %s",                 \
                       (unsigned long long)(s)->seed, (s)->step, (unsigned long long)(s)->seed, (s)->target, m_); \
    } while (0)
#define CHECK(s, cond, ...)                \
    do {                                   \
        if (!(cond)) FAIL(s, __VA_ARGS__); \
    } while (0)

static uint64_t env_u64(const char *name, uint64_t dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    return strtoull(v, NULL, 10);
}

static uint64_t id_num(const ct_id *id) { return strtoull(id->s + 1, NULL, 10); }

static void sim_init(sim *s, uint64_t seed, long target, bool ticks) {
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->target = target;
    s->ticks = ticks;
    s->r.s = seed;
    s->rt.s = seed ^ 0x5eedull;
    s->ckv = ct_memkv_new();
    s->wkv = ct_memkv_new();
    s->fx = ct_effects_new();
    /* A step issues at most two commands (a new concert and one more), so
     * n_cmd, n_tok and n_res stay below target + 2. */
    size_t n = (size_t)target + 64;
    s->cap_cmd = n;
    s->tok_status = calloc(n, 1);
    s->tok_user = calloc(n, 1);
    s->tok_concert = calloc(n, sizeof(uint32_t));
    s->res_user = calloc(n, 1);
    s->res_concert = calloc(n, sizeof(uint32_t));
    s->res_token = calloc(n, sizeof(uint64_t));
    size_t nc = (size_t)target / CONCERT_EVERY_STEPS + 4; /* grown by create_concert */
    s->cap_concert = nc;
    s->seat_owner = calloc(nc, sizeof *s->seat_owner);
    s->seat_sold = calloc(nc, sizeof *s->seat_sold);
    s->active = calloc(nc, sizeof *s->active);
    cr_assert(s->seat_owner && s->seat_sold && s->active);
    s->term = calloc(n, 1);
    s->expect = calloc(n, 1);
    s->gen_ms = T_START;
    s->hash = ct_hash64(NULL, 0);
    cr_assert(s->ckv && s->wkv && s->fx && s->tok_status && s->term && s->expect && s->res_token);
}

static void sim_fini(sim *s) {
    ct_memkv_destroy(s->ckv);
    ct_memkv_destroy(s->wkv);
    ct_effects_destroy(s->fx);
    free(s->tok_status), free(s->tok_user), free(s->tok_concert);
    free(s->res_user), free(s->res_concert), free(s->res_token);
    free(s->term), free(s->expect);
    free(s->seat_owner), free(s->seat_sold), free(s->active);
    free(s->win.v), free(s->cin.v);
}

static ct_id mkid(char p, uint64_t n) {
    ct_id id;
    char b[32];
    snprintf(b, sizeof b, "%c%llu", p, (unsigned long long)n);
    cr_assert_eq(ct_id_set(&id, b), 0);
    return id;
}

/* A new command record with id "i<n>" and command id "k<n>". */
static void envelope(sim *s, ct_cmd *c, ct_cmd_type t, const ct_id *key, uint8_t expect) {
    memset(c, 0, sizeof *c);
    c->type = t;
    c->ts_ms = s->gen_ms;
    uint64_t n = ++s->n_cmd;
    CHECK(s, n < s->cap_cmd, "command %llu beyond the model's %zu", (unsigned long long)n, s->cap_cmd);
    c->id_len = (uint8_t)snprintf(c->id, sizeof c->id, "i%llu", (unsigned long long)n);
    c->command_id = mkid('k', n);
    c->key = *key;
    s->expect[n] = expect;
}

/* ---- checks on each output ---------------------------------------------- */

static void model_token(sim *s, const ct_out *o, ct_token_status from, ct_token_status to) {
    uint64_t t = id_num(&o->token);
    int c = (int)id_num(&o->concert_id);
    CHECK(s, from == CT_TOKEN_NONE || s->tok_status[t] == from, "%s for token %s in state %d",
          ct_out_type_name(o->type), o->token.s, s->tok_status[t]);
    if (s->tok_status[t] == CT_TOKEN_ACTIVE) s->active[c]--;
    if (to == CT_TOKEN_ACTIVE) s->active[c]++;
    s->tok_status[t] = (uint8_t)to;
    CHECK(s, s->active[c] >= 0 && s->active[c] <= MAX_ACTIVE, "invariant 6: %d active tokens in c%d", s->active[c], c);
}

static void on_output(sim *s, const ct_out *o) {
    char buf[CT_OUTPUT_RECORD_BYTES_MAX];
    size_t n;
    CHECK(s, ct_codec_encode_effect(s->fx, o->index, buf, sizeof buf, &n, &s->err) == 0, "encode: %s", s->err.msg);
    s->hash = ct_hash64_more(ct_hash64_more(s->hash, buf, n), "\n", 1);
    s->outputs++;
    s->count[o->type]++;
    if (o->type == CT_OUT_COMMAND_REJECTED) s->reasons[o->reason]++;
    if (o->topic == CT_TOPIC_ID_WALLET_COMMANDS || o->topic == CT_TOPIC_ID_CONCERT_COMMANDS) {
        ct_cmd c;
        CHECK(s, ct_codec_decode(buf, n, &c, &s->err) == 0, "cross-role output does not decode: %s: %.200s", s->err.msg,
              buf);
        q_push(o->topic == CT_TOPIC_ID_WALLET_COMMANDS ? &s->win : &s->cin, &c);
    }
    if (o->terminal) {
        CHECK(s, o->command_id.s[0] == 'k', "terminal %s without a command id", ct_out_type_name(o->type));
        uint64_t k = id_num(&o->command_id);
        CHECK(s, s->expect[k] == EXPECT_TERMINAL, "terminal for command k%llu which expects none",
              (unsigned long long)k);
        CHECK(s, ++s->term[k] == 1, "invariant 3: command k%llu has %d terminal outcomes", (unsigned long long)k,
              s->term[k]);
    }
    int c = 0, sc = 0;
    uint32_t seat = o->seat_no;
    if (o->concert_id.len) c = (int)id_num(&o->concert_id);
    if (o->schedule_id.len) sc = (int)id_num(&o->schedule_id) - 1;
    int u = o->user_id.len ? (int)id_num(&o->user_id) : 0;
    switch (o->type) {
    case CT_OUT_TOKEN_ISSUED:
        s->tok_user[id_num(&o->token)] = (uint8_t)u;
        s->tok_concert[id_num(&o->token)] = (uint32_t)c;
        model_token(s, o, CT_TOKEN_NONE, o->token_status);
        break;
    case CT_OUT_TOKEN_ACTIVATED: model_token(s, o, CT_TOKEN_WAITING, CT_TOKEN_ACTIVE); break;
    case CT_OUT_TOKEN_EXPIRED: model_token(s, o, CT_TOKEN_ACTIVE, CT_TOKEN_EXPIRED); break;
    case CT_OUT_TOKEN_DONE: model_token(s, o, CT_TOKEN_NONE, CT_TOKEN_DONE); break;
    case CT_OUT_SEAT_HELD: {
        uint64_t t = id_num(&o->token);
        CHECK(s, s->tok_status[t] == CT_TOKEN_ACTIVE, "invariant 6: hold %s by token %s in state %d",
              o->reservation_id.s, o->token.s, s->tok_status[t]);
        CHECK(s, s->tok_user[t] == u && s->tok_concert[t] == (uint32_t)c, "invariant 6: hold with another's token");
        CHECK(s, s->seat_owner[c][sc][seat] == 0, "invariant 1: seat c%d/s%d/%u held by r%llu and %s", c, sc + 1, seat,
              (unsigned long long)s->seat_owner[c][sc][seat] - 1, o->reservation_id.s);
        s->seat_owner[c][sc][seat] = id_num(&o->reservation_id) + 1;
        break;
    }
    case CT_OUT_SEAT_HOLD_EXPIRED:
        CHECK(s, s->seat_owner[c][sc][seat] == id_num(&o->reservation_id) + 1 && !s->seat_sold[c][sc][seat],
              "expiry of a hold the seat does not have");
        s->seat_owner[c][sc][seat] = 0;
        break;
    case CT_OUT_SEAT_SOLD:
        CHECK(s, s->seat_owner[c][sc][seat] == id_num(&o->reservation_id) + 1 && !s->seat_sold[c][sc][seat],
              "invariant 1: sold a seat %s does not hold", o->reservation_id.s);
        s->seat_sold[c][sc][seat] = 1;
        break;
    case CT_OUT_BALANCE_CHARGED: s->charged[u] += o->amount_won; break;
    case CT_OUT_BALANCE_DEBITED: s->debited[u] += o->amount_won; break;
    case CT_OUT_BALANCE_REFUNDED: s->refunded[u] += o->amount_won; break;
    default: break;
    }
    if (o->type == CT_OUT_BALANCE_CHARGED || o->type == CT_OUT_BALANCE_DEBITED || o->type == CT_OUT_BALANCE_REFUNDED)
        CHECK(s, o->balance_won == s->charged[u] - s->debited[u] + s->refunded[u], "invariant 2: event balance of u%d",
              u);
}

static int64_t read_i64(ct_memkv *kv, const uint8_t *k, size_t kn) {
    ct_kv_port p = ct_memkv_port(kv);
    uint8_t v[CT_VALUE_BYTES_MAX];
    size_t vn;
    ct_error err;
    if (p.get(p.ud, k, kn, v, sizeof v, &vn, &err) != 1) return 0;
    int64_t x = -1;
    cr_assert_eq(ct_val_i64_decode(v, vn, &x), 0);
    return x;
}

static void check_state(sim *s, bool wallet) {
    if (wallet) {
        for (int u = 0; u < USERS; u++) {
            ct_id uid = mkid('u', (uint64_t)u);
            uint8_t k[CT_KEY_BYTES_MAX];
            int64_t b = read_i64(s->wkv, k, ct_key_wallet(k, &uid));
            CHECK(s, b >= 0, "invariant 2: balance of u%d is %lld", u, (long long)b);
            CHECK(s, b == s->charged[u] - s->debited[u] + s->refunded[u],
                  "invariant 2: u%d balance %lld != charged %lld - debited %lld + refunded %lld", u, (long long)b,
                  (long long)s->charged[u], (long long)s->debited[u], (long long)s->refunded[u]);
        }
        return;
    }
    for (uint64_t c = s->n_concert > 2 ? s->n_concert - 2 : 0; c < s->n_concert; c++) {
        ct_id cid = mkid('c', c);
        uint8_t k[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
        size_t kn = ct_key_queue(k, &cid), vn;
        ct_kv_port p = ct_memkv_port(s->ckv);
        if (p.get(p.ud, k, kn, v, sizeof v, &vn, &s->err) != 1) continue;
        ct_st_queue q;
        cr_assert_eq(ct_val_queue_decode(v, vn, &q), 0);
        CHECK(s, (int)q.active_count == s->active[c], "invariant 6: stored active count %u, events say %d",
              q.active_count, s->active[c]);
        CHECK(s, q.active_count <= MAX_ACTIVE, "invariant 6: %u active", q.active_count);
    }
    /* every seat the record wrote agrees with the event model */
    for (size_t i = 0; i < ct_effects_mutation_count(s->fx); i++) {
        ct_mutation m;
        ct_effects_mutation_at(s->fx, i, &m);
        if (m.key[0] != 'E') continue;
        /* E/c<n>/s<d>/<be32> */
        const uint8_t *slash = memchr(m.key + 2, '/', m.key_len - 2);
        cr_assert(slash);
        uint64_t c = strtoull((const char *)m.key + 3, NULL, 10);
        int sc = slash[2] - '1';
        uint32_t seat = (uint32_t)m.key[m.key_len - 1];
        if (m.is_delete) {
            CHECK(s, s->seat_owner[c][sc][seat] == 0, "invariant 1: seat freed in state, held in events");
            continue;
        }
        ct_st_seat st;
        cr_assert_eq(ct_val_seat_decode(m.val, m.val_len, &st), 0);
        CHECK(s, s->seat_owner[c][sc][seat] == id_num(&st.reservation_id) + 1,
              "invariant 1: seat c%llu/s%d/%u is %s in state", (unsigned long long)c, sc + 1, seat,
              st.reservation_id.s);
        CHECK(s, (st.status == CT_SEAT_SOLD) == (s->seat_sold[c][sc][seat] == 1), "seat sold state differs");
    }
}

/* ---- applying ------------------------------------------------------------ */

static void apply(sim *s, const ct_cmd *c, bool wallet);

static void apply_ticks(sim *s, int64_t upto) {
    if (!s->ticks || !s->pending_ticks) return;
    int64_t lo = s->concert_clock, hi = upto > lo ? upto : lo;
    int64_t at[8];
    int n = s->pending_ticks > 8 ? 8 : s->pending_ticks;
    for (int i = 0; i < n; i++) at[i] = lo + (int64_t)rbelow(&s->rt, (uint64_t)(hi - lo + 1));
    for (int i = 1; i < n; i++) /* ascending, like a ticker's */
        for (int j = i; j > 0 && at[j] < at[j - 1]; j--) {
            int64_t t = at[j];
            at[j] = at[j - 1];
            at[j - 1] = t;
        }
    s->pending_ticks = 0;
    for (int i = 0; i < n; i++) {
        ct_cmd t;
        memset(&t, 0, sizeof t);
        t.type = CT_CMD_TICK;
        t.ts_ms = at[i];
        t.id_len = (uint8_t)snprintf(t.id, sizeof t.id, "tick%llu", (unsigned long long)++s->n_tick);
        apply(s, &t, false);
    }
}

static void apply(sim *s, const ct_cmd *c, bool wallet) {
    if (!wallet && c->type != CT_CMD_TICK) apply_ticks(s, c->ts_ms);
    ct_memkv *kv = wallet ? s->wkv : s->ckv;
    ct_kv_port port = ct_memkv_port(kv);
    ct_error_clear(&s->err);
    s->n_applied++;
    int rc = wallet ? ct_wallet_apply(&port, c, s->fx, &s->err) : ct_concert_apply(&port, c, s->fx, &s->err);
    /* a fresh command ("i<n>"), not a routed output ("i<n>:<m>") or a copy */
    uint64_t k = c->id[0] == 'i' && !strchr(c->id, ':') ? id_num(&c->command_id) : 0;
    if (rc != 0) {
        CHECK(s, s->err.klass == CT_ERR_PERMANENT, "apply %s: %s error: %s", ct_cmd_type_name(c->type),
              ct_err_class_name(s->err.klass), s->err.msg);
        CHECK(s, k && s->expect[k] == EXPECT_NONE, "valid command %s rejected as malformed: %s",
              ct_cmd_type_name(c->type), s->err.msg);
        return;
    }
    CHECK(s, ct_memkv_apply(kv, s->fx, &s->err) == 0, "memkv: %s", s->err.msg);
    if (!wallet && c->ts_ms > s->concert_clock) s->concert_clock = c->ts_ms;
    bool debit = false;
    for (size_t i = 0; i < ct_effects_output_count(s->fx); i++) {
        const ct_out *o = ct_effects_output_at(s->fx, i);
        debit |= o->type == CT_OUT_DEBIT_REQUESTED;
        on_output(s, o);
    }
    check_state(s, wallet);
    /* a fresh command ends at once, except an accepted payment (its saga) */
    if (k && s->expect[k] == EXPECT_TERMINAL && !(c->type == CT_CMD_REQUEST_PAYMENT && debit))
        CHECK(s, s->term[k] == 1, "invariant 3: %s k%llu has %d terminal outcomes", ct_cmd_type_name(c->type),
              (unsigned long long)k, s->term[k]);
}

/* ---- the generator ------------------------------------------------------- */

static ct_id some_token(sim *s) {
    if (s->n_tok == 0 || rbelow(&s->r, 50) == 0) return mkid('t', 999999999);
    /* mostly recent tokens: those are the ones likely active */
    uint64_t span = s->n_tok < 10 ? s->n_tok : 10;
    return mkid('t', s->n_tok - rbelow(&s->r, span));
}

static void create_concert(sim *s);

/* One of the two newest concerts. */
static uint64_t some_concert(sim *s) { return s->n_concert - 1 - rbelow(&s->r, s->n_concert > 1 ? 2 : 1); }

static void step(sim *s) {
    s->gen_ms += (int64_t)rbelow(&s->r, 2500);
    if (s->step % CONCERT_EVERY_STEPS == 0) create_concert(s);
    uint64_t pick = rbelow(&s->r, 1000);
    ct_cmd c;
    if (pick < 120) { /* IssueToken */
        int u = (int)rbelow(&s->r, USERS);
        uint64_t cc = some_concert(s);
        ct_id cid = mkid('c', (uint64_t)cc);
        envelope(s, &c, CT_CMD_ISSUE_TOKEN, &cid, EXPECT_TERMINAL);
        bool dup = s->n_tok && rbelow(&s->r, 20) == 0;
        c.u.issue_token.token = dup ? mkid('t', 1 + rbelow(&s->r, s->n_tok)) : mkid('t', ++s->n_tok);
        c.u.issue_token.user_id = mkid('u', (uint64_t)u);
        c.u.issue_token.concert_id = cid;
        apply(s, &c, false);
    } else if (pick < 420) { /* HoldSeat */
        ct_id tok = some_token(s);
        uint64_t t = id_num(&tok);
        bool known = t <= s->n_tok && s->tok_status[t] != CT_TOKEN_NONE;
        int u = known && rbelow(&s->r, 10) ? s->tok_user[t] : (int)rbelow(&s->r, USERS);
        uint64_t cc = known && rbelow(&s->r, 10) ? s->tok_concert[t] : some_concert(s);
        ct_id cid = mkid('c', (uint64_t)cc);
        envelope(s, &c, CT_CMD_HOLD_SEAT, &cid, EXPECT_TERMINAL);
        bool dup = s->n_res && rbelow(&s->r, 25) == 0;
        uint64_t r = dup ? 1 + rbelow(&s->r, s->n_res) : ++s->n_res;
        c.u.hold_seat.reservation_id = mkid('r', r);
        c.u.hold_seat.token = tok;
        c.u.hold_seat.user_id = mkid('u', (uint64_t)u);
        c.u.hold_seat.concert_id = cid;
        c.u.hold_seat.schedule_id = mkid('s', rbelow(&s->r, 40) ? 1 + rbelow(&s->r, SCHEDULES) : 9);
        c.u.hold_seat.seat_no = (uint32_t)(1 + rbelow(&s->r, SEATS + (rbelow(&s->r, 20) == 0)));
        if (!dup) {
            s->res_user[r] = (uint8_t)u;
            s->res_concert[r] = (uint32_t)cc;
            s->res_token[r] = t;
        }
        apply(s, &c, false);
    } else if (pick < 570) { /* RequestPayment */
        if (!s->n_res) return;
        uint64_t span = s->n_res < 8 ? s->n_res : 8;
        uint64_t r = s->n_res - rbelow(&s->r, span);
        bool honest = rbelow(&s->r, 12) != 0;
        int u = honest ? s->res_user[r] : (int)rbelow(&s->r, USERS);
        ct_id cid = mkid('c', s->res_concert[r]);
        envelope(s, &c, CT_CMD_REQUEST_PAYMENT, &cid, EXPECT_TERMINAL);
        bool dup = s->n_pay && rbelow(&s->r, 30) == 0;
        c.u.request_payment.payment_id = dup ? mkid('p', 1 + rbelow(&s->r, s->n_pay)) : mkid('p', ++s->n_pay);
        c.u.request_payment.reservation_id = mkid('r', r);
        c.u.request_payment.token = honest || rbelow(&s->r, 2) ? mkid('t', s->res_token[r]) : some_token(s);
        c.u.request_payment.user_id = mkid('u', (uint64_t)u);
        c.u.request_payment.concert_id = cid;
        apply(s, &c, false);
    } else if (pick < 680) { /* ChargeBalance */
        int u = (int)rbelow(&s->r, USERS);
        ct_id uid = mkid('u', (uint64_t)u);
        uint64_t a = rbelow(&s->r, 100);
        int64_t amount = a < 3 ? 0 : a < 5 ? CT_CHARGE_WON_MAX + 1 : 1 + (int64_t)rbelow(&s->r, 800);
        envelope(s, &c, CT_CMD_CHARGE_BALANCE, &uid,
                 amount == 0 || amount > CT_CHARGE_WON_MAX ? EXPECT_NONE : EXPECT_TERMINAL);
        c.u.charge_balance.user_id = uid;
        c.u.charge_balance.amount_won = amount;
        apply(s, &c, true);
    } else if (pick < 800) { /* deliver to the wallet */
        if (q_pop(&s->win, &c)) apply(s, &c, true);
    } else if (pick < 920) { /* deliver to the concert processor */
        if (q_pop(&s->cin, &c)) {
            s->last_settled = c;
            s->have_settled = true;
            apply(s, &c, false);
        }
    } else if (pick < 985) { /* Tick */
        if (s->ticks) s->pending_ticks++;
    } else if (pick < 995) { /* a second copy of a settlement, under a new record id */
        if (!s->have_settled) return;
        c = s->last_settled;
        c.id_len = (uint8_t)snprintf(c.id, sizeof c.id, "dup%llu", (unsigned long long)++s->n_rec);
        apply(s, &c, false);
    } else if (pick < 997) { /* a debit for a payment the concert side never made: refunded */
        int u = (int)rbelow(&s->r, USERS);
        ct_id uid = mkid('u', (uint64_t)u);
        envelope(s, &c, CT_CMD_DEBIT_REQUESTED, &uid, EXPECT_TERMINAL); /* a debit's decision is an outcome */
        c.u.debit_requested.payment_id = mkid('y', ++s->n_stray);
        c.u.debit_requested.reservation_id = mkid('r', 1);
        c.u.debit_requested.user_id = uid;
        c.u.debit_requested.concert_id = mkid('c', some_concert(s));
        c.u.debit_requested.amount_won = 1 + (int64_t)rbelow(&s->r, 300);
        apply(s, &c, true);
    } else { /* a forged settlement for a payment nobody made */
        int u = (int)rbelow(&s->r, USERS);
        ct_id cid = mkid('c', some_concert(s));
        envelope(s, &c, CT_CMD_PAYMENT_SETTLED, &cid, EXPECT_NONE);
        c.u.payment_settled.payment_id = mkid('x', ++s->n_forge);
        c.u.payment_settled.reservation_id = mkid('r', 1);
        c.u.payment_settled.user_id = mkid('u', (uint64_t)u);
        c.u.payment_settled.amount_won = 7000;
        c.u.payment_settled.ok = true;
        apply(s, &c, false);
    }
    /* extra ticks, from their own stream so the commands stay the same */
    if (s->ticks && rbelow(&s->rt, 3) == 0) s->pending_ticks += 1 + (int)rbelow(&s->rt, 3);
}

static void create_concert(sim *s) {
    if (s->n_concert + 1 >= s->cap_concert) {
        size_t old = s->cap_concert, cap = old * 2;
        s->seat_owner = realloc(s->seat_owner, cap * sizeof *s->seat_owner);
        s->seat_sold = realloc(s->seat_sold, cap * sizeof *s->seat_sold);
        s->active = realloc(s->active, cap * sizeof *s->active);
        cr_assert(s->seat_owner && s->seat_sold && s->active);
        memset(s->seat_owner + old, 0, (cap - old) * sizeof *s->seat_owner);
        memset(s->seat_sold + old, 0, (cap - old) * sizeof *s->seat_sold);
        memset(s->active + old, 0, (cap - old) * sizeof *s->active);
        s->cap_concert = cap;
    }
    {
        uint64_t cc = s->n_concert++;
        ct_cmd c;
        ct_id cid = mkid('c', cc);
        envelope(s, &c, CT_CMD_CREATE_CONCERT, &cid, EXPECT_TERMINAL);
        ct_create_concert *x = &c.u.create_concert;
        x->concert_id = cid;
        x->title_len = (uint16_t)snprintf(x->title, sizeof x->title, "Concert %llu", (unsigned long long)cc);
        x->max_active = MAX_ACTIVE;
        x->active_ttl_ms = ACTIVE_TTL;
        x->hold_ttl_ms = HOLD_TTL;
        x->schedule_count = SCHEDULES;
        for (int i = 0; i < SCHEDULES; i++) {
            x->schedules[i].schedule_id = mkid('s', (uint64_t)i + 1);
            x->schedules[i].starts_at_ms = T_START + 86400000;
            x->schedules[i].seats = SEATS;
            x->schedules[i].price_won = 5000 + 2000 * i;
        }
        apply(s, &c, false);
    }
}

static void run(sim *s) {
    for (s->step = 0; s->n_cmd < (uint64_t)s->target; s->step++) step(s);
    /* drain the saga messages, then bring both runs to the same final time */
    ct_cmd c;
    for (;;) {
        if (q_pop(&s->win, &c))
            apply(s, &c, true);
        else if (q_pop(&s->cin, &c))
            apply(s, &c, false);
        else
            break;
    }
    memset(&c, 0, sizeof c);
    c.type = CT_CMD_TICK;
    c.ts_ms = s->gen_ms + 10 * ACTIVE_TTL;
    c.id_len = (uint8_t)snprintf(c.id, sizeof c.id, "final");
    apply(s, &c, false);
    for (uint64_t k = 1; k <= s->n_cmd; k++)
        CHECK(s, s->term[k] == (s->expect[k] == EXPECT_TERMINAL ? 1 : 0), "invariant 3 at the end: k%llu has %d",
              (unsigned long long)k, s->term[k]);
    for (uint64_t ci = 0; ci < s->n_concert; ci++)
        CHECK(s, s->active[ci] == 0, "tokens still active after the final tick");
}

static void report(const sim *s, const char *what, double secs) {
    fprintf(stderr,
            "property %s: seed=%llu commands=%llu steps=%ld records=%llu outputs=%llu in %.2fs | held=%llu sold=%llu "
            "expired=%llu failed=%llu rejected=%llu refunds=%llu ticks=%llu\n",
            what, (unsigned long long)s->seed, (unsigned long long)s->n_cmd, s->step, (unsigned long long)s->n_applied,
            (unsigned long long)s->outputs, secs, (unsigned long long)s->count[CT_OUT_SEAT_HELD],
            (unsigned long long)s->count[CT_OUT_SEAT_SOLD], (unsigned long long)s->count[CT_OUT_SEAT_HOLD_EXPIRED],
            (unsigned long long)s->count[CT_OUT_PAYMENT_FAILED], (unsigned long long)s->count[CT_OUT_COMMAND_REJECTED],
            (unsigned long long)s->count[CT_OUT_BALANCE_REFUNDED], (unsigned long long)s->n_tick);
    fprintf(stderr, "  rejections:");
    for (int r = 1; r < CT_REASON_COUNT_; r++)
        if (s->reasons[r]) fprintf(stderr, " %s=%llu", ct_reason_name((ct_reason)r), (unsigned long long)s->reasons[r]);
    fprintf(stderr, "\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

TestSuite(property, .timeout = 600);

/* The run's size: CT_PROP_COMMANDS, or its old name CT_PROP_STEPS. */
static long prop_commands(void) {
    const char *v = getenv("CT_PROP_COMMANDS");
    return (long)env_u64(v && *v ? "CT_PROP_COMMANDS" : "CT_PROP_STEPS", 100000);
}

Test(property, invariants_hold_after_every_step_and_runs_are_byte_identical) {
    uint64_t seed = env_u64("CT_PROP_SEED", 20240601);
    long target = prop_commands();
    static sim a, b;
    double t0 = now_s();
    sim_init(&a, seed, target, true);
    run(&a);
    report(&a, "run 1", now_s() - t0);
    sim_init(&b, seed, target, true);
    run(&b);
    cr_assert_geq(a.n_cmd, (uint64_t)target, "seed=%llu: %llu commands issued, %ld asked", (unsigned long long)seed,
                  (unsigned long long)a.n_cmd, target);
    cr_assert_gt(a.count[CT_OUT_SEAT_SOLD], 0, "the generator never sold a seat: it tests too little");
    cr_assert_gt(a.count[CT_OUT_SEAT_HOLD_EXPIRED], 0);
    cr_assert_gt(a.count[CT_OUT_PAYMENT_FAILED], 0);
    cr_assert_gt(a.count[CT_OUT_TOKEN_ACTIVATED], 0);
    cr_assert_gt(a.count[CT_OUT_BALANCE_REFUNDED], 0, "invariant 2's refunds never happened");
    cr_assert_eq(a.n_cmd, b.n_cmd, "seed=%llu: command counts differ", (unsigned long long)seed);
    cr_assert_eq(a.outputs, b.outputs, "seed=%llu: output counts differ", (unsigned long long)seed);
    cr_assert_eq(a.hash, b.hash, "seed=%llu: the same input gave different output bytes", (unsigned long long)seed);
    cr_assert(ct_memkv_equal(a.ckv, b.ckv, NULL), "seed=%llu: concert state differs", (unsigned long long)seed);
    cr_assert(ct_memkv_equal(a.wkv, b.wkv, NULL), "seed=%llu: wallet state differs", (unsigned long long)seed);
    sim_fini(&a);
    sim_fini(&b);
}

Test(property, ticks_at_random_intervals_give_the_same_state_as_none) {
    uint64_t seed = env_u64("CT_PROP_SEED", 20240601) + 1;
    long target = prop_commands();
    static sim none, ticks;
    double t0 = now_s();
    sim_init(&none, seed, target, false);
    run(&none);
    report(&none, "no ticks", now_s() - t0);
    t0 = now_s();
    sim_init(&ticks, seed, target, true);
    run(&ticks);
    report(&ticks, "with ticks", now_s() - t0);
    cr_assert_geq(none.n_cmd, (uint64_t)target, "seed=%llu: %llu commands issued, %ld asked", (unsigned long long)seed,
                  (unsigned long long)none.n_cmd, target);
    cr_assert_eq(none.n_tick, 0, "the run without ticks had ticks");
    cr_assert_gt(ticks.n_tick, (uint64_t)target / 10, "too few ticks to test anything");
    cr_assert_eq(none.n_cmd, ticks.n_cmd, "seed=%llu: the command sequences differ", (unsigned long long)seed);
    cr_assert(ct_memkv_equal(none.ckv, ticks.ckv, NULL), "seed=%llu: ticks changed the concert state",
              (unsigned long long)seed);
    cr_assert(ct_memkv_equal(none.wkv, ticks.wkv, NULL), "seed=%llu: ticks changed the wallet state",
              (unsigned long long)seed);
    sim_fini(&none);
    sim_fini(&ticks);
}
