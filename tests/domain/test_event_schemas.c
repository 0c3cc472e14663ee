/* Every output the domain core can produce, validated against
 * schemas/events.json.
 *
 * The processor tests validate what the real processors put on Kafka, but a
 * short integration run only produces about half of the 22 output types
 * (no expiry, no failed payment, no refund). Here scenarios driven through
 * the pure core (both roles, cross-role records routed through the JSON
 * codec as the pipeline does) produce every type in ct_out_type's list,
 * every rejection reason, and CommandRejected on both events topics. Each
 * output is encoded by ct_codec exactly as a processor would produce it and
 * written to a file that schemas/validate.py checks, requiring every type.
 * The schema's own lists of types and reasons must equal the codec's, so a
 * type added on one side only fails here. Deterministic: no I/O but the
 * file and the validator. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/ct_test_schema.h"
#include "dom_harness.h"

#define T0 INT64_C(1700000000000)
#define PRICE INT64_C(5000)
#define ACTIVE_TTL INT64_C(60000)
#define HOLD_TTL INT64_C(10000)

typedef struct seen {
    FILE *out;
    size_t records;
    size_t type[CT_OUT_TYPE_COUNT_];
    size_t reason[CT_REASON_COUNT_];
    size_t rejected_on[CT_TOPIC_ID_COUNT_];
    size_t rejected_cmd[CT_CMD_TYPE_COUNT_];
    char first_line[CT_OUTPUT_RECORD_BYTES_MAX + 1]; /* for the validator's negative control */
} seen;

static dom D;
static seen S;

/* Applies c (to its role's partition) and records every output as the
 * processor would produce it. */
static void record_outputs(void) {
    for (size_t i = 0; i < ct_effects_output_count(D.fx); i++) {
        const ct_out *o = ct_effects_output_at(D.fx, i);
        char buf[CT_OUTPUT_RECORD_BYTES_MAX + 1];
        size_t n = 0;
        cr_assert_eq(ct_codec_encode_effect(D.fx, i, buf, sizeof buf, &n, &D.err), 0, "%s", D.err.msg);
        cr_assert_eq(fprintf(S.out, "%.*s\n", (int)n, buf), (int)n + 1);
        if (S.records++ == 0) snprintf(S.first_line, sizeof S.first_line, "%.*s", (int)n, buf);
        S.type[o->type]++;
        S.reason[o->reason]++;
        if (o->type == CT_OUT_COMMAND_REJECTED) S.rejected_on[o->topic]++, S.rejected_cmd[o->rejected_type]++;
    }
}

static void apply(const ct_cmd *c) {
    dom_apply(&D, c);
    record_outputs();
}

/* The command the other role reads from the last apply's first output of
 * type t, through the codec (as the pipeline routes it); under a new record
 * id when copy_id is set (a redelivery by another producer). */
static ct_cmd routed(ct_out_type t, const char *copy_id) {
    const ct_out *o = dom_find(&D, t);
    cr_assert_not_null(o, "the last record produced no %s", ct_out_type_name(t));
    char buf[CT_OUTPUT_RECORD_BYTES_MAX];
    size_t n = 0;
    cr_assert_eq(ct_codec_encode_effect(D.fx, o->index, buf, sizeof buf, &n, &D.err), 0);
    ct_cmd c;
    cr_assert_eq(ct_codec_decode(buf, n, &c, &D.err), 0, "%s: %.*s", D.err.msg, (int)n, buf);
    if (copy_id) c.id_len = (uint8_t)snprintf(c.id, sizeof c.id, "%s", copy_id);
    return c;
}

static void expect_rejection(const ct_cmd *c, ct_reason want) {
    apply(c);
    cr_assert_eq(dom_rejection(&D), want, "%s: got %s, want %s", ct_cmd_type_name(c->type),
                 ct_reason_name(dom_rejection(&D)), ct_reason_name(want));
}

/* ---- the scenarios -------------------------------------------------------- */

/* c1: one schedule of 10 seats, max_active 1. uA charges, holds and pays
 * (the saga succeeds: SeatSold, ReservationConfirmed, TokenDone, and uB's
 * waiting token is admitted); copies of the saga's records are refused. */
