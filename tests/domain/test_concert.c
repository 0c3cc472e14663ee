/* The concert state machine: every rule, every rejection, boundary times. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dom_harness.h"

#define T0 INT64_C(1700000000000)
#define ACTIVE_TTL INT64_C(600000)
#define HOLD_TTL INT64_C(300000)
#define PRICE INT64_C(50000)

static dom D;
static void setup(void) { dom_init(&D); }
static void teardown(void) { dom_fini(&D); }
TestSuite(concert, .init = setup, .fini = teardown);

/* c1: 2 schedules x 10 seats, max_active 2. tA (uA) and tB (uB) ACTIVE at
 * T0+1, tC (uC) WAITING. uA holds s1/1 as rA at T0+2. */
static void base(dom *d) {
    ct_cmd c = dom_create(d, T0, "c1", 2, 10, PRICE, 2, ACTIVE_TTL, HOLD_TTL);
    dom_apply(d, &c);
    c = dom_issue(d, T0 + 1, "tA", "uA", "c1");
    dom_apply(d, &c);
    c = dom_issue(d, T0 + 1, "tB", "uB", "c1");
    dom_apply(d, &c);
    c = dom_issue(d, T0 + 1, "tC", "uC", "c1");
    dom_apply(d, &c);
    c = dom_hold(d, T0 + 2, "rA", "tA", "uA", "c1", "s1", 1);
    dom_apply(d, &c);
    cr_assert_eq(dom_terminal(d)->type, CT_OUT_SEAT_HELD);
}

/* ---- every rejection reason, table-driven ------------------------------ */

typedef struct rej_case {
    const char *name;
    ct_cmd (*build)(dom *d);
    ct_reason want;
} rej_case;

static ct_cmd b_dup_concert(dom *d) { return dom_create(d, T0 + 3, "c1", 1, 5, 1, 1, ACTIVE_TTL, HOLD_TTL); }
static ct_cmd b_issue_unknown_concert(dom *d) { return dom_issue(d, T0 + 3, "tX", "uX", "nope"); }
static ct_cmd b_issue_dup(dom *d) { return dom_issue(d, T0 + 3, "tA", "uX", "c1"); }
static ct_cmd b_hold_unknown_concert(dom *d) { return dom_hold(d, T0 + 3, "rX", "tB", "uB", "nope", "s1", 2); }
static ct_cmd b_hold_dup(dom *d) { return dom_hold(d, T0 + 3, "rA", "tB", "uB", "c1", "s1", 2); }
static ct_cmd b_hold_unknown_schedule(dom *d) { return dom_hold(d, T0 + 3, "rX", "tB", "uB", "c1", "s9", 2); }
static ct_cmd b_hold_seat_high(dom *d) { return dom_hold(d, T0 + 3, "rX", "tB", "uB", "c1", "s1", 11); }
static ct_cmd b_hold_unknown_token(dom *d) { return dom_hold(d, T0 + 3, "rX", "tZ", "uB", "c1", "s1", 2); }
static ct_cmd b_hold_token_other_user(dom *d) { return dom_hold(d, T0 + 3, "rX", "tA", "uB", "c1", "s1", 2); }
static ct_cmd b_hold_waiting_token(dom *d) { return dom_hold(d, T0 + 3, "rX", "tC", "uC", "c1", "s1", 2); }
static ct_cmd b_hold_taken(dom *d) { return dom_hold(d, T0 + 3, "rX", "tB", "uB", "c1", "s1", 1); }
static ct_cmd b_pay_unknown_concert(dom *d) { return dom_pay(d, T0 + 3, "pX", "rA", "tA", "uA", "nope"); }
static ct_cmd b_pay_unknown_res(dom *d) { return dom_pay(d, T0 + 3, "pX", "rZ", "tA", "uA", "c1"); }
static ct_cmd b_pay_not_owner(dom *d) { return dom_pay(d, T0 + 3, "pX", "rA", "tB", "uB", "c1"); }
static ct_cmd b_pay_other_token(dom *d) { return dom_pay(d, T0 + 3, "pX", "rA", "tB", "uA", "c1"); }
static ct_cmd b_pay_expired(dom *d) { return dom_pay(d, T0 + 2 + HOLD_TTL, "pX", "rA", "tA", "uA", "c1"); }

static const rej_case rej_cases[] = {
    {"CreateConcert twice", b_dup_concert, CT_REASON_DUPLICATE},
    {"IssueToken for an unknown concert", b_issue_unknown_concert, CT_REASON_UNKNOWN_CONCERT},
    {"IssueToken with an existing token", b_issue_dup, CT_REASON_DUPLICATE},
    {"HoldSeat for an unknown concert", b_hold_unknown_concert, CT_REASON_UNKNOWN_CONCERT},
    {"HoldSeat with an existing reservation id", b_hold_dup, CT_REASON_DUPLICATE},
    {"HoldSeat on an unknown schedule", b_hold_unknown_schedule, CT_REASON_UNKNOWN_SCHEDULE},
    {"HoldSeat on seat seats+1", b_hold_seat_high, CT_REASON_INVALID_SEAT},
    {"HoldSeat with an unknown token", b_hold_unknown_token, CT_REASON_UNKNOWN_TOKEN},
    {"HoldSeat with another user's token", b_hold_token_other_user, CT_REASON_TOKEN_MISMATCH},
    {"HoldSeat with a waiting token", b_hold_waiting_token, CT_REASON_TOKEN_NOT_ACTIVE},
    {"HoldSeat on a held seat", b_hold_taken, CT_REASON_SEAT_TAKEN},
    {"RequestPayment for an unknown concert", b_pay_unknown_concert, CT_REASON_UNKNOWN_CONCERT},
    {"RequestPayment for an unknown reservation", b_pay_unknown_res, CT_REASON_UNKNOWN_RESERVATION},
    {"RequestPayment by another user", b_pay_not_owner, CT_REASON_NOT_OWNER},
    {"RequestPayment with another token", b_pay_other_token, CT_REASON_TOKEN_MISMATCH},
    {"RequestPayment at the hold deadline", b_pay_expired, CT_REASON_HOLD_EXPIRED},
};

