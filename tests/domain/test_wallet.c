/* The wallet state machine: charges, debits, refunds, limits, overflow. */
#include <criterion/criterion.h>

#include "dom_harness.h"

#define T0 INT64_C(1700000000000)

static dom D;
static void setup(void) { dom_init(&D); }
static void teardown(void) { dom_fini(&D); }
TestSuite(wallet, .init = setup, .fini = teardown);

typedef struct charge_case {
    const char *name;
    int64_t start;  /* balance reached first with valid charges */
    int64_t amount; /* then this charge */
    int want_rc;    /* -1: malformed (PERMANENT error) */
    ct_reason want_reason;
    int64_t want_balance;
} charge_case;

static const charge_case charge_cases[] = {
    {"zero is malformed", 0, 0, -1, CT_REASON_NONE, 0},
    {"negative is malformed", 0, -5, -1, CT_REASON_NONE, 0},
    {"one won", 0, 1, 0, CT_REASON_NONE, 1},
    {"the maximum charge", 0, CT_CHARGE_WON_MAX, 0, CT_REASON_NONE, CT_CHARGE_WON_MAX},
    {"one over the maximum charge is malformed", 0, CT_CHARGE_WON_MAX + 1, -1, CT_REASON_NONE, 0},
    {"INT64_MAX is malformed, not an overflow", 5, INT64_MAX, -1, CT_REASON_NONE, 5},
    {"reaching exactly 10^15", CT_BALANCE_WON_MAX - 7, 7, 0, CT_REASON_NONE, CT_BALANCE_WON_MAX},
    {"one past 10^15", CT_BALANCE_WON_MAX - 7, 8, 0, CT_REASON_BALANCE_LIMIT, CT_BALANCE_WON_MAX - 7},
    {"at 10^15 already", CT_BALANCE_WON_MAX, 1, 0, CT_REASON_BALANCE_LIMIT, CT_BALANCE_WON_MAX},
};

/* Reaches `balance` with valid charges (the largest first). */
static void fund(dom *d, const char *user, int64_t balance) {
    while (balance > 0) {
        int64_t a = balance > CT_CHARGE_WON_MAX ? CT_CHARGE_WON_MAX : balance;
        ct_cmd c = dom_charge(d, T0, user, a);
        dom_apply(d, &c);
        balance -= a;
    }
}

