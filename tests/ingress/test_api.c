/* ct_api without I/O: routing, header checks, and a table of bad bodies
 * per endpoint, each with its status and error code; good requests give
 * envelopes the processors' decoder accepts, with the ids the API promises. */
#include <criterion/criterion.h>
#include <string.h>

#include "ct_api.h"
#include "ct_codec.h"

static void counter_random(void *ctx, uint8_t *out, size_t n) {
    unsigned *c = ctx;
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)((*c)++ * 37u);
}

static unsigned seed;
#define CONCERT "0123456789abcdef01234567"
#define TOKEN "AAAAAAAAAAAAAAAAAAAAAA"
#define RESERVATION CONCERT "_" TOKEN

static int build(ct_api_route route, const char *param, const char *token, const char *body, ct_api_command *out,
                 ct_api_error *e) {
    ct_api_request rq = {.route = route, .param = param, .queue_token = token, .body = body,
                         .body_len = body ? strlen(body) : 0, .ts_ms = 1700000000000, .random = counter_random,
                         .random_ctx = &seed};
    memset(e, 0, sizeof *e);
    return ct_api_build_command(&rq, out, e);
}

typedef struct bad_case {
    ct_api_route route;
    const char *param, *token, *body;
    unsigned status;
    const char *code, *mentions;
} bad_case;