Test(concert, every_rejection_reason_is_a_terminal_event_and_changes_nothing_else) {
    for (size_t i = 0; i < sizeof rej_cases / sizeof rej_cases[0]; i++) {
        dom d;
        dom_init(&d);
        base(&d);
        ct_cmd c = rej_cases[i].build(&d);
        size_t before = ct_memkv_count(d.concert);
        dom_apply(&d, &c);
        const ct_out *t = dom_terminal(&d);
        cr_assert_eq(t->type, CT_OUT_COMMAND_REJECTED, "%s: got %s", rej_cases[i].name, ct_out_type_name(t->type));
        cr_assert_eq(t->reason, rej_cases[i].want, "%s: reason %s, want %s", rej_cases[i].name,
                     ct_reason_name(t->reason), ct_reason_name(rej_cases[i].want));
        cr_assert_eq(t->rejected_type, c.type, "%s", rej_cases[i].name);
        cr_assert(ct_id_eq(&t->command_id, &c.command_id), "%s: terminal carries the command id", rej_cases[i].name);
        /* only time may have moved (and what its deadlines did) */
        if (c.ts_ms < T0 + 2 + HOLD_TTL)
            cr_assert_eq(ct_memkv_count(d.concert), before, "%s: a rejection wrote state", rej_cases[i].name);
        dom_fini(&d);
    }
}

Test(concert, fifth_seat_per_user_and_schedule_is_limit_exceeded) {
    base(&D);
    for (uint32_t s = 2; s <= 4; s++) {
        char r[8];
        snprintf(r, sizeof r, "rA%u", s);
        ct_cmd c = dom_hold(&D, T0 + 3, r, "tA", "uA", "c1", "s1", s);
        dom_apply(&D, &c);
        cr_assert_eq(dom_terminal(&D)->type, CT_OUT_SEAT_HELD);
    }
    ct_cmd c = dom_hold(&D, T0 + 3, "rA5", "tA", "uA", "c1", "s1", 5);
    dom_apply(&D, &c);
    cr_assert_eq(dom_rejection(&D), CT_REASON_LIMIT_EXCEEDED);
    /* another schedule has its own limit */
    c = dom_hold(&D, T0 + 3, "rA6", "tA", "uA", "c1", "s2", 5);
    dom_apply(&D, &c);
    cr_assert_eq(dom_terminal(&D)->type, CT_OUT_SEAT_HELD);
}

Test(concert, duplicate_payment_id_and_paying_a_pending_hold_are_rejected) {
    base(&D);
    ct_cmd c = dom_pay(&D, T0 + 3, "p1", "rA", "tA", "uA", "c1");
    dom_apply(&D, &c);
    cr_assert_eq(ct_effects_output_count(D.fx), 2); /* PaymentRequested + DebitRequested */
    cr_assert_null(dom_find(&D, CT_OUT_COMMAND_REJECTED));
    c = dom_pay(&D, T0 + 4, "p1", "rA", "tA", "uA", "c1");
    dom_apply(&D, &c);
    cr_assert_eq(dom_rejection(&D), CT_REASON_DUPLICATE);
    c = dom_pay(&D, T0 + 4, "p2", "rA", "tA", "uA", "c1");
    dom_apply(&D, &c);
    cr_assert_eq(dom_rejection(&D), CT_REASON_RESERVATION_NOT_HELD);
}

/* ---- catalog --------------------------------------------------------- */

Test(concert, create_concert_stores_schedules_and_emits_one_terminal) {
    ct_cmd c = dom_create(&D, T0, "c1", 3, 100, PRICE, 100, ACTIVE_TTL, HOLD_TTL);
    dom_apply(&D, &c);
    cr_assert_eq(dom_count(&D, CT_OUT_SCHEDULE_CREATED), 3);
    const ct_out *t = dom_terminal(&D);
    cr_assert_eq(t->type, CT_OUT_CONCERT_CREATED);
    cr_assert_eq(t->schedule_count, 3);
    cr_assert_str_eq(t->title, "Concert c1");
    ct_st_queue q;
    cr_assert(dom_queue(&D, "c1", &q));
    cr_assert_eq(q.next_seq, 1);
    cr_assert_eq(q.active_count, 0);
}

/* ---- waiting queue ----------------------------------------------------- */