static void paid_journey(void) {
    ct_cmd c = dom_create(&D, T0, "c1", 1, 10, PRICE, 1, ACTIVE_TTL, HOLD_TTL);
    apply(&c);
    cr_assert_eq(dom_terminal(&D)->type, CT_OUT_CONCERT_CREATED);
    c = dom_create(&D, T0, "c1", 1, 10, PRICE, 1, ACTIVE_TTL, HOLD_TTL);
    expect_rejection(&c, CT_REASON_DUPLICATE);
    c = dom_charge(&D, T0, "uA", 4 * PRICE);
    apply(&c);
    c = dom_issue(&D, T0 + 1, "tA", "uA", "c1");
    apply(&c);
    cr_assert_eq(dom_find(&D, CT_OUT_TOKEN_ISSUED)->token_status, CT_TOKEN_ACTIVE);
    c = dom_issue(&D, T0 + 2, "tB", "uB", "c1");
    apply(&c);
    cr_assert_eq(dom_find(&D, CT_OUT_TOKEN_ISSUED)->token_status, CT_TOKEN_WAITING);
    c = dom_issue(&D, T0 + 2, "tX", "uX", "nope");
    expect_rejection(&c, CT_REASON_UNKNOWN_CONCERT);
    c = dom_issue(&D, T0 + 2, "tA", "uX", "c1");
    expect_rejection(&c, CT_REASON_DUPLICATE);

    c = dom_hold(&D, T0 + 3, "rA", "tA", "uA", "c1", "s1", 1);
    apply(&c);
    cr_assert_eq(dom_terminal(&D)->type, CT_OUT_SEAT_HELD);
    c = dom_hold(&D, T0 + 3, "rX", "tA", "uA", "nope", "s1", 2);
    expect_rejection(&c, CT_REASON_UNKNOWN_CONCERT);
    c = dom_hold(&D, T0 + 3, "rA", "tA", "uA", "c1", "s1", 2);
    expect_rejection(&c, CT_REASON_DUPLICATE);
    c = dom_hold(&D, T0 + 3, "rX", "tA", "uA", "c1", "s9", 2);
    expect_rejection(&c, CT_REASON_UNKNOWN_SCHEDULE);
    c = dom_hold(&D, T0 + 3, "rX", "tA", "uA", "c1", "s1", 11);
    expect_rejection(&c, CT_REASON_INVALID_SEAT);
    c = dom_hold(&D, T0 + 3, "rX", "tZ", "uA", "c1", "s1", 2);
    expect_rejection(&c, CT_REASON_UNKNOWN_TOKEN);
    c = dom_hold(&D, T0 + 3, "rX", "tA", "uB", "c1", "s1", 2);
    expect_rejection(&c, CT_REASON_TOKEN_MISMATCH);
    c = dom_hold(&D, T0 + 3, "rX", "tB", "uB", "c1", "s1", 2);
    expect_rejection(&c, CT_REASON_TOKEN_NOT_ACTIVE);
    c = dom_hold(&D, T0 + 3, "rX", "tA", "uA", "c1", "s1", 1);
    expect_rejection(&c, CT_REASON_SEAT_TAKEN);
    /* Three more holds (4 per user per schedule); they will expire. */
    const char *more[] = {"rA2", "rA3", "rA4"};
    for (int i = 0; i < 3; i++) {
        c = dom_hold(&D, T0 + 3, more[i], "tA", "uA", "c1", "s1", (uint32_t)(2 + i));
        apply(&c);
        cr_assert_eq(dom_terminal(&D)->type, CT_OUT_SEAT_HELD);
    }
    c = dom_hold(&D, T0 + 3, "rA5", "tA", "uA", "c1", "s1", 5);
    expect_rejection(&c, CT_REASON_LIMIT_EXCEEDED);

    c = dom_pay(&D, T0 + 4, "pX", "rA", "tA", "uA", "nope");
    expect_rejection(&c, CT_REASON_UNKNOWN_CONCERT);
    c = dom_pay(&D, T0 + 4, "pX", "rZ", "tA", "uA", "c1");
    expect_rejection(&c, CT_REASON_UNKNOWN_RESERVATION);
    c = dom_pay(&D, T0 + 4, "pX", "rA", "tB", "uB", "c1");
    expect_rejection(&c, CT_REASON_NOT_OWNER);
    c = dom_pay(&D, T0 + 4, "pX", "rA", "tB", "uA", "c1");
    expect_rejection(&c, CT_REASON_TOKEN_MISMATCH);
    c = dom_pay(&D, T0 + 4, "pA", "rA", "tA", "uA", "c1");
    apply(&c);
    ct_cmd debit = routed(CT_OUT_DEBIT_REQUESTED, NULL);
    apply(&debit);
    cr_assert_eq(dom_terminal(&D)->type, CT_OUT_BALANCE_DEBITED, "the wallet's decision is the payment's outcome");
    ct_cmd settled = routed(CT_OUT_PAYMENT_SETTLED, NULL);
    apply(&settled);
    cr_assert_not_null(dom_find(&D, CT_OUT_RESERVATION_CONFIRMED));
    cr_assert_not_null(dom_find(&D, CT_OUT_SEAT_SOLD));
    cr_assert_not_null(dom_find(&D, CT_OUT_TOKEN_DONE));
    cr_assert_not_null(dom_find(&D, CT_OUT_TOKEN_ACTIVATED), "tA's slot goes to tB");

    c = dom_pay(&D, T0 + 5, "pA", "rA", "tA", "uA", "c1");
    expect_rejection(&c, CT_REASON_DUPLICATE);
    c = dom_pay(&D, T0 + 5, "pA2", "rA", "tA", "uA", "c1");
    expect_rejection(&c, CT_REASON_RESERVATION_NOT_HELD);
    /* A copy of the settlement: refused, nothing to refund. */
    settled.id_len = (uint8_t)snprintf(settled.id, sizeof settled.id, "settled-copy");
    apply(&settled);
    cr_assert_eq(dom_find(&D, CT_OUT_SETTLEMENT_REJECTED)->reason, CT_REASON_DUPLICATE);
    cr_assert_null(dom_find(&D, CT_OUT_REFUND_REQUESTED));
    /* A copy of the debit: decided already, no second settlement. */
    debit.id_len = (uint8_t)snprintf(debit.id, sizeof debit.id, "debit-copy");
    apply(&debit);
    cr_assert_eq(dom_find(&D, CT_OUT_DEBIT_REJECTED)->reason, CT_REASON_DUPLICATE);
    cr_assert_null(dom_find(&D, CT_OUT_PAYMENT_SETTLED));
}