static const bad_case bad[] = {
    {CT_ROUTE_ISSUE_TOKEN, NULL, NULL, "", 400, "BAD_JSON", NULL},
    {CT_ROUTE_ISSUE_TOKEN, NULL, NULL, "{\"user_id\":", 400, "BAD_JSON", NULL},
    {CT_ROUTE_ISSUE_TOKEN, NULL, NULL, "[1,2]", 422, "INVALID_FIELD", "object"},
    {CT_ROUTE_ISSUE_TOKEN, NULL, NULL, "{\"user_id\":\"u1\"}", 422, "MISSING_FIELD", "concert_id"},
    {CT_ROUTE_ISSUE_TOKEN, NULL, NULL, "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\",\"vip\":true}", 422,
     "UNKNOWN_FIELD", "vip"},
    {CT_ROUTE_ISSUE_TOKEN, NULL, NULL, "{\"user_id\":\"u 1\",\"concert_id\":\"" CONCERT "\"}", 422, "INVALID_FIELD",
     "user_id"},
    {CT_ROUTE_ISSUE_TOKEN, NULL, NULL, "{\"user_id\":7,\"concert_id\":\"" CONCERT "\"}", 422, "INVALID_FIELD",
     "user_id"},
    {CT_ROUTE_ISSUE_TOKEN, NULL, NULL, "{\"user_id\":\"u1\",\"concert_id\":\"XYZ\"}", 422, "INVALID_FIELD",
     "concert_id"},
    {CT_ROUTE_ISSUE_TOKEN, NULL, NULL, "{\"user_id\":\"u1\",\"user_id\":\"u2\",\"concert_id\":\"" CONCERT "\"}", 400,
     "BAD_JSON", "duplicate"},
    {CT_ROUTE_HOLD_SEAT, NULL, TOKEN, "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"1\"}", 422,
     "MISSING_FIELD", "seat_no"},
    {CT_ROUTE_HOLD_SEAT, NULL, TOKEN,
     "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"1\",\"seat_no\":0}", 422, "INVALID_FIELD",
     "seat_no"},
    {CT_ROUTE_HOLD_SEAT, NULL, TOKEN,
     "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"1\",\"seat_no\":1.5}", 422, "INVALID_FIELD",
     "seat_no"},
    {CT_ROUTE_HOLD_SEAT, NULL, TOKEN,
     "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"1\",\"seat_no\":\"3\"}", 422,
     "INVALID_FIELD", "seat_no"},
    {CT_ROUTE_HOLD_SEAT, NULL, NULL, "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"1\",\"seat_no\":3}",
     400, "MISSING_QUEUE_TOKEN", "X-Queue-Token"},
    {CT_ROUTE_HOLD_SEAT, NULL, "short",
     "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"1\",\"seat_no\":3}", 400,
     "INVALID_QUEUE_TOKEN", "X-Queue-Token"},
    {CT_ROUTE_REQUEST_PAYMENT, NULL, TOKEN, "{\"user_id\":\"u1\",\"reservation_id\":\"r1\"}", 422, "INVALID_FIELD",
     "reservation_id"},
    {CT_ROUTE_REQUEST_PAYMENT, NULL, TOKEN, "{\"user_id\":\"u1\",\"reservation_id\":\"" RESERVATION "\",\"amount\":5}",
     422, "UNKNOWN_FIELD", "amount"},
    {CT_ROUTE_CHARGE_BALANCE, "u1", NULL, "{\"amount\":0}", 422, "INVALID_FIELD", "amount"},
    {CT_ROUTE_CHARGE_BALANCE, "u1", NULL, "{\"amount\":-5}", 422, "INVALID_FIELD", "amount"},
    {CT_ROUTE_CHARGE_BALANCE, "u1", NULL, "{\"amount\":1000000001}", 422, "INVALID_FIELD", "amount"},
    {CT_ROUTE_CHARGE_BALANCE, "u1", NULL, "{}", 422, "MISSING_FIELD", "amount"},
    {CT_ROUTE_CHARGE_BALANCE, "bad%20id", NULL, "{\"amount\":10}", 422, "INVALID_FIELD", "user id"},
    {CT_ROUTE_CREATE_CONCERT, NULL, NULL, "{\"title\":\"t\",\"schedules\":[]}", 422, "INVALID_FIELD", "schedules"},
    {CT_ROUTE_CREATE_CONCERT, NULL, NULL, "{\"title\":\"\",\"schedules\":[{\"starts_at\":1,\"seats\":1,\"price\":1}]}",
     422, "INVALID_FIELD", "title"},
    {CT_ROUTE_CREATE_CONCERT, NULL, NULL,
     "{\"title\":\"t\",\"schedules\":[{\"starts_at\":1,\"seats\":1,\"price\":1,\"vip\":1}]}", 422, "UNKNOWN_FIELD",
     "schedules[0].vip"},
    {CT_ROUTE_CREATE_CONCERT, NULL, NULL, "{\"title\":\"t\",\"schedules\":[{\"starts_at\":1,\"seats\":100001,\"price\":1}]}",
     422, "INVALID_FIELD", "schedules[0].seats"},
    {CT_ROUTE_CREATE_CONCERT, NULL, NULL,
     "{\"title\":\"t\",\"schedules\":[{\"starts_at\":1,\"seats\":1,\"price\":1}],\"hold_ttl_ms\":5}", 422,
     "INVALID_FIELD", "hold_ttl_ms"},
};

Test(api, every_bad_body_gets_its_status_and_code) {
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ct_api_command c;
        ct_api_error e;
        int rc = build(bad[i].route, bad[i].param, bad[i].token, bad[i].body, &c, &e);
        cr_expect_eq(rc, -1, "case %zu (%s) accepted", i, bad[i].body);
        if (rc == 0) {
            ct_api_command_clear(&c);
            continue;
        }
        cr_expect_eq(e.status, bad[i].status, "case %zu (%s): status %u, want %u (%s)", i, bad[i].body, e.status,
                     bad[i].status, e.message);
        cr_expect_str_eq(e.code, bad[i].code, "case %zu (%s): %s", i, bad[i].body, e.message);
        if (bad[i].mentions)
            cr_expect(strstr(e.message, bad[i].mentions) != NULL, "case %zu: message '%s' does not name '%s'", i,
                      e.message, bad[i].mentions);
        char *json = ct_api_error_json(&e);
        cr_expect(json && strstr(json, "{\"error\":{\"code\":"), "error body %s", json);
        free(json);
    }
}