Test(concert, tokens_beyond_max_active_wait_in_fifo_order_with_positions) {
    ct_cmd c = dom_create(&D, T0, "c1", 1, 10, PRICE, 2, ACTIVE_TTL, HOLD_TTL);
    dom_apply(&D, &c);
    const char *toks[] = {"t1", "t2", "t3", "t4", "t5"};
    const char *want_status[] = {"ACTIVE", "ACTIVE", "WAITING", "WAITING", "WAITING"};
    const uint64_t want_pos[] = {0, 0, 1, 2, 3};
    for (int i = 0; i < 5; i++) {
        char u[8];
        snprintf(u, sizeof u, "u%d", i);
        c = dom_issue(&D, T0 + 10 + i, toks[i], u, "c1");
        dom_apply(&D, &c);
        const ct_out *t = dom_terminal(&D);
        cr_assert_eq(t->type, CT_OUT_TOKEN_ISSUED);
        cr_assert_str_eq(ct_token_status_name(t->token_status), want_status[i], "%s", toks[i]);
        cr_assert_eq(t->position, want_pos[i], "%s position", toks[i]);
        cr_assert_eq(t->seq, (uint64_t)i + 1);
    }
    /* t1 expires at T0+10+ttl: t3 (the head) is admitted at that instant */
    c = dom_tick(&D, T0 + 10 + ACTIVE_TTL);
    dom_apply(&D, &c);
    const ct_out *exp = dom_find(&D, CT_OUT_TOKEN_EXPIRED);
    const ct_out *act = dom_find(&D, CT_OUT_TOKEN_ACTIVATED);
    cr_assert(exp && act);
    cr_assert_str_eq(exp->token.s, "t1");
    cr_assert_str_eq(act->token.s, "t3");
    cr_assert_eq(act->ts_ms, T0 + 10 + ACTIVE_TTL);
    cr_assert_eq(act->until_ms, T0 + 10 + 2 * ACTIVE_TTL);
    cr_assert_lt(exp->index, act->index);
    ct_st_queue q;
    cr_assert(dom_queue(&D, "c1", &q));
    cr_assert_eq(q.last_admitted_seq, 3);
    cr_assert_eq(q.active_count, 2);
    /* the next issue's position counts from the last admitted sequence */
    c = dom_issue(&D, T0 + 10 + ACTIVE_TTL, "t6", "u6", "c1");
    dom_apply(&D, &c);
    cr_assert_eq(dom_terminal(&D)->position, 3); /* seq 6 - last admitted 3 */
}

Test(concert, admission_happens_exactly_at_a_tokens_expiry) {
    base(&D); /* tA, tB active since T0+1, tC waiting */
    int64_t expiry = T0 + 1 + ACTIVE_TTL;
    /* 1 ms before: tA still active, tC still waiting */
    ct_cmd c = dom_hold(&D, expiry - 1, "r1", "tA", "uA", "c1", "s1", 2);
    dom_apply(&D, &c);
    cr_assert_eq(dom_terminal(&D)->type, CT_OUT_SEAT_HELD);
    c = dom_hold(&D, expiry - 1, "r2", "tC", "uC", "c1", "s1", 3);
    dom_apply(&D, &c);
    cr_assert_eq(dom_rejection(&D), CT_REASON_TOKEN_NOT_ACTIVE);
    /* exactly at the expiry: tA and tB are gone, tC is active */
    c = dom_hold(&D, expiry, "r3", "tA", "uA", "c1", "s1", 4);
    dom_apply(&D, &c);
    cr_assert_eq(dom_count(&D, CT_OUT_TOKEN_EXPIRED), 2);
    cr_assert_eq(dom_count(&D, CT_OUT_TOKEN_ACTIVATED), 1);
    cr_assert_eq(dom_rejection(&D), CT_REASON_TOKEN_NOT_ACTIVE);
    c = dom_hold(&D, expiry, "r4", "tC", "uC", "c1", "s1", 3);
    dom_apply(&D, &c);
    cr_assert_eq(dom_terminal(&D)->type, CT_OUT_SEAT_HELD);
    ct_st_token t;
    cr_assert(dom_token(&D, "tC", &t));
    cr_assert_eq(t.activated_at_ms, expiry);
}