/* uB (now active, no money) holds and pays: the debit is rejected and the
 * payment fails; a forged "ok" settlement of the failed payment is refused
 * with a refund request the wallet refuses (it never took the money). */
static void failed_payment(void) {
    ct_cmd c = dom_hold(&D, T0 + 6, "rB", "tB", "uB", "c1", "s1", 6);
    apply(&c);
    cr_assert_eq(dom_terminal(&D)->type, CT_OUT_SEAT_HELD);
    c = dom_pay(&D, T0 + 7, "pB", "rB", "tB", "uB", "c1");
    apply(&c);
    ct_cmd debit = routed(CT_OUT_DEBIT_REQUESTED, NULL);
    apply(&debit);
    cr_assert_eq(dom_terminal(&D)->type, CT_OUT_DEBIT_REJECTED);
    cr_assert_eq(dom_terminal(&D)->reason, CT_REASON_INSUFFICIENT_BALANCE);
    ct_cmd settled = routed(CT_OUT_PAYMENT_SETTLED, NULL);
    apply(&settled);
    cr_assert_not_null(dom_find(&D, CT_OUT_PAYMENT_FAILED));
    c = dom_settled(&D, T0 + 8, "c1", "pB", "rB", "uB", PRICE, true, CT_REASON_NONE);
    apply(&c);
    cr_assert_eq(dom_find(&D, CT_OUT_SETTLEMENT_REJECTED)->reason, CT_REASON_PAYMENT_NOT_PENDING);
    ct_cmd refund = routed(CT_OUT_REFUND_REQUESTED, NULL);
    apply(&refund);
    cr_assert_eq(dom_find(&D, CT_OUT_REFUND_REJECTED)->reason, CT_REASON_UNKNOWN_PAYMENT);
}

