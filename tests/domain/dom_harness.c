/* dom_harness: see dom_harness.h. */
#include "dom_harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

void dom_init(dom *d) {
    memset(d, 0, sizeof *d);
    d->concert = ct_memkv_new();
    d->wallet = ct_memkv_new();
    d->fx = ct_effects_new();
    cr_assert(d->concert && d->wallet && d->fx);
}

void dom_fini(dom *d) {
    ct_memkv_destroy(d->concert);
    ct_memkv_destroy(d->wallet);
    ct_effects_destroy(d->fx);
}

ct_id dom_id(const char *s) {
    ct_id id = {0};
    cr_assert_eq(ct_id_set(&id, s), 0, "bad test id '%s'", s);
    return id;
}

void dom_envelope(dom *d, ct_cmd *c, ct_cmd_type t, int64_t ts, const char *key) {
    memset(c, 0, sizeof *c);
    d->next_rec++;
    c->type = t;
    c->ts_ms = ts;
    c->id_len = (uint8_t)snprintf(c->id, sizeof c->id, "r%llu", (unsigned long long)d->next_rec);
    char cid[32];
    snprintf(cid, sizeof cid, "c%llu", (unsigned long long)d->next_rec);
    c->command_id = dom_id(cid);
    if (key) c->key = dom_id(key);
}

ct_cmd dom_create(dom *d, int64_t ts, const char *concert, uint32_t schedules, uint32_t seats, int64_t price,
                  uint32_t max_active, int64_t active_ttl_ms, int64_t hold_ttl_ms) {
    ct_cmd c;
    dom_envelope(d, &c, CT_CMD_CREATE_CONCERT, ts, concert);
    ct_create_concert *x = &c.u.create_concert;
    x->concert_id = dom_id(concert);
    x->title_len = (uint16_t)snprintf(x->title, sizeof x->title, "Concert %s", concert);
    x->max_active = max_active;
    x->active_ttl_ms = active_ttl_ms;
    x->hold_ttl_ms = hold_ttl_ms;
    x->schedule_count = schedules;
    for (uint32_t i = 0; i < schedules; i++) {
        char sid[16];
        snprintf(sid, sizeof sid, "s%u", i + 1);
        x->schedules[i].schedule_id = dom_id(sid);
        x->schedules[i].starts_at_ms = 1800000000000 + i;
        x->schedules[i].seats = seats;
        x->schedules[i].price_won = price;
    }
    return c;
}

ct_cmd dom_issue(dom *d, int64_t ts, const char *token, const char *user, const char *concert) {
    ct_cmd c;
    dom_envelope(d, &c, CT_CMD_ISSUE_TOKEN, ts, concert);
    c.u.issue_token.token = dom_id(token);
    c.u.issue_token.user_id = dom_id(user);
    c.u.issue_token.concert_id = dom_id(concert);
    return c;
}

ct_cmd dom_hold(dom *d, int64_t ts, const char *res, const char *token, const char *user, const char *concert,
                const char *schedule, uint32_t seat) {
    ct_cmd c;
    dom_envelope(d, &c, CT_CMD_HOLD_SEAT, ts, concert);
    c.u.hold_seat.reservation_id = dom_id(res);
    c.u.hold_seat.token = dom_id(token);
    c.u.hold_seat.user_id = dom_id(user);
    c.u.hold_seat.concert_id = dom_id(concert);
    c.u.hold_seat.schedule_id = dom_id(schedule);
    c.u.hold_seat.seat_no = seat;
    return c;
}

ct_cmd dom_pay(dom *d, int64_t ts, const char *payment, const char *res, const char *token, const char *user,
               const char *concert) {
    ct_cmd c;
    dom_envelope(d, &c, CT_CMD_REQUEST_PAYMENT, ts, concert);
    c.u.request_payment.payment_id = dom_id(payment);
    c.u.request_payment.reservation_id = dom_id(res);
    c.u.request_payment.token = dom_id(token);
    c.u.request_payment.user_id = dom_id(user);
    c.u.request_payment.concert_id = dom_id(concert);
    return c;
}