Test(concert, a_long_gap_cascades_expiries_and_admissions_in_one_record) {
    ct_cmd c = dom_create(&D, T0, "c1", 1, 10, PRICE, 1, ACTIVE_TTL, HOLD_TTL);
    dom_apply(&D, &c);
    for (int i = 0; i < 4; i++) {
        char t[8], u[8];
        snprintf(t, sizeof t, "t%d", i);
        snprintf(u, sizeof u, "u%d", i);
        c = dom_issue(&D, T0, t, u, "c1");
        dom_apply(&D, &c);
    }
    /* t0 active until T0+ttl, then t1 until T0+2ttl, t2 until T0+3ttl, t3 ... */
    c = dom_tick(&D, T0 + 3 * ACTIVE_TTL);
    dom_apply(&D, &c);
    cr_assert_eq(dom_count(&D, CT_OUT_TOKEN_EXPIRED), 3);
    cr_assert_eq(dom_count(&D, CT_OUT_TOKEN_ACTIVATED), 3);
    ct_st_token t;
    cr_assert(dom_token(&D, "t3", &t));
    cr_assert_eq(t.status, CT_TOKEN_ACTIVE);
    cr_assert_eq(t.activated_at_ms, T0 + 3 * ACTIVE_TTL);
    cr_assert(dom_token(&D, "t2", &t));
    cr_assert_eq(t.status, CT_TOKEN_EXPIRED);
    cr_assert_eq(t.activated_at_ms, T0 + 2 * ACTIVE_TTL);
    cr_assert_eq(t.ended_at_ms, T0 + 3 * ACTIVE_TTL);
    /* every output carries the time it happened at, never decreasing */
    int64_t last = 0;
    for (size_t i = 0; i < ct_effects_output_count(D.fx); i++) {
        cr_assert_geq(ct_effects_output_at(D.fx, i)->ts_ms, last);
        last = ct_effects_output_at(D.fx, i)->ts_ms;
    }
    cr_assert_eq(dom_clock(&D, D.concert), T0 + 3 * ACTIVE_TTL);
}

/* ---- holds ------------------------------------------------------------- */

Test(concert, a_hold_expires_at_its_deadline_and_frees_seat_and_user_count) {
    base(&D);
    int64_t deadline = T0 + 2 + HOLD_TTL;
    ct_cmd c = dom_tick(&D, deadline - 1);
    dom_apply(&D, &c);
    cr_assert_eq(ct_effects_output_count(D.fx), 0);
    ct_st_seat s;
    cr_assert(dom_seat(&D, "c1", "s1", 1, &s));
    c = dom_tick(&D, deadline);
    dom_apply(&D, &c);
    const ct_out *e = dom_find(&D, CT_OUT_SEAT_HOLD_EXPIRED);
    cr_assert(e);
    cr_assert_str_eq(e->reservation_id.s, "rA");
    cr_assert_eq(e->ts_ms, deadline);
    cr_assert_str_eq(e->command_id.s, "c5", "the expiry descends from the HoldSeat command");
    cr_assert_not(dom_seat(&D, "c1", "s1", 1, &s));
    ct_st_reservation r;
    cr_assert(dom_reservation(&D, "rA", &r));
    cr_assert_eq(r.status, CT_RES_EXPIRED);
    /* the seat can be held again, by anyone */
    c = dom_hold(&D, deadline, "rB", "tB", "uB", "c1", "s1", 1);
    dom_apply(&D, &c);
    cr_assert_eq(dom_terminal(&D)->type, CT_OUT_SEAT_HELD);
}

Test(concert, same_millisecond_deadlines_fire_in_kind_then_id_order) {
    ct_cmd c = dom_create(&D, T0, "c1", 1, 10, PRICE, 5, HOLD_TTL, HOLD_TTL); /* same TTLs */
    dom_apply(&D, &c);
    c = dom_issue(&D, T0, "tA", "uA", "c1");
    dom_apply(&D, &c);
    c = dom_hold(&D, T0, "rb", "tA", "uA", "c1", "s1", 1);
    dom_apply(&D, &c);
    c = dom_hold(&D, T0, "ra", "tA", "uA", "c1", "s1", 2);
    dom_apply(&D, &c);
    c = dom_tick(&D, T0 + HOLD_TTL);
    dom_apply(&D, &c);
    cr_assert_eq(ct_effects_output_count(D.fx), 3);
    const ct_out *o0 = ct_effects_output_at(D.fx, 0), *o1 = ct_effects_output_at(D.fx, 1),
                 *o2 = ct_effects_output_at(D.fx, 2);
    cr_assert_eq(o0->type, CT_OUT_SEAT_HOLD_EXPIRED);
    cr_assert_str_eq(o0->reservation_id.s, "ra");
    cr_assert_eq(o1->type, CT_OUT_SEAT_HOLD_EXPIRED);
    cr_assert_str_eq(o1->reservation_id.s, "rb");
    cr_assert_eq(o2->type, CT_OUT_TOKEN_EXPIRED);
}

/* ---- payment saga ------------------------------------------------------ */

Test(concert, payment_one_ms_before_the_hold_deadline_is_accepted) {
    base(&D);
    ct_cmd c = dom_charge(&D, T0, "uA", PRICE);
    dom_apply(&D, &c);
    c = dom_pay(&D, T0 + 2 + HOLD_TTL - 1, "p1", "rA", "tA", "uA", "c1");
    dom_apply(&D, &c);
    const ct_out *dr = dom_find(&D, CT_OUT_DEBIT_REQUESTED);
    cr_assert(dr);
    cr_assert_eq(dr->topic, CT_TOPIC_ID_WALLET_COMMANDS);
    cr_assert_str_eq(dr->key.s, "uA");
    cr_assert_eq(dr->amount_won, PRICE);
    cr_assert_not(dr->terminal);
    ct_st_reservation r;
    cr_assert(dom_reservation(&D, "rA", &r));
    cr_assert_eq(r.status, CT_RES_PAYMENT_PENDING);
}