Test(api, a_body_over_16_KiB_is_413) {
    size_t n = CT_API_BODY_BYTES_MAX + 1;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[n] = 0;
    ct_api_command c;
    ct_api_error e;
    cr_assert_eq(build(CT_ROUTE_ISSUE_TOKEN, NULL, NULL, big, &c, &e), -1);
    cr_assert_eq(e.status, 413);
    free(big);
}

static void decode_ok(const ct_api_command *c, ct_cmd *cmd) {
    ct_error err = {0};
    cr_assert_eq(ct_codec_decode(c->envelope, strlen(c->envelope), cmd, &err), 0, "%s: %s", c->envelope, err.msg);
    cr_assert(ct_api_uuid_valid(c->command_id), "command_id %s", c->command_id);
    cr_assert(strstr(c->response, c->command_id) != NULL);
}

Test(api, good_requests_become_envelopes_the_processors_accept) {
    ct_api_command c;
    ct_api_error e;
    ct_cmd cmd;
    cr_assert_eq(build(CT_ROUTE_ISSUE_TOKEN, NULL, NULL, "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\"}", &c, &e), 0,
                 "%s", e.message);
    decode_ok(&c, &cmd);
    cr_assert_eq(cmd.type, CT_CMD_ISSUE_TOKEN);
    cr_assert_str_eq(c.key, CONCERT);
    cr_assert_str_eq(c.topic, "concert.commands");
    cr_assert_eq(strlen(cmd.u.issue_token.token.s), CT_API_TOKEN_CHARS);
    cr_assert(strstr(c.response, cmd.u.issue_token.token.s), "the token is in the answer");
    ct_api_command_clear(&c);

    cr_assert_eq(build(CT_ROUTE_HOLD_SEAT, NULL, TOKEN,
                       "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"2\",\"seat_no\":7}", &c, &e),
                 0, "%s", e.message);
    decode_ok(&c, &cmd);
    cr_assert_eq(cmd.type, CT_CMD_HOLD_SEAT);
    cr_assert_eq(strncmp(cmd.u.hold_seat.reservation_id.s, CONCERT "_", 25), 0, "reservation id %s carries the concert",
                 cmd.u.hold_seat.reservation_id.s);
    ct_api_command_clear(&c);

    cr_assert_eq(build(CT_ROUTE_REQUEST_PAYMENT, NULL, TOKEN, "{\"user_id\":\"u1\",\"reservation_id\":\"" RESERVATION "\"}",
                       &c, &e), 0, "%s", e.message);
    decode_ok(&c, &cmd);
    cr_assert_eq(cmd.type, CT_CMD_REQUEST_PAYMENT);
    cr_assert_str_eq(c.key, CONCERT, "a payment routes to its concert's partition");
    ct_api_command_clear(&c);

    cr_assert_eq(build(CT_ROUTE_CHARGE_BALANCE, "u-9", NULL, "{\"amount\":5000}", &c, &e), 0, "%s", e.message);
    decode_ok(&c, &cmd);
    cr_assert_eq(cmd.type, CT_CMD_CHARGE_BALANCE);
    cr_assert_str_eq(c.topic, "wallet.commands");
    cr_assert_str_eq(c.key, "u-9");
    ct_api_command_clear(&c);

    cr_assert_eq(build(CT_ROUTE_CREATE_CONCERT, NULL, NULL,
                       "{\"title\":\"Hot\",\"max_active\":10,\"schedules\":[{\"starts_at\":1900000000000,\"seats\":50,"
                       "\"price\":1000},{\"starts_at\":1900000100000,\"seats\":20,\"price\":2000}]}",
                       &c, &e),
                 0, "%s", e.message);
    decode_ok(&c, &cmd);
    cr_assert_eq(cmd.type, CT_CMD_CREATE_CONCERT);
    cr_assert_eq(cmd.u.create_concert.schedule_count, 2);
    cr_assert_eq(cmd.u.create_concert.max_active, 10);
    cr_assert(strstr(c.response, "\"schedule_ids\":[\"1\",\"2\"]"), "%s", c.response);
    ct_api_command_clear(&c);
}