Test(wallet, charge_limits_table) {
    for (size_t i = 0; i < sizeof charge_cases / sizeof charge_cases[0]; i++) {
        const charge_case *k = &charge_cases[i];
        dom d;
        dom_init(&d);
        /* 10^15 takes 10^6 charges of 10^9: seed the balance directly */
        ct_id u = dom_id("u1");
        uint8_t key[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
        if (k->start > CT_CHARGE_WON_MAX * 4) {
            cr_assert_eq(ct_memkv_put(d.wallet, key, ct_key_wallet(key, &u), v, ct_val_i64_encode(v, k->start), &d.err),
                         0);
        } else {
            fund(&d, "u1", k->start);
        }
        ct_cmd c = dom_charge(&d, T0, "u1", k->amount);
        int rc = dom_try(&d, &c);
        cr_assert_eq(rc, k->want_rc, "%s: rc %d", k->name, rc);
        if (rc == 0) {
            const ct_out *t = dom_terminal(&d);
            if (k->want_reason) {
                cr_assert_eq(t->type, CT_OUT_COMMAND_REJECTED, "%s", k->name);
                cr_assert_eq(t->reason, k->want_reason, "%s", k->name);
                cr_assert_eq(t->topic, CT_TOPIC_ID_WALLET_EVENTS);
            } else {
                cr_assert_eq(t->type, CT_OUT_BALANCE_CHARGED, "%s", k->name);
                cr_assert_eq(t->balance_won, k->want_balance, "%s", k->name);
            }
        } else {
            cr_assert_eq(d.err.klass, CT_ERR_PERMANENT, "%s", k->name);
        }
        cr_assert_eq(dom_balance(&d, "u1"), k->want_balance, "%s: balance", k->name);
        dom_fini(&d);
    }
}

Test(wallet, debit_with_enough_balance_settles_ok) {
    fund(&D, "u1", 100);
    ct_cmd c = dom_debit(&D, T0, "p1", "r1", "u1", "c1", 100);
    dom_apply(&D, &c);
    cr_assert_eq(dom_balance(&D, "u1"), 0, "exactly the balance leaves 0");
    const ct_out *deb = dom_find(&D, CT_OUT_BALANCE_DEBITED);
    cr_assert(deb);
    cr_assert_eq(deb->balance_won, 0);
    cr_assert(deb->terminal, "the wallet's decision is the payment's outcome");
    const ct_out *ps = dom_find(&D, CT_OUT_PAYMENT_SETTLED);
    cr_assert(ps);
    cr_assert(ps->ok);
    cr_assert_eq(ps->topic, CT_TOPIC_ID_CONCERT_COMMANDS);
    cr_assert_str_eq(ps->key.s, "c1");
    cr_assert(ct_id_eq(&ps->command_id, &c.command_id), "the saga's command id travels on");
}

Test(wallet, debit_without_enough_balance_settles_not_ok) {
    fund(&D, "u1", 99);
    ct_cmd c = dom_debit(&D, T0, "p1", "r1", "u1", "c1", 100);
    dom_apply(&D, &c);
    cr_assert_eq(dom_balance(&D, "u1"), 99);
    const ct_out *rej = dom_find(&D, CT_OUT_DEBIT_REJECTED);
    cr_assert(rej);
    cr_assert_eq(rej->reason, CT_REASON_INSUFFICIENT_BALANCE);
    const ct_out *ps = dom_find(&D, CT_OUT_PAYMENT_SETTLED);
    cr_assert(ps);
    cr_assert_not(ps->ok);
    cr_assert_eq(ps->reason, CT_REASON_INSUFFICIENT_BALANCE);
}

Test(wallet, a_payment_is_debited_at_most_once) {
    fund(&D, "u1", 300);
    ct_cmd c = dom_debit(&D, T0, "p1", "r1", "u1", "c1", 100);
    dom_apply(&D, &c);
    c = dom_debit(&D, T0, "p1", "r1", "u1", "c1", 100);
    dom_apply(&D, &c);
    cr_assert_eq(dom_balance(&D, "u1"), 200);
    const ct_out *rej = dom_find(&D, CT_OUT_DEBIT_REJECTED);
    cr_assert(rej);
    cr_assert_eq(rej->reason, CT_REASON_DUPLICATE);
    cr_assert_null(dom_find(&D, CT_OUT_PAYMENT_SETTLED), "no second settlement");
}

typedef struct refund_case {
    const char *name;
    const char *payment, *user;
    int64_t amount;
    ct_reason want; /* NONE: refunded */
} refund_case;

Test(wallet, refunds_only_what_was_debited_once_within_the_limit) {
    fund(&D, "u1", 100);
    ct_cmd c = dom_debit(&D, T0, "p1", "r1", "u1", "c1", 60);
    dom_apply(&D, &c);
    c = dom_debit(&D, T0, "p2", "r2", "u1", "c1", 1000); /* refused: nothing taken */
    dom_apply(&D, &c);
    cr_assert_eq(dom_balance(&D, "u1"), 40);
    const refund_case cases[] = {
        {"unknown payment", "p9", "u1", 60, CT_REASON_UNKNOWN_PAYMENT},
        {"a refused debit", "p2", "u1", 1000, CT_REASON_UNKNOWN_PAYMENT},
        {"another user", "p1", "u2", 60, CT_REASON_UNKNOWN_PAYMENT},
        {"another amount", "p1", "u1", 61, CT_REASON_UNKNOWN_PAYMENT},
        {"the debit", "p1", "u1", 60, CT_REASON_NONE},
        {"the debit again", "p1", "u1", 60, CT_REASON_DUPLICATE},
    };
    int64_t want_balance = 40;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        c = dom_refund(&D, T0, cases[i].payment, cases[i].user, cases[i].amount);
        dom_apply(&D, &c);
        if (cases[i].want == CT_REASON_NONE) {
            cr_assert(dom_find(&D, CT_OUT_BALANCE_REFUNDED), "%s", cases[i].name);
            want_balance += cases[i].amount;
        } else {
            const ct_out *rr = dom_find(&D, CT_OUT_REFUND_REJECTED);
            cr_assert(rr, "%s", cases[i].name);
            cr_assert_eq(rr->reason, cases[i].want, "%s: %s", cases[i].name, ct_reason_name(rr->reason));
        }
        cr_assert_eq(dom_balance(&D, "u1"), want_balance, "%s", cases[i].name);
    }
    /* a refund that would pass 10^15 is refused and reported, not applied */
    c = dom_debit(&D, T0, "p3", "r3", "u1", "c1", 100);
    dom_apply(&D, &c);
    ct_id u = dom_id("u1");
    uint8_t k[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
    cr_assert_eq(
        ct_memkv_put(D.wallet, k, ct_key_wallet(k, &u), v, ct_val_i64_encode(v, CT_BALANCE_WON_MAX - 99), &D.err), 0);
    c = dom_refund(&D, T0, "p3", "u1", 100);
    dom_apply(&D, &c);
    const ct_out *rr = dom_find(&D, CT_OUT_REFUND_REJECTED);
    cr_assert(rr);
    cr_assert_eq(rr->reason, CT_REASON_BALANCE_LIMIT);
    cr_assert_eq(dom_balance(&D, "u1"), CT_BALANCE_WON_MAX - 99);
}

Test(wallet, concert_commands_on_the_wallet_are_permanent_errors) {
    ct_cmd c = dom_issue(&D, T0, "t1", "u1", "c1");
    ct_kv_port port = ct_memkv_port(D.wallet);
    ct_error err = {0};
    cr_assert_eq(ct_wallet_apply(&port, &c, D.fx, &err), -1);
    cr_assert_eq(err.klass, CT_ERR_PERMANENT);
    cr_assert_eq(ct_memkv_count(D.wallet), 0);
}

Test(wallet, a_corrupt_balance_is_fatal) {
    ct_id u = dom_id("u1");
    uint8_t k[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
    cr_assert_eq(ct_memkv_put(D.wallet, k, ct_key_wallet(k, &u), v, ct_val_i64_encode(v, -1), &D.err), 0);
    ct_cmd c = dom_charge(&D, T0, "u1", 1);
    cr_assert_eq(dom_try(&D, &c), -1);
    cr_assert_eq(D.err.klass, CT_ERR_FATAL);
}