Test(concert, pending_payment_is_exempt_from_expiry_and_success_sells_and_admits) {
    base(&D);
    ct_cmd c = dom_charge(&D, T0, "uA", PRICE);
    dom_apply(&D, &c);
    c = dom_pay(&D, T0 + 10, "p1", "rA", "tA", "uA", "c1");
    dom_apply(&D, &c);
    ct_id pay_cmd = c.command_id;
    /* long past the hold deadline: nothing expires */
    c = dom_tick(&D, T0 + 2 + HOLD_TTL + 5);
    dom_apply(&D, &c);
    cr_assert_eq(dom_count(&D, CT_OUT_SEAT_HOLD_EXPIRED), 0);
    c = dom_debit(&D, T0 + 20, "p1", "rA", "uA", "c1", PRICE);
    c.command_id = pay_cmd;
    dom_apply(&D, &c);
    cr_assert_eq(dom_balance(&D, "uA"), 0);
    const ct_out *t = dom_terminal(&D);
    cr_assert_eq(t->type, CT_OUT_BALANCE_DEBITED, "the wallet's decision is the payment's outcome");
    cr_assert(ct_id_eq(&t->command_id, &pay_cmd), "the saga's outcome carries the RequestPayment's command id");
    const ct_out *ps = dom_find(&D, CT_OUT_PAYMENT_SETTLED);
    cr_assert(ps && ps->ok);
    cr_assert_eq(ps->topic, CT_TOPIC_ID_CONCERT_COMMANDS);
    cr_assert_str_eq(ps->key.s, "c1");
    c = dom_settled(&D, T0 + 2 + HOLD_TTL + 10, "c1", "p1", "rA", "uA", PRICE, true, CT_REASON_NONE);
    dom_apply(&D, &c);
    t = dom_find(&D, CT_OUT_RESERVATION_CONFIRMED);
    cr_assert(t && !t->terminal, "confirmed as the wallet said, not a second outcome");
    cr_assert(ct_id_eq(&t->command_id, &pay_cmd), "the confirmation carries the RequestPayment's command id");
    cr_assert(dom_find(&D, CT_OUT_SEAT_SOLD));
    const ct_out *done = dom_find(&D, CT_OUT_TOKEN_DONE);
    cr_assert(done);
    cr_assert_str_eq(done->token.s, "tA");
    const ct_out *act = dom_find(&D, CT_OUT_TOKEN_ACTIVATED);
    cr_assert(act, "the freed slot admits the queue head");
    cr_assert_str_eq(act->token.s, "tC");
    ct_st_seat s;
    cr_assert(dom_seat(&D, "c1", "s1", 1, &s));
    cr_assert_eq(s.status, CT_SEAT_SOLD);
    ct_st_token tok;
    cr_assert(dom_token(&D, "tA", &tok));
    cr_assert_eq(tok.status, CT_TOKEN_DONE);
    /* DONE does not expire */
    c = dom_tick(&D, T0 + 10 * ACTIVE_TTL);
    dom_apply(&D, &c);
    cr_assert(dom_token(&D, "tA", &tok));
    cr_assert_eq(tok.status, CT_TOKEN_DONE);
    cr_assert(dom_seat(&D, "c1", "s1", 1, &s));
    cr_assert_eq(s.status, CT_SEAT_SOLD);
}

Test(concert, full_saga_through_the_wallet_with_json_routing) {
    base(&D);
    ct_cmd c = dom_charge(&D, T0, "uA", PRICE + 1);
    dom_apply(&D, &c);
    c = dom_pay(&D, T0 + 10, "p1", "rA", "tA", "uA", "c1");
    dom_apply(&D, &c);
    dom_route_saga(&D);
    cr_assert_eq(dom_saga_outcome(&D)->type, CT_OUT_BALANCE_DEBITED);
    cr_assert_str_eq(dom_saga_outcome(&D)->command_id.s, c.command_id.s);
    cr_assert_eq(dom_saga_outcome(&D)->balance_won, 1);
    cr_assert_str_eq(dom_find(&D, CT_OUT_RESERVATION_CONFIRMED)->command_id.s, c.command_id.s);
    cr_assert_eq(dom_balance(&D, "uA"), 1);
}

Test(concert, failed_payment_returns_the_hold_with_its_original_deadline) {
    base(&D);
    ct_cmd c = dom_pay(&D, T0 + 10, "p1", "rA", "tA", "uA", "c1");
    dom_apply(&D, &c);
    dom_route_saga(&D); /* no balance: INSUFFICIENT_BALANCE */
    const ct_out *t = dom_saga_outcome(&D);
    cr_assert_eq(t->type, CT_OUT_DEBIT_REJECTED);
    cr_assert_eq(t->reason, CT_REASON_INSUFFICIENT_BALANCE);
    cr_assert_str_eq(t->command_id.s, c.command_id.s);
    t = dom_find(&D, CT_OUT_PAYMENT_FAILED);
    cr_assert(t && !t->terminal);
    cr_assert_eq(t->reason, CT_REASON_INSUFFICIENT_BALANCE);
    ct_st_reservation r;
    cr_assert(dom_reservation(&D, "rA", &r));
    cr_assert_eq(r.status, CT_RES_HELD);
    cr_assert_eq(r.hold_until_ms, T0 + 2 + HOLD_TTL);
    /* it can be paid again, then it expires at the original deadline */
    c = dom_tick(&D, T0 + 2 + HOLD_TTL - 1);
    dom_apply(&D, &c);
    cr_assert_eq(ct_effects_output_count(D.fx), 0);
    c = dom_tick(&D, T0 + 2 + HOLD_TTL);
    dom_apply(&D, &c);
    cr_assert(dom_find(&D, CT_OUT_SEAT_HOLD_EXPIRED));
}