ct_cmd dom_settled(dom *d, int64_t ts, const char *concert, const char *payment, const char *res, const char *user,
                   int64_t amount, bool ok, ct_reason reason) {
    ct_cmd c;
    dom_envelope(d, &c, CT_CMD_PAYMENT_SETTLED, ts, concert);
    c.u.payment_settled.payment_id = dom_id(payment);
    c.u.payment_settled.reservation_id = dom_id(res);
    c.u.payment_settled.user_id = dom_id(user);
    c.u.payment_settled.amount_won = amount;
    c.u.payment_settled.ok = ok;
    c.u.payment_settled.reason = reason;
    return c;
}

ct_cmd dom_tick(dom *d, int64_t ts) {
    ct_cmd c;
    dom_envelope(d, &c, CT_CMD_TICK, ts, NULL);
    c.command_id.len = 0;
    c.command_id.s[0] = '\0';
    return c;
}

ct_cmd dom_charge(dom *d, int64_t ts, const char *user, int64_t amount) {
    ct_cmd c;
    dom_envelope(d, &c, CT_CMD_CHARGE_BALANCE, ts, user);
    c.u.charge_balance.user_id = dom_id(user);
    c.u.charge_balance.amount_won = amount;
    return c;
}

ct_cmd dom_debit(dom *d, int64_t ts, const char *payment, const char *res, const char *user, const char *concert,
                 int64_t amount) {
    ct_cmd c;
    dom_envelope(d, &c, CT_CMD_DEBIT_REQUESTED, ts, user);
    c.u.debit_requested.payment_id = dom_id(payment);
    c.u.debit_requested.reservation_id = dom_id(res);
    c.u.debit_requested.user_id = dom_id(user);
    c.u.debit_requested.concert_id = dom_id(concert);
    c.u.debit_requested.amount_won = amount;
    return c;
}

ct_cmd dom_refund(dom *d, int64_t ts, const char *payment, const char *user, int64_t amount) {
    ct_cmd c;
    dom_envelope(d, &c, CT_CMD_REFUND_REQUESTED, ts, user);
    c.u.refund_requested.payment_id = dom_id(payment);
    c.u.refund_requested.user_id = dom_id(user);
    c.u.refund_requested.amount_won = amount;
    c.u.refund_requested.reason = CT_REASON_PAYMENT_NOT_PENDING;
    return c;
}

int dom_try(dom *d, const ct_cmd *c) {
    ct_error_clear(&d->err);
    ct_role role = ct_cmd_type_role(c->type);
    ct_memkv *kv = role == CT_ROLE_WALLET ? d->wallet : d->concert;
    ct_kv_port port = ct_memkv_port(kv);
    int rc = ct_domain_apply(role ? role : CT_ROLE_CONCERT, &port, c, d->fx, &d->err);
    if (rc == 0) cr_assert_eq(ct_memkv_apply(kv, d->fx, &d->err), 0);
    return rc;
}

const ct_effects *dom_apply(dom *d, const ct_cmd *c) {
    int rc = dom_try(d, c);
    cr_assert_eq(rc, 0, "apply %s failed: %s (%s)", ct_cmd_type_name(c->type), d->err.msg, d->err.detail);
    /* every output must encode */
    for (size_t i = 0; i < ct_effects_output_count(d->fx); i++) {
        char buf[CT_OUTPUT_RECORD_BYTES_MAX];
        size_t n;
        cr_assert_eq(ct_codec_encode_effect(d->fx, i, buf, sizeof buf, &n, &d->err), 0, "%s", d->err.msg);
    }
    return d->fx;
}

const ct_out *dom_terminal(dom *d) {
    const ct_out *t = NULL;
    size_t n = 0;
    for (size_t i = 0; i < ct_effects_output_count(d->fx); i++) {
        const ct_out *o = ct_effects_output_at(d->fx, i);
        if (o->terminal) {
            t = o;
            n++;
        }
    }
    cr_assert_eq(n, 1, "expected exactly one terminal output, got %zu", n);
    return t;
}

ct_reason dom_rejection(dom *d) {
    const ct_out *t = dom_terminal(d);
    return t->type == CT_OUT_COMMAND_REJECTED ? t->reason : CT_REASON_NONE;
}

const ct_out *dom_find(dom *d, ct_out_type t) {
    for (size_t i = 0; i < ct_effects_output_count(d->fx); i++)
        if (ct_effects_output_at(d->fx, i)->type == t) return ct_effects_output_at(d->fx, i);
    return NULL;
}

