/* The record codec: strict decoding with clear messages, golden encodings. */
#include <criterion/criterion.h>
#include <string.h>

#include "dom_harness.h"

TestSuite(codec);

#define ENV(type, data)                                                                                                \
    "{\"id\":\"o-1\",\"type\":\"" type "\",\"v\":1,\"ts\":1000,\"command_id\":\"cmd-1\",\"key\":\"c1\",\"data\":" data \
    "}"
#define ENVK(type, key, data)                                                                           \
    "{\"id\":\"o-1\",\"type\":\"" type "\",\"v\":1,\"ts\":1000,\"command_id\":\"cmd-1\",\"key\":\"" key \
    "\",\"data\":" data "}"

typedef struct bad_case {
    const char *json;
    const char *want; /* substring of the error message */
} bad_case;

static const bad_case bad_cases[] = {
    {"", "not valid JSON"},
    {"{", "not valid JSON"},
    {"[]", "expected a JSON object"},
    {"{\"id\":\"a\"} trailing", "not valid JSON"},
    {"{\"id\":\"o\",\"id\":\"p\",\"type\":\"Tick\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{}}",
     "not valid JSON"},
    {"{\"type\":\"Tick\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{}}", "field id: missing"},
    {"{\"id\":\"o\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{}}", "field type: missing"},
    {"{\"id\":\"o\",\"type\":\"Tick\",\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{}}", "field v: missing"},
    {"{\"id\":\"o\",\"type\":\"Tick\",\"v\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{}}", "field ts: missing"},
    {"{\"id\":\"o\",\"type\":\"Tick\",\"v\":1,\"ts\":1,\"key\":\"\",\"data\":{}}", "field command_id: missing"},
    {"{\"id\":\"o\",\"type\":\"Tick\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"data\":{}}", "field key: missing"},
    {"{\"id\":\"o\",\"type\":\"Tick\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\"}", "field data: missing"},
    {"{\"id\":\"o\",\"type\":\"Tick\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{},\"x\":1}",
     "field x: unknown envelope field"},
    {ENV("Explode", "{}"), "field type: unknown record type 'Explode'"},
    {"{\"id\":\"o\",\"type\":7,\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{}}",
     "field type: expected a string"},
    {"{\"id\":\"o\",\"type\":\"Tick\",\"v\":2,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{}}",
     "field v: 2 is out of range 1..1"},
    {"{\"id\":\"o\",\"type\":\"Tick\",\"v\":1,\"ts\":-1,\"command_id\":\"\",\"key\":\"\",\"data\":{}}",
     "field ts: -1 is out of range"},
    {"{\"id\":\"o\",\"type\":\"Tick\",\"v\":1,\"ts\":1.5,\"command_id\":\"\",\"key\":\"\",\"data\":{}}",
     "field ts: expected an integer"},
    {"{\"id\":\"o\",\"type\":\"Tick\",\"v\":1,\"ts\":\"1\",\"command_id\":\"\",\"key\":\"\",\"data\":{}}",
     "field ts: expected an integer"},
    {"{\"id\":\"o/1\",\"type\":\"Tick\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{}}",
     "field id: must be"},
    {"{\"id\":\"\",\"type\":\"Tick\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{}}",
     "field id: must be"},
    {"{\"id\":\"o\",\"type\":\"Tick\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":[]}",
     "field data: expected an object"},
    {"{\"id\":\"o\",\"type\":\"Tick\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{\"a\":1}}",
     "field data.a: unknown field for Tick"},
    {ENV("IssueToken", "{\"token\":\"t1\",\"user_id\":\"u1\"}"), "field data.concert_id: missing"},
    {ENV("IssueToken", "{\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":5}"),
     "field data.concert_id: expected a string"},
    {ENV("IssueToken", "{\"token\":\"t 1\",\"user_id\":\"u1\",\"concert_id\":\"c1\"}"),
     "field data.token: must be 1..64 characters"},
    {ENV("IssueToken", "{\"token\":\"\",\"user_id\":\"u1\",\"concert_id\":\"c1\"}"),
     "field data.token: must be 1..64 characters"},
    {ENV("IssueToken", "{\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c2\"}"),
     "field key: must equal data.concert_id"},
    {ENVK("IssueToken", "", "{\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\"}"), "field key: must be 1..64"},
    {"{\"id\":\"o\",\"type\":\"IssueToken\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"c1\",\"data\":{\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\"}}",
     "field command_id: must be 1..64"},
    {ENV("IssueToken",
         "{\"token\":\"t12345678901234567890123456789012345678901234567890123456789012345\",\"user_id\":\"u1\",\"concert_id\":\"c1\"}"),
     "field data.token: must be 1..64"},
    {ENV("HoldSeat",
         "{\"reservation_id\":\"r1\",\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\",\"schedule_id\":\"s1\",\"seat_no\":0}"),
     "field data.seat_no: 0 is out of range 1..100000"},
    {ENV("HoldSeat",
         "{\"reservation_id\":\"r1\",\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\",\"schedule_id\":\"s1\",\"seat_no\":4294967297}"),
     "field data.seat_no: 4294967297 is out of range"},
    {ENV("HoldSeat",
         "{\"reservation_id\":\"r1\",\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\",\"schedule_id\":\"s1\",\"seat_no\":true}"),
     "field data.seat_no: expected an integer"},
    {ENV("CreateConcert",
         "{\"concert_id\":\"c1\",\"title\":\"\",\"schedules\":[{\"schedule_id\":\"s1\",\"starts_at\":1,\"seats\":10,\"price\":5}]}"),
     "field data.title: must be 1..200 bytes"},
    {ENV("CreateConcert", "{\"concert_id\":\"c1\",\"title\":\"T\",\"schedules\":[]}"),
     "field data.schedules: must hold 1..32 schedules"},
    {ENV("CreateConcert", "{\"concert_id\":\"c1\",\"title\":\"T\",\"schedules\":{}}"),
     "field data.schedules: expected an array"},
    {ENV("CreateConcert",
         "{\"concert_id\":\"c1\",\"title\":\"T\",\"schedules\":[{\"schedule_id\":\"s1\",\"starts_at\":1,\"seats\":0,\"price\":5}]}"),
     "field data.schedules[0].seats: 0 is out of range"},
    {ENV("CreateConcert",
         "{\"concert_id\":\"c1\",\"title\":\"T\",\"schedules\":[{\"schedule_id\":\"s1\",\"starts_at\":1,\"seats\":1,\"price\":-1}]}"),
     "field data.schedules[0].price: -1 is out of range"},
    {ENV("CreateConcert",
         "{\"concert_id\":\"c1\",\"title\":\"T\",\"schedules\":[{\"schedule_id\":\"s1\",\"starts_at\":1,\"seats\":1}]}"),
     "field data.schedules[0].price: missing"},
    {ENV("CreateConcert",
         "{\"concert_id\":\"c1\",\"title\":\"T\",\"schedules\":[{\"schedule_id\":\"s1\",\"starts_at\":1,\"seats\":1,\"price\":1,\"vip\":1}]}"),
     "field data.schedules[0].vip: unknown field"},
    {ENV("CreateConcert",
         "{\"concert_id\":\"c1\",\"title\":\"T\",\"schedules\":[{\"schedule_id\":\"s1\",\"starts_at\":1,\"seats\":1,\"price\":1},{\"schedule_id\":\"s1\",\"starts_at\":1,\"seats\":1,\"price\":1}]}"),
     "schedule_id 's1' appears twice"},
    {ENV("CreateConcert",
         "{\"concert_id\":\"c1\",\"title\":\"T\",\"schedules\":[{\"schedule_id\":\"s1\",\"starts_at\":1,\"seats\":1,\"price\":1}],\"max_active\":0}"),
     "field data.max_active: 0 is out of range"},
    {ENV("CreateConcert",
         "{\"concert_id\":\"c1\",\"title\":\"T\",\"schedules\":[{\"schedule_id\":\"s1\",\"starts_at\":1,\"seats\":1,\"price\":1}],\"hold_ttl_ms\":999}"),
     "field data.hold_ttl_ms: 999 is out of range"},
    {ENV("PaymentSettled",
         "{\"payment_id\":\"p1\",\"reservation_id\":\"r1\",\"user_id\":\"u1\",\"amount\":5,\"ok\":false}"),
     "field data.reason: required when ok is false"},
    {ENV("PaymentSettled",
         "{\"payment_id\":\"p1\",\"reservation_id\":\"r1\",\"user_id\":\"u1\",\"amount\":5,\"ok\":true,\"reason\":\"SEAT_TAKEN\"}"),
     "field data.reason: must be absent when ok is true"},
    {ENV("PaymentSettled",
         "{\"payment_id\":\"p1\",\"reservation_id\":\"r1\",\"user_id\":\"u1\",\"amount\":5,\"ok\":false,\"reason\":\"BROKE\"}"),
     "field data.reason: unknown reason code 'BROKE'"},
    {ENV("PaymentSettled",
         "{\"payment_id\":\"p1\",\"reservation_id\":\"r1\",\"user_id\":\"u1\",\"amount\":5,\"ok\":1}"),
     "field data.ok: expected true or false"},
    {ENVK("ChargeBalance", "u1", "{\"user_id\":\"u1\",\"amount\":0}"),
     "field data.amount: 0 is out of range 1..1000000000"},
    {ENVK("ChargeBalance", "u1", "{\"user_id\":\"u1\",\"amount\":1000000001}"),
     "field data.amount: 1000000001 is out of range"},
    {ENVK("ChargeBalance", "u1", "{\"user_id\":\"u1\",\"amount\":99999999999999999999}"), "not valid JSON"},
    {ENVK("ChargeBalance", "u1", "{\"user_id\":\"u1\",\"amount\":1e3}"), "field data.amount: expected an integer"},
    {ENVK("RefundRequested", "u1", "{\"payment_id\":\"p1\",\"user_id\":\"u1\",\"amount\":1}"),
     "field data.reason: missing"},
    {ENVK("DebitRequested", "u1",
          "{\"payment_id\":\"p1\",\"reservation_id\":\"r1\",\"user_id\":\"u1\",\"concert_id\":\"c1\",\"amount\":-1}"),
     "field data.amount: -1 is out of range"},
};