Test(concert, failed_payment_after_the_deadline_expires_the_hold_at_once) {
    base(&D);
    ct_cmd c = dom_pay(&D, T0 + 10, "p1", "rA", "tA", "uA", "c1");
    dom_apply(&D, &c);
    c = dom_settled(&D, T0 + 2 + HOLD_TTL + 1000, "c1", "p1", "rA", "uA", PRICE, false, CT_REASON_INSUFFICIENT_BALANCE);
    dom_apply(&D, &c);
    cr_assert_eq(ct_effects_output_count(D.fx), 2);
    cr_assert_eq(ct_effects_output_at(D.fx, 0)->type, CT_OUT_PAYMENT_FAILED);
    cr_assert_not(ct_effects_output_at(D.fx, 0)->terminal, "the wallet's DebitRejected was the outcome");
    const ct_out *e = ct_effects_output_at(D.fx, 1);
    cr_assert_eq(e->type, CT_OUT_SEAT_HOLD_EXPIRED);
    cr_assert_eq(e->ts_ms, T0 + 2 + HOLD_TTL + 1000, "fires now, never in the past");
    ct_st_seat s;
    cr_assert_not(dom_seat(&D, "c1", "s1", 1, &s));
    ct_st_reservation r;
    cr_assert(dom_reservation(&D, "rA", &r));
    cr_assert_eq(r.status, CT_RES_EXPIRED);
}

Test(concert, a_settlement_that_cannot_be_honoured_is_refunded_never_dropped) {
    base(&D);
    ct_cmd c = dom_settled(&D, T0 + 10, "c1", "pZ", "rA", "uA", PRICE, true, CT_REASON_NONE);
    dom_apply(&D, &c);
    const ct_out *sr = dom_find(&D, CT_OUT_SETTLEMENT_REJECTED);
    cr_assert(sr);
    cr_assert_eq(sr->reason, CT_REASON_UNKNOWN_PAYMENT);
    const ct_out *rr = dom_find(&D, CT_OUT_REFUND_REQUESTED);
    cr_assert(rr);
    cr_assert_eq(rr->topic, CT_TOPIC_ID_WALLET_COMMANDS);
    cr_assert_str_eq(rr->key.s, "uA");
    cr_assert_eq(rr->amount_won, PRICE);
    /* the wallet only refunds what it debited: this one it never did */
    ct_cmd rf = dom_refund(&D, T0 + 10, "pZ", "uA", PRICE);
    dom_apply(&D, &rf);
    cr_assert_eq(dom_find(&D, CT_OUT_REFUND_REJECTED)->reason, CT_REASON_UNKNOWN_PAYMENT);
    cr_assert_eq(dom_balance(&D, "uA"), 0);
    /* a copy of the settlement of a succeeded payment changes nothing */
    ct_cmd ch = dom_charge(&D, T0, "uA", PRICE);
    dom_apply(&D, &ch);
    c = dom_pay(&D, T0 + 10, "p1", "rA", "tA", "uA", "c1");
    dom_apply(&D, &c);
    dom_route_saga(&D);
    c = dom_settled(&D, T0 + 20, "c1", "p1", "rA", "uA", PRICE, true, CT_REASON_NONE);
    dom_apply(&D, &c);
    sr = dom_find(&D, CT_OUT_SETTLEMENT_REJECTED);
    cr_assert(sr);
    cr_assert_eq(sr->reason, CT_REASON_DUPLICATE);
    cr_assert_null(dom_find(&D, CT_OUT_REFUND_REQUESTED), "the seat was sold for that money");
    cr_assert_null(dom_find(&D, CT_OUT_RESERVATION_CONFIRMED));
    /* an ok settlement of a failed payment contradicts the wallet: refund
     * (the wallet checks it against its debit record) */
    ct_cmd h2 = dom_hold(&D, T0 + 20, "rB", "tB", "uB", "c1", "s1", 2);
    dom_apply(&D, &h2);
    c = dom_pay(&D, T0 + 21, "p2", "rB", "tB", "uB", "c1");
    dom_apply(&D, &c);
    dom_route_saga(&D); /* uB has no money: FAILED */
    cr_assert_eq(dom_saga_outcome(&D)->type, CT_OUT_DEBIT_REJECTED);
    cr_assert(dom_find(&D, CT_OUT_PAYMENT_FAILED));
    c = dom_settled(&D, T0 + 22, "c1", "p2", "rB", "uB", PRICE, true, CT_REASON_NONE);
    dom_apply(&D, &c);
    cr_assert_eq(dom_find(&D, CT_OUT_SETTLEMENT_REJECTED)->reason, CT_REASON_PAYMENT_NOT_PENDING);
    cr_assert(dom_find(&D, CT_OUT_REFUND_REQUESTED));
    /* a failed settlement that cannot be honoured has nothing to refund */
    c = dom_settled(&D, T0 + 20, "c1", "pY", "rA", "uA", PRICE, false, CT_REASON_INSUFFICIENT_BALANCE);
    dom_apply(&D, &c);
    cr_assert(dom_find(&D, CT_OUT_SETTLEMENT_REJECTED));
    cr_assert_null(dom_find(&D, CT_OUT_REFUND_REQUESTED));
}