/* The wallet debits a payment the concert side never made (a stray debit):
 * the concert refuses the settlement and asks for a refund, which the
 * wallet makes once. */
static void refunded_debit(void) {
    ct_cmd c = dom_debit(&D, T0 + 9, "pS", "rS", "uA", "c1", 3000);
    apply(&c);
    cr_assert_not_null(dom_find(&D, CT_OUT_BALANCE_DEBITED));
    ct_cmd settled = routed(CT_OUT_PAYMENT_SETTLED, NULL);
    apply(&settled);
    cr_assert_eq(dom_find(&D, CT_OUT_SETTLEMENT_REJECTED)->reason, CT_REASON_UNKNOWN_PAYMENT);
    ct_cmd refund = routed(CT_OUT_REFUND_REQUESTED, NULL);
    apply(&refund);
    cr_assert_eq(dom_find(&D, CT_OUT_BALANCE_REFUNDED)->amount_won, 3000);
}

/* A charge over the balance limit is rejected on wallet.events. */
static void balance_limit(void) {
    ct_id u = dom_id("uM");
    uint8_t k[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
    cr_assert_eq(ct_memkv_put(D.wallet, k, ct_key_wallet(k, &u), v, ct_val_i64_encode(v, CT_BALANCE_WON_MAX), &D.err),
                 0);
    ct_cmd c = dom_charge(&D, T0 + 10, "uM", 1);
    expect_rejection(&c, CT_REASON_BALANCE_LIMIT);
}

/* Time passes: uA's three unpaid holds and uB's failed one expire, then
 * uB's token; paying the expired hold is refused. */
static void deadlines(void) {
    ct_cmd c = dom_tick(&D, T0 + 3 + HOLD_TTL + 100);
    apply(&c);
    cr_assert_eq(dom_count(&D, CT_OUT_SEAT_HOLD_EXPIRED), 4);
    c = dom_tick(&D, T0 + 10 * ACTIVE_TTL);
    apply(&c);
    cr_assert_eq(dom_count(&D, CT_OUT_TOKEN_EXPIRED), 1);
    c = dom_pay(&D, T0 + 10 * ACTIVE_TTL, "pB2", "rB", "tB", "uB", "c1");
    expect_rejection(&c, CT_REASON_HOLD_EXPIRED);
}

/* c9: uT lets two holds expire on one token; its third hold is throttled. */
static void throttled(void) {
    const int64_t t9 = T0 + 20 * ACTIVE_TTL;
    ct_cmd c = dom_create(&D, t9, "c9", 1, 10, PRICE, 5, 10 * HOLD_TTL, HOLD_TTL);
    apply(&c);
    c = dom_issue(&D, t9 + 1, "tT", "uT", "c9");
    apply(&c);
    for (uint32_t seat = 1; seat <= 2; seat++) {
        char res[8];
        snprintf(res, sizeof res, "rT%u", seat);
        c = dom_hold(&D, t9 + 2 + (int64_t)(seat - 1) * 2 * HOLD_TTL, res, "tT", "uT", "c9", "s1", seat);
        apply(&c);
        cr_assert_eq(dom_terminal(&D)->type, CT_OUT_SEAT_HELD);
        c = dom_tick(&D, t9 + 3 + (int64_t)(seat - 1) * 2 * HOLD_TTL + HOLD_TTL);
        apply(&c);
        cr_assert_eq(dom_count(&D, CT_OUT_SEAT_HOLD_EXPIRED), 1);
    }
    c = dom_hold(&D, t9 + 5 * HOLD_TTL, "rT3", "tT", "uT", "c9", "s1", 3);
    expect_rejection(&c, CT_REASON_HOLD_THROTTLED);
}

/* ---- checks ---------------------------------------------------------------- */

/* The names in the schema's enum at path (object keys, NULL-terminated)
 * equal names[1..count). */
static void enum_equals(json_t *schema, const char *const *path, const char *(*name)(int), int count) {
    json_t *node = schema;
    for (const char *const *p = path; *p; p++) node = json_object_get(node, *p);
    json_t *e = json_object_get(node, "enum");
    cr_assert(json_is_array(e), "schemas/events.json: no enum at %s/%s", path[0], path[1]);
    cr_assert_eq(json_array_size(e), (size_t)(count - 1), "schemas/events.json lists %zu %s, the codec %d",
                 json_array_size(e), path[1], count - 1);
    for (int i = 1; i < count; i++) {
        bool found = false;
        for (size_t j = 0; j < json_array_size(e) && !found; j++)
            found = strcmp(json_string_value(json_array_get(e, j)), name(i)) == 0;
        cr_assert(found, "schemas/events.json does not list %s", name(i));
    }
}
/* Commands a processor dead-letters: a client command whose data does
 * not decode is still answered (POISON) on its role's events topic; one
 * processor's record for the other, or an envelope without a command id,
 * is not (the dead-letter topic alone has it). */
static void poisoned(void) {
    static const char *const answered[] = {
        "{\"id\":\"bad-1\",\"type\":\"HoldSeat\",\"v\":1,\"ts\":1700000100000,\"command_id\":\"cmd-bad-1\","
        "\"key\":\"c1\",\"data\":{\"seat_no\":\"one\"}}",
        "{\"id\":\"bad-2\",\"type\":\"ChargeBalance\",\"v\":7,\"ts\":-5,\"command_id\":\"cmd-bad-2\","
        "\"key\":\"uA\",\"data\":{\"user_id\":\"uA\",\"amount\":-1}}",
    };
    for (int i = 0; i < 2; i++) {
        ct_cmd env;
        ct_error err = {0};
        cr_assert_neq(ct_codec_decode(answered[i], strlen(answered[i]), &env, &err), 0, "%s", answered[i]);
        cr_assert_eq(ct_codec_decode_envelope(answered[i], strlen(answered[i]), &env), 0, "%s", answered[i]);
        ct_role role = i == 0 ? CT_ROLE_CONCERT : CT_ROLE_WALLET;
        cr_assert_eq(ct_domain_reject_poison(role, &env, D.fx, &err), 0, "%s", err.msg);
        cr_assert_eq(ct_effects_output_count(D.fx), 1u);
        const ct_out *o = ct_effects_output_at(D.fx, 0);
        cr_assert_eq(o->type, CT_OUT_COMMAND_REJECTED);
        cr_assert_eq(o->reason, CT_REASON_POISON);
        cr_assert(o->terminal);
        cr_assert_eq(o->ts_ms, i == 0 ? INT64_C(1700000100000) : 0);
        cr_assert_str_eq(o->command_id.s, i == 0 ? "cmd-bad-1" : "cmd-bad-2");
        record_outputs();
    }
    static const char *const unanswered[] = {
        "{\"id\":\"bad-3\",\"type\":\"DebitRequested\",\"v\":1,\"ts\":1,\"command_id\":\"cmd-3\",\"key\":\"uA\","
        "\"data\":{}}",
        "{\"id\":\"bad-4\",\"type\":\"HoldSeat\",\"v\":1,\"ts\":1,\"key\":\"c1\",\"data\":{}}",
        "{\"id\":\"bad 5\",\"type\":\"HoldSeat\",\"command_id\":\"cmd-5\",\"key\":\"c1\"}",
        "{\"id\":\"bad-6\",\"type\":\"Refund\",\"command_id\":\"cmd-6\",\"key\":\"c1\"}",
        "{not json",
    };
    for (size_t i = 0; i < sizeof unanswered / sizeof unanswered[0]; i++) {
        ct_cmd env;
        ct_error err = {0};
        const char *r = unanswered[i];
        bool read = ct_codec_decode_envelope(r, strlen(r), &env) == 0;
        cr_assert(!read || ct_domain_reject_poison(CT_ROLE_WALLET, &env, D.fx, &err) != 0, "%s was answered", r);
        cr_assert(!read || err.klass == CT_ERR_PERMANENT, "%s", r);
    }
}

static const char *out_name(int t) { return ct_out_type_name((ct_out_type)t); }
static const char *reason_name(int r) { return ct_reason_name((ct_reason)r); }

Test(event_schemas, every_output_type_validates_against_schemas_events_json) {
    char dir[] = "/tmp/ct-test-schemas-XXXXXX", path[64], bad[64], report[16384];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/outputs.jsonl", dir);
    snprintf(bad, sizeof bad, "%s/broken.jsonl", dir);
    dom_init(&D);
    memset(&S, 0, sizeof S);
    cr_assert_not_null(S.out = fopen(path, "w"));
    paid_journey();
    failed_payment();
    refunded_debit();
    balance_limit();
    deadlines();
    throttled();
    poisoned();
    cr_assert_eq(fclose(S.out), 0);

    /* What the scenarios produced, by the codec's own lists. */
    char require[1024] = "";
    for (int t = 1; t < CT_OUT_TYPE_COUNT_; t++) {
        cr_assert_gt(S.type[t], 0, "no %s was produced", ct_out_type_name((ct_out_type)t));
        strcat(strcat(require, t > 1 ? "," : ""), ct_out_type_name((ct_out_type)t));
    }
    for (int r = 1; r < CT_REASON_COUNT_; r++)
        cr_assert_gt(S.reason[r], 0, "no output carried the reason %s", ct_reason_name((ct_reason)r));
    cr_assert_gt(S.rejected_on[CT_TOPIC_ID_CONCERT_EVENTS], 0);
    cr_assert_gt(S.rejected_on[CT_TOPIC_ID_WALLET_EVENTS], 0);
    const ct_cmd_type clients[] = {CT_CMD_CREATE_CONCERT, CT_CMD_ISSUE_TOKEN, CT_CMD_HOLD_SEAT, CT_CMD_REQUEST_PAYMENT,
                                   CT_CMD_CHARGE_BALANCE};
    for (size_t i = 0; i < sizeof clients / sizeof clients[0]; i++)
        cr_assert_gt(S.rejected_cmd[clients[i]], 0, "no %s was rejected", ct_cmd_type_name(clients[i]));

    /* The schema knows exactly the codec's types and reasons. */
    char schema_path[1024];
    snprintf(schema_path, sizeof schema_path, "%s/schemas/events.json", CT_SOURCE_DIR);
    json_error_t je;
    json_t *schema = json_load_file(schema_path, 0, &je);
    cr_assert_not_null(schema, "%s: %s", schema_path, je.text);
    enum_equals(schema, (const char *const[]){"properties", "type", NULL}, out_name, CT_OUT_TYPE_COUNT_);
    enum_equals(schema, (const char *const[]){"$defs", "reason", NULL}, reason_name, CT_REASON_COUNT_);
    json_decref(schema);

    /* Every record valid, every type seen, by the project's validator. */
    int rc = ct_test_schema_validate("events.json", path, require, report, sizeof report);
    cr_assert_eq(rc, 0, "outputs violate schemas/events.json (validate.py exit %d):\n%s", rc, report);
    fprintf(stderr, "event schemas: %zu outputs of %d types valid\n", S.records, CT_OUT_TYPE_COUNT_ - 1);

    /* The same validator run rejects a broken record: this check can fail. */
    FILE *f = fopen(bad, "w");
    cr_assert_not_null(f);
    char *v = strstr(S.first_line, "\"v\":1");
    cr_assert_not_null(v, "%s", S.first_line);
    v[4] = '2';
    fprintf(f, "%s\n", S.first_line);
    fclose(f);
    cr_assert_neq(ct_test_schema_validate("events.json", bad, NULL, report, sizeof report), 0,
                  "validate.py accepted a record with v=2:\n%s", report);

    dom_fini(&D);
    unlink(path), unlink(bad), rmdir(dir);
}