size_t dom_count(dom *d, ct_out_type t) {
    size_t n = 0;
    for (size_t i = 0; i < ct_effects_output_count(d->fx); i++)
        if (ct_effects_output_at(d->fx, i)->type == t) n++;
    return n;
}

static bool get(ct_memkv *kv, const uint8_t *k, size_t kn, uint8_t *v, size_t *vn) {
    ct_kv_port p = ct_memkv_port(kv);
    ct_error err;
    int r = p.get(p.ud, k, kn, v, CT_VALUE_BYTES_MAX, vn, &err);
    cr_assert_geq(r, 0);
    return r == 1;
}

#define INSPECT(fn, type, keyexpr, kv)                  \
    uint8_t k[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX]; \
    size_t kn = keyexpr, vn;                            \
    if (!get(kv, k, kn, v, &vn)) return false;          \
    cr_assert_eq(fn(v, vn, type), 0, "corrupt value");  \
    return true;

bool dom_token(dom *d, const char *token, ct_st_token *t) {
    ct_id id = dom_id(token);
    INSPECT(ct_val_token_decode, t, ct_key_token(k, &id), d->concert)
}
bool dom_reservation(dom *d, const char *res, ct_st_reservation *r) {
    ct_id id = dom_id(res);
    INSPECT(ct_val_reservation_decode, r, ct_key_reservation(k, &id), d->concert)
}
bool dom_seat(dom *d, const char *concert, const char *schedule, uint32_t seat, ct_st_seat *s) {
    ct_id c = dom_id(concert), sc = dom_id(schedule);
    INSPECT(ct_val_seat_decode, s, ct_key_seat(k, &c, &sc, seat), d->concert)
}
bool dom_queue(dom *d, const char *concert, ct_st_queue *q) {
    ct_id c = dom_id(concert);
    INSPECT(ct_val_queue_decode, q, ct_key_queue(k, &c), d->concert)
}

int64_t dom_balance(dom *d, const char *user) {
    ct_id u = dom_id(user);
    uint8_t k[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
    size_t kn = ct_key_wallet(k, &u), vn;
    if (!get(d->wallet, k, kn, v, &vn)) return 0;
    int64_t b;
    cr_assert_eq(ct_val_i64_decode(v, vn, &b), 0);
    return b;
}

int64_t dom_clock(dom *d, ct_memkv *kv) {
    (void)d;
    uint8_t k[16], v[CT_VALUE_BYTES_MAX];
    size_t kn = ct_key_clock(k), vn;
    if (!get(kv, k, kn, v, &vn)) return 0;
    int64_t t;
    cr_assert_eq(ct_val_i64_decode(v, vn, &t), 0);
    return t;
}

/* Converts a cross-role output into the command the other role reads,
 * through the JSON codec like the real pipeline. */
static ct_cmd reroute(dom *d, const ct_effects *fx, size_t i) {
    char buf[CT_OUTPUT_RECORD_BYTES_MAX];
    size_t n;
    cr_assert_eq(ct_codec_encode_effect(fx, i, buf, sizeof buf, &n, &d->err), 0);
    ct_cmd c;
    cr_assert_eq(ct_codec_decode(buf, n, &c, &d->err), 0, "re-decode failed: %s: %s", d->err.msg, buf);
    return c;
}

const ct_effects *dom_route_saga(dom *d) {
    const ct_out *o = dom_find(d, CT_OUT_DEBIT_REQUESTED);
    cr_assert(o, "no DebitRequested to route");
    ct_cmd debit = reroute(d, d->fx, o->index);
    dom_apply(d, &debit);
    d->outcome = *dom_terminal(d);
    o = dom_find(d, CT_OUT_PAYMENT_SETTLED);
    cr_assert(o, "the wallet sent no PaymentSettled");
    ct_cmd settled = reroute(d, d->fx, o->index);
    const ct_effects *fx = dom_apply(d, &settled);
    for (size_t i = 0; i < ct_effects_output_count(fx); i++)
        cr_assert_not(ct_effects_output_at(fx, i)->terminal, "the settlement repeats the wallet's outcome, it is none");
    return fx;
}

const ct_out *dom_saga_outcome(dom *d) { return &d->outcome; }