Test(concert, paying_after_the_token_expired_is_allowed_while_the_hold_lives) {
    /* hold_ttl > what is left of the token: the hold outlives the token */
    ct_cmd c = dom_create(&D, T0, "c1", 1, 10, PRICE, 1, 2000, 5000);
    dom_apply(&D, &c);
    c = dom_issue(&D, T0, "tA", "uA", "c1");
    dom_apply(&D, &c);
    c = dom_issue(&D, T0, "tB", "uB", "c1");
    dom_apply(&D, &c);
    c = dom_hold(&D, T0 + 1500, "rA", "tA", "uA", "c1", "s1", 1);
    dom_apply(&D, &c);
    ct_cmd ch = dom_charge(&D, T0, "uA", PRICE);
    dom_apply(&D, &ch);
    c = dom_pay(&D, T0 + 3000, "p1", "rA", "tA", "uA", "c1");
    dom_apply(&D, &c);
    cr_assert(dom_find(&D, CT_OUT_TOKEN_EXPIRED));
    cr_assert(dom_find(&D, CT_OUT_DEBIT_REQUESTED));
    dom_route_saga(&D);
    cr_assert_eq(dom_saga_outcome(&D)->type, CT_OUT_BALANCE_DEBITED);
    cr_assert(dom_find(&D, CT_OUT_RESERVATION_CONFIRMED));
    ct_st_token t;
    cr_assert(dom_token(&D, "tA", &t));
    cr_assert_eq(t.status, CT_TOKEN_DONE);
    cr_assert_eq(t.ended_at_ms, T0 + 2000, "keeps the time its active window ended");
    ct_st_queue q;
    cr_assert(dom_queue(&D, "c1", &q));
    cr_assert_eq(q.active_count, 1, "no slot freed twice");
}

/* ---- time -------------------------------------------------------------- */

Test(concert, logical_time_never_goes_back) {
    ct_cmd c = dom_create(&D, T0 + 100, "c1", 1, 10, PRICE, 1, ACTIVE_TTL, HOLD_TTL);
    dom_apply(&D, &c);
    cr_assert_eq(ct_effects_clock_ms(D.fx), T0 + 100);
    c = dom_issue(&D, T0, "tA", "uA", "c1");
    dom_apply(&D, &c);
    cr_assert_eq(ct_effects_clock_ms(D.fx), T0 + 100);
    cr_assert_eq(dom_terminal(&D)->ts_ms, T0 + 100);
    cr_assert_eq(dom_terminal(&D)->until_ms, T0 + 100 + ACTIVE_TTL);
    cr_assert_eq(dom_clock(&D, D.concert), T0 + 100);
}

/* ---- errors: nothing applied -------------------------------------------- */

Test(concert, malformed_or_misrouted_commands_are_permanent_errors_and_apply_nothing) {
    base(&D);
    size_t before = ct_memkv_count(D.concert);
    int64_t clock = dom_clock(&D, D.concert);
    ct_cmd bad[4];
    bad[0] = dom_hold(&D, T0 + HOLD_TTL * 9, "rX", "tB", "uB", "c1", "s1", 0); /* seat 0 */
    bad[1] = dom_issue(&D, T0 + HOLD_TTL * 9, "tX", "uX", "c1");
    bad[1].key = dom_id("c2");                           /* key is not the concert */
    bad[2] = dom_charge(&D, T0 + HOLD_TTL * 9, "uA", 5); /* wallet command */
    bad[3] = dom_issue(&D, -1, "tX", "uX", "c1");        /* negative time */
    for (int i = 0; i < 4; i++) {
        ct_role role = CT_ROLE_CONCERT;
        ct_kv_port port = ct_memkv_port(D.concert);
        ct_error err = {0};
        cr_assert_eq(ct_domain_apply(role, &port, &bad[i], D.fx, &err), -1, "case %d", i);
        cr_assert_eq(err.klass, CT_ERR_PERMANENT, "case %d: %s", i, err.msg);
        cr_assert_neq(err.msg[0], '\0');
    }
    cr_assert_eq(ct_memkv_count(D.concert), before);
    cr_assert_eq(dom_clock(&D, D.concert), clock, "a dead-lettered record does not move time");
}

/* A port that fails: the core passes the port's error (and its class) on. */
static int failing_get(void *ud, const uint8_t *k, size_t kn, uint8_t *v, size_t cap, size_t *vn, ct_error *err) {
    (void)ud, (void)k, (void)kn, (void)v, (void)cap, (void)vn;
    CT_ERR(err, CT_ERR_RETRIABLE, "store busy");
    return -1;
}

Test(concert, a_failing_port_read_is_returned_with_its_class) {
    ct_kv_port port = ct_memkv_port(D.concert);
    port.get = failing_get;
    ct_cmd c = dom_issue(&D, T0, "tA", "uA", "c1");
    ct_error err = {0};
    cr_assert_eq(ct_concert_apply(&port, &c, D.fx, &err), -1);
    cr_assert_eq(err.klass, CT_ERR_RETRIABLE);
    cr_assert_str_eq(err.msg, "store busy");
}