Test(codec, every_malformed_record_is_a_permanent_error_naming_the_field) {
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        ct_cmd c;
        ct_error err = {0};
        const char *j = bad_cases[i].json;
        int rc = ct_codec_decode(j, strlen(j), &c, &err);
        cr_assert_eq(rc, -1, "case %zu accepted: %s", i, j);
        cr_assert_eq(err.klass, CT_ERR_PERMANENT, "case %zu", i);
        cr_assert(strstr(err.msg, bad_cases[i].want), "case %zu: message '%s' lacks '%s'", i, err.msg,
                  bad_cases[i].want);
    }
}

Test(codec, oversized_record_is_rejected_before_parsing) {
    static char big[CT_INPUT_RECORD_BYTES_MAX + 2];
    memset(big, ' ', sizeof big);
    ct_cmd c;
    ct_error err = {0};
    cr_assert_eq(ct_codec_decode(big, sizeof big, &c, &err), -1);
    cr_assert(strstr(err.msg, "exceed the limit"));
}

Test(codec, decodes_every_command_type_with_defaults) {
    const char *j = ENV(
        "CreateConcert",
        "{\"concert_id\":\"c1\",\"title\":\"Caf\\u00e9 \\\"live\\\"\",\"schedules\":[{\"schedule_id\":\"s1\",\"starts_at\":1800000000000,\"seats\":50,\"price\":120000}]}");
    ct_cmd c;
    ct_error err = {0};
    cr_assert_eq(ct_codec_decode(j, strlen(j), &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.type, CT_CMD_CREATE_CONCERT);
    cr_assert_str_eq(c.u.create_concert.title, "Caf\xc3\xa9 \"live\"");
    cr_assert_eq(c.u.create_concert.max_active, CT_MAX_ACTIVE_DEFAULT);
    cr_assert_eq(c.u.create_concert.active_ttl_ms, CT_ACTIVE_TTL_MS_DEFAULT);
    cr_assert_eq(c.u.create_concert.hold_ttl_ms, CT_HOLD_TTL_MS_DEFAULT);
    cr_assert_eq(c.u.create_concert.schedules[0].price_won, 120000);
    cr_assert_eq(c.ts_ms, 1000);
    cr_assert_str_eq(c.id, "o-1");
    cr_assert_str_eq(c.command_id.s, "cmd-1");

    const char *tick =
        "{\"id\":\"tick:3.9\",\"type\":\"Tick\",\"v\":1,\"ts\":5,\"command_id\":\"\",\"key\":\"\",\"data\":{}}";
    cr_assert_eq(ct_codec_decode(tick, strlen(tick), &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.type, CT_CMD_TICK);

    const char *hold = ENV(
        "HoldSeat",
        "{\"reservation_id\":\"r1\",\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\",\"schedule_id\":\"s1\",\"seat_no\":100000}");
    cr_assert_eq(ct_codec_decode(hold, strlen(hold), &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.u.hold_seat.seat_no, 100000);

    const char *ps = ENV(
        "PaymentSettled",
        "{\"payment_id\":\"p1\",\"reservation_id\":\"r1\",\"user_id\":\"u1\",\"amount\":5,\"ok\":false,\"reason\":\"INSUFFICIENT_BALANCE\"}");
    cr_assert_eq(ct_codec_decode(ps, strlen(ps), &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.u.payment_settled.reason, CT_REASON_INSUFFICIENT_BALANCE);
    cr_assert_not(c.u.payment_settled.ok);
}

/* Golden encodings: the exact bytes of a scenario's outputs. */
Test(codec, golden_encoding_of_a_scenario_is_byte_exact) {
    dom d;
    dom_init(&d);
    const char *in[] = {
        ENV("CreateConcert",
            "{\"concert_id\":\"c1\",\"title\":\"Tab\\there \\\"q\\\" \\\\ \\u0001\",\"schedules\":[{\"schedule_id\":\"s1\",\"starts_at\":1800000000000,\"seats\":2,\"price\":70000}],\"max_active\":1,\"active_ttl_ms\":60000,\"hold_ttl_ms\":30000}"),
        "{\"id\":\"o-2\",\"type\":\"IssueToken\",\"v\":1,\"ts\":2000,\"command_id\":\"cmd-2\",\"key\":\"c1\",\"data\":{\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\"}}",
        "{\"id\":\"o-3\",\"type\":\"IssueToken\",\"v\":1,\"ts\":2000,\"command_id\":\"cmd-3\",\"key\":\"c1\",\"data\":{\"token\":\"t2\",\"user_id\":\"u2\",\"concert_id\":\"c1\"}}",
        "{\"id\":\"o-4\",\"type\":\"HoldSeat\",\"v\":1,\"ts\":3000,\"command_id\":\"cmd-4\",\"key\":\"c1\",\"data\":{\"reservation_id\":\"r1\",\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\",\"schedule_id\":\"s1\",\"seat_no\":2}}",
        "{\"id\":\"o-5\",\"type\":\"RequestPayment\",\"v\":1,\"ts\":4000,\"command_id\":\"cmd-5\",\"key\":\"c1\",\"data\":{\"payment_id\":\"p1\",\"reservation_id\":\"r1\",\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\"}}",
        "{\"id\":\"w-1:1\",\"type\":\"PaymentSettled\",\"v\":1,\"ts\":5000,\"command_id\":\"cmd-5\",\"key\":\"c1\",\"data\":{\"payment_id\":\"p1\",\"reservation_id\":\"r1\",\"user_id\":\"u1\",\"amount\":70000,\"ok\":true}}",
        "{\"id\":\"o-6\",\"type\":\"HoldSeat\",\"v\":1,\"ts\":5000,\"command_id\":\"cmd-6\",\"key\":\"c1\",\"data\":{\"reservation_id\":\"r2\",\"token\":\"t2\",\"user_id\":\"u2\",\"concert_id\":\"c1\",\"schedule_id\":\"s1\",\"seat_no\":2}}",
        "{\"id\":\"tick-1\",\"type\":\"Tick\",\"v\":1,\"ts\":70000,\"command_id\":\"\",\"key\":\"\",\"data\":{}}",
    };
    const char *want =
        "{\"id\":\"o-1:0\",\"type\":\"ScheduleCreated\",\"v\":1,\"ts\":1000,\"command_id\":\"cmd-1\",\"key\":\"c1\",\"data\":{\"concert_id\":\"c1\",\"schedule_id\":\"s1\",\"starts_at\":1800000000000,\"seats\":2,\"price\":70000,\"terminal\":false}}\n"
        "{\"id\":\"o-1:1\",\"type\":\"ConcertCreated\",\"v\":1,\"ts\":1000,\"command_id\":\"cmd-1\",\"key\":\"c1\",\"data\":{\"concert_id\":\"c1\",\"title\":\"Tab\\there \\\"q\\\" \\\\ \\u0001\",\"max_active\":1,\"active_ttl_ms\":60000,\"hold_ttl_ms\":30000,\"schedule_count\":1,\"terminal\":true}}\n"
        "{\"id\":\"o-2:0\",\"type\":\"TokenIssued\",\"v\":1,\"ts\":2000,\"command_id\":\"cmd-2\",\"key\":\"c1\",\"data\":{\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\",\"seq\":1,\"status\":\"ACTIVE\",\"position\":0,\"active_until\":62000,\"terminal\":true}}\n"
        "{\"id\":\"o-3:0\",\"type\":\"TokenIssued\",\"v\":1,\"ts\":2000,\"command_id\":\"cmd-3\",\"key\":\"c1\",\"data\":{\"token\":\"t2\",\"user_id\":\"u2\",\"concert_id\":\"c1\",\"seq\":2,\"status\":\"WAITING\",\"position\":1,\"active_until\":null,\"terminal\":true}}\n"
        "{\"id\":\"o-4:0\",\"type\":\"SeatHeld\",\"v\":1,\"ts\":3000,\"command_id\":\"cmd-4\",\"key\":\"c1\",\"data\":{\"reservation_id\":\"r1\",\"concert_id\":\"c1\",\"schedule_id\":\"s1\",\"seat_no\":2,\"user_id\":\"u1\",\"token\":\"t1\",\"hold_until\":33000,\"price\":70000,\"terminal\":true}}\n"
        "{\"id\":\"o-5:0\",\"type\":\"PaymentRequested\",\"v\":1,\"ts\":4000,\"command_id\":\"cmd-5\",\"key\":\"c1\",\"data\":{\"payment_id\":\"p1\",\"reservation_id\":\"r1\",\"user_id\":\"u1\",\"concert_id\":\"c1\",\"amount\":70000,\"terminal\":false}}\n"
        "{\"id\":\"o-5:1\",\"type\":\"DebitRequested\",\"v\":1,\"ts\":4000,\"command_id\":\"cmd-5\",\"key\":\"u1\",\"data\":{\"payment_id\":\"p1\",\"reservation_id\":\"r1\",\"user_id\":\"u1\",\"concert_id\":\"c1\",\"amount\":70000}}\n"
        "{\"id\":\"w-1:1:0\",\"type\":\"SeatSold\",\"v\":1,\"ts\":5000,\"command_id\":\"cmd-5\",\"key\":\"c1\",\"data\":{\"reservation_id\":\"r1\",\"payment_id\":\"p1\",\"concert_id\":\"c1\",\"schedule_id\":\"s1\",\"seat_no\":2,\"user_id\":\"u1\",\"amount\":70000,\"terminal\":false}}\n"
        "{\"id\":\"w-1:1:1\",\"type\":\"ReservationConfirmed\",\"v\":1,\"ts\":5000,\"command_id\":\"cmd-5\",\"key\":\"c1\",\"data\":{\"reservation_id\":\"r1\",\"payment_id\":\"p1\",\"concert_id\":\"c1\",\"schedule_id\":\"s1\",\"seat_no\":2,\"user_id\":\"u1\",\"token\":\"t1\",\"amount\":70000,\"terminal\":false}}\n"
        "{\"id\":\"w-1:1:2\",\"type\":\"TokenDone\",\"v\":1,\"ts\":5000,\"command_id\":\"cmd-2\",\"key\":\"c1\",\"data\":{\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\",\"seq\":1,\"status\":\"DONE\",\"terminal\":false}}\n"
        "{\"id\":\"w-1:1:3\",\"type\":\"TokenActivated\",\"v\":1,\"ts\":5000,\"command_id\":\"cmd-3\",\"key\":\"c1\",\"data\":{\"token\":\"t2\",\"user_id\":\"u2\",\"concert_id\":\"c1\",\"seq\":2,\"status\":\"ACTIVE\",\"active_until\":65000,\"terminal\":false}}\n"
        "{\"id\":\"o-6:0\",\"type\":\"CommandRejected\",\"v\":1,\"ts\":5000,\"command_id\":\"cmd-6\",\"key\":\"c1\",\"data\":{\"command_type\":\"HoldSeat\",\"reason\":\"SEAT_TAKEN\",\"reservation_id\":\"r2\",\"token\":\"t2\",\"user_id\":\"u2\",\"concert_id\":\"c1\",\"schedule_id\":\"s1\",\"seat_no\":2,\"terminal\":true}}\n"
        "{\"id\":\"tick-1:0\",\"type\":\"TokenExpired\",\"v\":1,\"ts\":65000,\"command_id\":\"cmd-3\",\"key\":\"c1\",\"data\":{\"token\":\"t2\",\"user_id\":\"u2\",\"concert_id\":\"c1\",\"seq\":2,\"status\":\"EXPIRED\",\"terminal\":false}}\n";
    static char got[16384];
    size_t gn = 0;
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        ct_cmd c;
        cr_assert_eq(ct_codec_decode(in[i], strlen(in[i]), &c, &d.err), 0, "input %zu: %s", i, d.err.msg);
        dom_apply(&d, &c);
        for (size_t k = 0; k < ct_effects_output_count(d.fx); k++) {
            size_t n;
            cr_assert_eq(ct_codec_encode_effect(d.fx, k, got + gn, sizeof got - gn, &n, &d.err), 0);
            gn += n;
            got[gn++] = '\n';
        }
    }
    got[gn] = '\0';
    cr_assert_str_eq(got, want);
    dom_fini(&d);
}

Test(codec, wallet_outputs_golden_and_round_trip_as_commands) {
    dom d;
    dom_init(&d);
    ct_cmd c = dom_charge(&d, 10, "u1", 5);
    dom_apply(&d, &c);
    char buf[CT_OUTPUT_RECORD_BYTES_MAX];
    size_t n;
    cr_assert_eq(ct_codec_encode_effect(d.fx, 0, buf, sizeof buf, &n, &d.err), 0);
    cr_assert_str_eq(
        buf,
        "{\"id\":\"r1:0\",\"type\":\"BalanceCharged\",\"v\":1,\"ts\":10,\"command_id\":\"c1\",\"key\":\"u1\",\"data\":{\"user_id\":\"u1\",\"amount\":5,\"balance\":5,\"terminal\":true}}");
    c = dom_debit(&d, 11, "p1", "r1", "u1", "c9", 7);
    dom_apply(&d, &c);
    cr_assert_eq(ct_codec_encode_effect(d.fx, 0, buf, sizeof buf, &n, &d.err), 0);
    cr_assert_str_eq(
        buf,
        "{\"id\":\"r2:0\",\"type\":\"DebitRejected\",\"v\":1,\"ts\":11,\"command_id\":\"c2\",\"key\":\"u1\",\"data\":{\"payment_id\":\"p1\",\"reservation_id\":\"r1\",\"user_id\":\"u1\",\"concert_id\":\"c9\",\"amount\":7,\"balance\":5,\"reason\":\"INSUFFICIENT_BALANCE\",\"terminal\":true}}");
    cr_assert_eq(ct_codec_encode_effect(d.fx, 1, buf, sizeof buf, &n, &d.err), 0);
    cr_assert_str_eq(
        buf,
        "{\"id\":\"r2:1\",\"type\":\"PaymentSettled\",\"v\":1,\"ts\":11,\"command_id\":\"c2\",\"key\":\"c9\",\"data\":{\"payment_id\":\"p1\",\"reservation_id\":\"r1\",\"user_id\":\"u1\",\"amount\":7,\"ok\":false,\"reason\":\"INSUFFICIENT_BALANCE\"}}");
    /* the cross-role output is a valid command for the other side */
    ct_cmd back;
    cr_assert_eq(ct_codec_decode(buf, n, &back, &d.err), 0, "%s", d.err.msg);
    cr_assert_eq(back.type, CT_CMD_PAYMENT_SETTLED);
    cr_assert_str_eq(back.id, "r2:1");
    cr_assert_eq(back.u.payment_settled.amount_won, 7);
    dom_fini(&d);
}

Test(codec, encoding_is_deterministic_and_bounded) {
    ct_out o = {0};
    o.type = CT_OUT_CONCERT_CREATED;
    o.topic = CT_TOPIC_ID_CONCERT_EVENTS;
    o.index = UINT32_MAX;
    o.key = dom_id("c1");
    o.command_id = dom_id("x");
    o.concert_id = dom_id("c1");
    memset(o.title, 1, CT_TITLE_BYTES_MAX); /* worst case: every byte escaped as \u0001 */
    o.title_len = CT_TITLE_BYTES_MAX;
    char id[CT_RECORD_ID_BYTES_MAX + 1];
    memset(id, 'a', CT_RECORD_ID_BYTES_MAX);
    id[CT_RECORD_ID_BYTES_MAX] = '\0';
    char a[CT_OUTPUT_RECORD_BYTES_MAX], b[CT_OUTPUT_RECORD_BYTES_MAX];
    size_t an, bn;
    ct_error err = {0};
    cr_assert_eq(ct_codec_encode_out(&o, id, a, sizeof a, &an, &err), 0, "%s", err.msg);
    cr_assert_eq(ct_codec_encode_out(&o, id, b, sizeof b, &bn, &err), 0);
    cr_assert_eq(an, bn);
    cr_assert_eq(memcmp(a, b, an), 0);
    /* too small a buffer is an error, never a truncated record */
    cr_assert_eq(ct_codec_encode_out(&o, id, a, 100, &an, &err), -1);
    cr_assert_eq(err.klass, CT_ERR_FATAL);
    o.type = CT_OUT_NONE;
    cr_assert_eq(ct_codec_encode_out(&o, id, a, sizeof a, &an, &err), -1);
}