Test(api, routes_and_methods) {
    char param[80];
    ct_api_error e;
    cr_assert_eq(ct_api_match("POST", "/v1/users/u1/balance/charge", param, sizeof param, &e), CT_ROUTE_CHARGE_BALANCE);
    cr_assert_str_eq(param, "u1");
    cr_assert_eq(ct_api_match("GET", "/v1/queue/tokens", param, sizeof param, &e), CT_ROUTE_NONE);
    cr_assert_eq(e.status, 405);
    cr_assert_eq(ct_api_match("POST", "/v1/nothing", param, sizeof param, &e), CT_ROUTE_NONE);
    cr_assert_eq(e.status, 404);
    cr_assert_eq(ct_api_match("POST", "/v1/users//balance/charge", param, sizeof param, &e), CT_ROUTE_NONE);
    cr_assert_eq(ct_api_match("POST", "/v1/admin/outbox/17/retry", param, sizeof param, &e), CT_ROUTE_OUTBOX_RETRY);
    cr_assert_str_eq(param, "17");
}

Test(api, headers) {
    ct_api_error e;
    cr_assert_eq(ct_api_check_admin("Bearer s3cret", "s3cret", &e), 0);
    cr_assert_eq(ct_api_check_admin("Bearer s3cre", "s3cret", &e), -1);
    cr_assert_eq(e.status, 401);
    cr_assert_eq(ct_api_check_admin("Bearer s3cretX", "s3cret", &e), -1);
    cr_assert_eq(ct_api_check_admin(NULL, "s3cret", &e), -1);
    cr_assert_eq(e.status, 401);
    cr_assert_eq(ct_api_check_admin("Bearer x", "", &e), -1);
    cr_assert_eq(e.status, 403);
    cr_assert_eq(ct_api_check_content_type("application/json; charset=utf-8", &e), 0);
    cr_assert_eq(ct_api_check_content_type("text/plain", &e), -1);
    cr_assert_eq(e.status, 415);
    cr_assert_eq(ct_api_check_content_type("application/jsonp", &e), -1);
    cr_assert_eq(ct_api_check_content_type(NULL, &e), -1);
    cr_assert_eq(ct_api_check_idempotency_key("abc-123", &e), 0);
    cr_assert_eq(ct_api_check_idempotency_key("has space", &e), -1);
    cr_assert_eq(e.status, 400);
}

Test(api, generated_ids_differ_and_fingerprints_tell_requests_apart) {
    ct_api_command a, b;
    ct_api_error e;
    const char *body = "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\"}";
    cr_assert_eq(build(CT_ROUTE_ISSUE_TOKEN, NULL, NULL, body, &a, &e), 0);
    cr_assert_eq(build(CT_ROUTE_ISSUE_TOKEN, NULL, NULL, body, &b, &e), 0);
    cr_assert_str_neq(a.command_id, b.command_id);
    cr_assert_str_neq(a.response, b.response, "two tokens");
    ct_api_command_clear(&a), ct_api_command_clear(&b);
    char f1[17], f2[17], f3[17];
    ct_api_fingerprint(CT_ROUTE_ISSUE_TOKEN, "", NULL, body, strlen(body), f1);
    ct_api_fingerprint(CT_ROUTE_ISSUE_TOKEN, "", NULL, body, strlen(body), f2);
    ct_api_fingerprint(CT_ROUTE_ISSUE_TOKEN, "", NULL, body, strlen(body) - 1, f3);
    cr_assert_str_eq(f1, f2);
    cr_assert_str_neq(f1, f3);
}