Test(concert, corrupt_state_is_fatal) {
    ct_cmd c = dom_create(&D, T0, "c1", 1, 10, PRICE, 1, ACTIVE_TTL, HOLD_TTL);
    dom_apply(&D, &c);
    ct_id cid = dom_id("c1");
    uint8_t k[CT_KEY_BYTES_MAX];
    size_t kn = ct_key_queue(k, &cid);
    const uint8_t junk[] = {1, 2, 3};
    cr_assert_eq(ct_memkv_put(D.concert, k, kn, junk, sizeof junk, &D.err), 0);
    c = dom_issue(&D, T0, "tA", "uA", "c1");
    cr_assert_eq(dom_try(&D, &c), -1);
    cr_assert_eq(D.err.klass, CT_ERR_FATAL);
}

/* One host's clock an hour fast: its command, logged by the brokers 3 s
 * after the hold, may carry ts at most CONCERT_CLOCK_SKEW_MAX_MS past that
 * (ct_cmd_bound_ts), so uA's 5-minute hold and the active tokens outlive
 * it. The same command unbounded (the control) expires them all. */
Test(concert, a_fast_clock_cannot_expire_holds_and_tokens_early) {
    const int64_t logged = T0 + 3000, skew = 2000;
    for (int bounded = 1; bounded >= 0; bounded--) {
        dom d;
        dom_init(&d);
        base(&d);
        ct_cmd c = dom_issue(&d, T0 + 3600 * 1000, "tX", "uX", "c1");
        cr_assert_eq(ct_cmd_bound_ts(&c, logged, skew), true);
        cr_assert_eq(c.ts_ms, logged + skew);
        if (!bounded) c.ts_ms = T0 + 3600 * 1000;
        dom_apply(&d, &c);
        ct_st_reservation r;
        cr_assert(dom_reservation(&d, "rA", &r));
        if (bounded) {
            cr_assert_eq(dom_count(&d, CT_OUT_SEAT_HOLD_EXPIRED), 0u, "the hold expired early");
            cr_assert_eq(dom_count(&d, CT_OUT_TOKEN_EXPIRED), 0u, "a token expired early");
            cr_assert_eq(r.status, CT_RES_HELD);
        } else {
            cr_assert_eq(dom_count(&d, CT_OUT_SEAT_HOLD_EXPIRED), 1u, "the control: an hour ahead expires the hold");
            cr_assert_neq(r.status, CT_RES_HELD);
        }
        dom_fini(&d);
    }
    /* Within the skew, or with no log time, a ts stays as it is. */
    ct_cmd c = dom_tick(&D, logged + skew);
    cr_assert_eq(ct_cmd_bound_ts(&c, logged, skew), false);
    cr_assert_eq(c.ts_ms, logged + skew);
    c = dom_tick(&D, T0 + 3600 * 1000);
    cr_assert_eq(ct_cmd_bound_ts(&c, 0, skew), false);
    cr_assert_eq(c.ts_ms, T0 + 3600 * 1000);
}

/* One place in line per user and concert: uC (WAITING, third) asking again
 * is answered the same token and position, and the queue does not grow;
 * uA (ACTIVE) likewise. Once uA's token has ended, asking again issues a
 * new one. */
Test(concert, asking_again_for_a_token_returns_the_live_one) {
    base(&D);
    ct_st_queue before, after;
    cr_assert(dom_queue(&D, "c1", &before));
    ct_cmd c = dom_issue(&D, T0 + 3, "tC2", "uC", "c1");
    dom_apply(&D, &c);
    const ct_out *o = dom_terminal(&D);
    cr_assert_eq(o->type, CT_OUT_TOKEN_ISSUED);
    cr_assert_str_eq(o->token.s, "tC", "a second place in line");
    cr_assert_eq(o->token_status, CT_TOKEN_WAITING);
    cr_assert_eq(o->position, 1u);
    cr_assert(dom_queue(&D, "c1", &after));
    cr_assert_eq(after.next_seq, before.next_seq, "the queue grew");
    ct_st_token t;
    cr_assert_not(dom_token(&D, "tC2", &t), "the new id became a token");
    c = dom_issue(&D, T0 + 4, "tA2", "uA", "c1");
    dom_apply(&D, &c);
    cr_assert_str_eq(dom_terminal(&D)->token.s, "tA");
    cr_assert_eq(dom_terminal(&D)->token_status, CT_TOKEN_ACTIVE);
    /* uA's token expires (ACTIVE_TTL): then a new one, at the back. */
    c = dom_tick(&D, T0 + 1 + ACTIVE_TTL);
    dom_apply(&D, &c);
    cr_assert(dom_token(&D, "tA", &t));
    cr_assert_eq(t.status, CT_TOKEN_EXPIRED);
    c = dom_issue(&D, T0 + 2 + ACTIVE_TTL, "tA3", "uA", "c1");
    dom_apply(&D, &c);
    cr_assert_str_eq(dom_terminal(&D)->token.s, "tA3");
    cr_assert(dom_token(&D, "tA3", &t));
}
