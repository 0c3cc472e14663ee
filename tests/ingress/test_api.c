/* ct_api without I/O: routing, header checks, and a table of bad bodies
 * per endpoint, each with its status and error code; good requests give
 * envelopes the processors' decoder accepts, with the ids the API promises. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "ct_api.h"
#include "ct_codec.h"
#include "ct_record.h"

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
    /* Users' writes act as the token's user: u1, or the charged user. */
    const char *user = route == CT_ROUTE_CREATE_CONCERT            ? NULL
                       : route == CT_ROUTE_CHARGE_BALANCE && param ? param
                                                                   : "u1";
    ct_api_request rq = {.route = route,
                         .param = param,
                         .user = user,
                         .queue_token = token,
                         .body = body,
                         .body_len = body ? strlen(body) : 0,
                         .ts_ms = 1700000000000,
                         .random = counter_random,
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
    {CT_ROUTE_HOLD_SEAT, NULL, NULL,
     "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"1\",\"seat_no\":3}", 400,
     "MISSING_QUEUE_TOKEN", "X-Queue-Token"},
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
    {CT_ROUTE_CREATE_CONCERT, NULL, NULL,
     "{\"title\":\"t\",\"schedules\":[{\"starts_at\":1,\"seats\":100001,\"price\":1}]}", 422, "INVALID_FIELD",
     "schedules[0].seats"},
    {CT_ROUTE_CREATE_CONCERT, NULL, NULL,
     "{\"title\":\"t\",\"schedules\":[{\"starts_at\":1,\"seats\":1,\"price\":1}],\"hold_ttl_ms\":5}", 422,
     "INVALID_FIELD", "hold_ttl_ms"},
    {CT_ROUTE_CREATE_CONCERT, NULL, NULL,
     "{\"title\":\"t\",\"schedules\":[{\"starts_at\":\"2027-01-15 19:00:00\",\"seats\":1,\"price\":1}]}", 422,
     "INVALID_FIELD", "RFC 3339"},
    {CT_ROUTE_CREATE_CONCERT, NULL, NULL,
     "{\"title\":\"t\",\"schedules\":[{\"starts_at\":\"2027-02-29T19:00:00Z\",\"seats\":1,\"price\":1}]}", 422,
     "INVALID_FIELD", "schedules[0].starts_at"},
    {CT_ROUTE_CREATE_CONCERT, NULL, NULL,
     "{\"title\":\"t\",\"schedules\":[{\"starts_at\":\"1969-12-31T23:59:59Z\",\"seats\":1,\"price\":1}]}", 422,
     "INVALID_FIELD", "between 1970-01-01T00:00:00.000Z and"},
    {CT_ROUTE_CREATE_CONCERT, NULL, NULL,
     "{\"title\":\"t\",\"schedules\":[{\"starts_at\":true,\"seats\":1,\"price\":1}]}", 422, "INVALID_FIELD",
     "starts_at"},
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
    cr_assert_eq(build(CT_ROUTE_ISSUE_TOKEN, NULL, NULL, "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\"}", &c, &e),
                 0, "%s", e.message);
    decode_ok(&c, &cmd);
    cr_assert_eq(cmd.type, CT_CMD_ISSUE_TOKEN);
    cr_assert_str_eq(c.key, CONCERT);
    cr_assert_str_eq(c.topic, "concert.commands");
    cr_assert_eq(strlen(cmd.u.issue_token.token.s), CT_API_TOKEN_CHARS);
    cr_assert(strstr(c.response, cmd.u.issue_token.token.s), "the token is in the answer");
    ct_api_command_clear(&c);

    cr_assert_eq(build(CT_ROUTE_HOLD_SEAT, NULL, TOKEN,
                       "{\"user_id\":\"u1\",\"concert_id\":\"" CONCERT "\",\"schedule_id\":\"2\",\"seat_no\":7}", &c,
                       &e),
                 0, "%s", e.message);
    decode_ok(&c, &cmd);
    cr_assert_eq(cmd.type, CT_CMD_HOLD_SEAT);
    cr_assert_eq(strncmp(cmd.u.hold_seat.reservation_id.s, CONCERT "_", 25), 0, "reservation id %s carries the concert",
                 cmd.u.hold_seat.reservation_id.s);
    ct_api_command_clear(&c);

    cr_assert_eq(build(CT_ROUTE_REQUEST_PAYMENT, NULL, TOKEN,
                       "{\"user_id\":\"u1\",\"reservation_id\":\"" RESERVATION "\"}", &c, &e),
                 0, "%s", e.message);
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

    /* RFC 3339 times become the same milliseconds the integer form gives. */
    cr_assert_eq(build(CT_ROUTE_CREATE_CONCERT, NULL, NULL,
                       "{\"title\":\"Hot\",\"schedules\":[{\"starts_at\":\"2027-01-15T19:00:00Z\",\"seats\":5,"
                       "\"price\":1},{\"starts_at\":\"2030-01-01T09:00:00.250+09:00\",\"seats\":5,\"price\":1}]}",
                       &c, &e),
                 0, "%s", e.message);
    decode_ok(&c, &cmd);
    cr_assert_eq(cmd.u.create_concert.schedules[0].starts_at_ms, 1800039600000LL);
    cr_assert_eq(cmd.u.create_concert.schedules[1].starts_at_ms, 1893456000250LL);
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

/* UUID v7: the request's millisecond time first, so ids in time order sort
 * in time order (the outbox's command_id index grows at its right edge). */
Test(api, command_ids_are_uuid_v7_of_the_request_time) {
    const char *body = "{\"amount\":100}";
    char ids[3][CT_API_UUID_CHARS + 1];
    const int64_t ts[3] = {1700000000000, 1700000000001, 1700000000001};
    for (int i = 0; i < 3; i++) {
        ct_api_request rq = {.route = CT_ROUTE_CHARGE_BALANCE,
                             .param = "u1",
                             .user = "u1",
                             .body = body,
                             .body_len = strlen(body),
                             .ts_ms = ts[i],
                             .random = counter_random,
                             .random_ctx = &seed};
        ct_api_command c;
        ct_api_error e = {0};
        cr_assert_eq(ct_api_build_command(&rq, &c, &e), 0, "%s", e.message);
        cr_assert(ct_api_uuid_valid(c.command_id), "%s", c.command_id);
        memcpy(ids[i], c.command_id, sizeof ids[i]);
        ct_api_command_clear(&c);
    }
    cr_assert(strncmp(ids[0], "018bcfe5-6800-7", 15) == 0, "time 0x18bcfe56800 and version 7: %s", ids[0]);
    cr_assert(strncmp(ids[1], "018bcfe5-6801-7", 15) == 0, "%s", ids[1]);
    cr_assert(strchr("89ab", ids[0][19]) != NULL, "RFC 9562 variant: %s", ids[0]);
    cr_assert(strcmp(ids[0], ids[1]) < 0, "a later millisecond sorts later");
    cr_assert_str_neq(ids[1], ids[2], "the same millisecond still gives distinct ids");
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
    char f1[CT_API_FINGERPRINT_CHARS + 1], f2[CT_API_FINGERPRINT_CHARS + 1], f3[CT_API_FINGERPRINT_CHARS + 1];
    ct_api_fingerprint(CT_ROUTE_ISSUE_TOKEN, "", NULL, body, strlen(body), f1);
    ct_api_fingerprint(CT_ROUTE_ISSUE_TOKEN, "", NULL, body, strlen(body), f2);
    ct_api_fingerprint(CT_ROUTE_ISSUE_TOKEN, "", NULL, body, strlen(body) - 1, f3);
    cr_assert_str_eq(f1, f2);
    cr_assert_str_neq(f1, f3);
}

/* ---- the read side and Prefer: wait ------------------------------------- */

typedef struct route_case {
    const char *method, *path;
    ct_api_route route;
    const char *param, *param2;
    unsigned status; /* when CT_ROUTE_NONE */
} route_case;

Test(api, read_routes_take_their_path_ids) {
    static const route_case cases[] = {
        {"GET", "/v1/queue/tokens/" TOKEN, CT_ROUTE_TOKEN_STATUS, TOKEN, "", 0},
        {"POST", "/v1/queue/tokens", CT_ROUTE_ISSUE_TOKEN, "", "", 0},
        {"GET", "/v1/concerts", CT_ROUTE_CONCERTS, "", "", 0},
        {"GET", "/v1/concerts/" CONCERT "/schedules", CT_ROUTE_SCHEDULES, CONCERT, "", 0},
        {"GET", "/v1/concerts/" CONCERT "/schedules/2/seats", CT_ROUTE_SEATS, CONCERT, "2", 0},
        {"HEAD", "/v1/concerts/" CONCERT "/schedules/2/seats", CT_ROUTE_SEATS, CONCERT, "2", 0},
        {"GET", "/v1/reservations/" RESERVATION, CT_ROUTE_RESERVATION, RESERVATION, "", 0},
        {"GET", "/v1/users/alice/reservations", CT_ROUTE_USER_RESERVATIONS, "alice", "", 0},
        {"GET", "/v1/users/alice/balance", CT_ROUTE_BALANCE, "alice", "", 0},
        {"POST", "/v1/users/alice/balance/charge", CT_ROUTE_CHARGE_BALANCE, "alice", "", 0},
        {"GET", "/v1/commands/x", CT_ROUTE_COMMAND_STATUS, "x", "", 0},
        {"POST", "/v1/concerts", CT_ROUTE_NONE, "", "", 405},
        {"GET", "/v1/users/alice/balance/charge", CT_ROUTE_NONE, "", "", 405},
        {"GET", "/v1/concerts/" CONCERT "/schedules//seats", CT_ROUTE_NONE, "", "", 404},
        {"GET", "/v1/concerts/" CONCERT "/schedules/2/seats/", CT_ROUTE_NONE, "", "", 404},
        {"GET", "/v1/concerts/" CONCERT, CT_ROUTE_NONE, "", "", 404},
        {"GET", "/v1/queue/tokens/a/b", CT_ROUTE_NONE, "", "", 404},
        {"GET", "/v1/users//balance", CT_ROUTE_NONE, "", "", 404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char p1[80], p2[80];
        ct_api_error e = {0};
        ct_api_route r = ct_api_match2(cases[i].method, cases[i].path, p1, p2, sizeof p1, &e);
        cr_expect_eq(r, cases[i].route, "case %zu %s %s: route %d", i, cases[i].method, cases[i].path, r);
        cr_expect_str_eq(p1, cases[i].param, "case %zu", i);
        cr_expect_str_eq(p2, cases[i].param2, "case %zu", i);
        if (r == CT_ROUTE_NONE)
            cr_expect_eq(e.status, cases[i].status, "case %zu: %u", i, e.status);
        else
            cr_expect_eq(ct_api_route_is_read(r), cases[i].method[0] != 'P', "case %zu", i);
    }
    char p[4];
    ct_api_error e;
    cr_assert_eq(ct_api_match("GET", "/v1/users/longer/balance", p, sizeof p, &e), CT_ROUTE_NONE,
                 "an id longer than the buffer is not cut short");
    cr_assert(!ct_api_route_is_read(CT_ROUTE_OUTBOX_LIST) && !ct_api_route_is_read(CT_ROUTE_ISSUE_TOKEN));
}

typedef struct id_case {
    ct_api_route route;
    const char *param, *param2;
    int rc;
} id_case;

Test(api, read_ids_are_checked_like_the_write_side) {
    static const id_case cases[] = {
        {CT_ROUTE_TOKEN_STATUS, TOKEN, "", 0},
        {CT_ROUTE_TOKEN_STATUS, "short", "", -1},
        {CT_ROUTE_TOKEN_STATUS, "AAAAAAAAAAAAAAAAAAAAA!", "", -1},
        {CT_ROUTE_SCHEDULES, CONCERT, "", 0},
        {CT_ROUTE_SCHEDULES, "0123456789ABCDEF01234567", "", -1},
        {CT_ROUTE_SEATS, CONCERT, "1", 0},
        {CT_ROUTE_SEATS, CONCERT, "a.b", -1},
        {CT_ROUTE_SEATS, "nope", "1", -1},
        {CT_ROUTE_RESERVATION, RESERVATION, "", 0},
        {CT_ROUTE_RESERVATION, CONCERT "-" TOKEN, "", -1},
        {CT_ROUTE_RESERVATION, TOKEN, "", -1},
        {CT_ROUTE_USER_RESERVATIONS, "alice_1-x", "", 0},
        {CT_ROUTE_USER_RESERVATIONS, "al%20ce", "", -1},
        {CT_ROUTE_BALANCE, "al.ce", "", -1},
        {CT_ROUTE_COMMAND_STATUS, "00000000-0000-4000-8000-000000000000", "", 0},
        {CT_ROUTE_COMMAND_STATUS, "00000000-0000-4000-8000-00000000000G", "", -1},
        {CT_ROUTE_COMMAND_STATUS, "not-a-uuid", "", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_api_error e = {0};
        int rc = ct_api_check_read_params(cases[i].route, cases[i].param, cases[i].param2, &e);
        cr_expect_eq(rc, cases[i].rc, "case %zu (%s)", i, cases[i].param);
        if (rc != 0) cr_expect(e.status == 400 && strcmp(e.code, "INVALID_ID") == 0, "case %zu: %u", i, e.status);
    }
}

typedef struct page_case {
    ct_api_route route;
    const char *limit, *after;
    int rc, want_limit;
    long long want_after_n;
} page_case;

Test(api, pages_have_bounded_limits_and_checked_cursors) {
    static const page_case cases[] = {
        {CT_ROUTE_CONCERTS, NULL, NULL, 0, CT_API_PAGE_DEFAULT, 0},
        {CT_ROUTE_CONCERTS, "200", CONCERT, 0, 200, 0},
        {CT_ROUTE_CONCERTS, "201", NULL, -1, 0, 0},
        {CT_ROUTE_CONCERTS, "0", NULL, -1, 0, 0},
        {CT_ROUTE_CONCERTS, "-3", NULL, -1, 0, 0},
        {CT_ROUTE_CONCERTS, "", NULL, -1, 0, 0},
        {CT_ROUTE_CONCERTS, "5x", NULL, -1, 0, 0},
        {CT_ROUTE_CONCERTS, "99999999999999999999", NULL, -1, 0, 0},
        {CT_ROUTE_CONCERTS, NULL, "'; DROP TABLE concerts", -1, 0, 0},
        {CT_ROUTE_USER_RESERVATIONS, "10", RESERVATION, 0, 10, 0},
        {CT_ROUTE_USER_RESERVATIONS, NULL, CONCERT, -1, 0, 0},
        {CT_ROUTE_SEATS, NULL, NULL, 0, CT_API_SEAT_PAGE_DEFAULT, 0},
        {CT_ROUTE_SEATS, "5000", "100", 0, 5000, 100},
        {CT_ROUTE_SEATS, "5001", NULL, -1, 0, 0},
        {CT_ROUTE_SEATS, NULL, "-1", -1, 0, 0},
        {CT_ROUTE_SEATS, NULL, "100001", -1, 0, 0},
        {CT_ROUTE_SEATS, NULL, "1e3", -1, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_api_page pg;
        ct_api_error e = {0};
        int rc = ct_api_parse_page(cases[i].route, cases[i].limit, cases[i].after, &pg, &e);
        cr_expect_eq(rc, cases[i].rc, "case %zu", i);
        if (rc != 0) {
            cr_expect(e.status == 400 && strcmp(e.code, "INVALID_QUERY") == 0, "case %zu", i);
            continue;
        }
        cr_expect_eq(pg.limit, cases[i].want_limit, "case %zu", i);
        cr_expect_eq(pg.has_after, cases[i].after != NULL, "case %zu", i);
        if (cases[i].route == CT_ROUTE_SEATS)
            cr_expect_eq(pg.after_n, cases[i].want_after_n, "case %zu", i);
        else if (cases[i].after)
            cr_expect_str_eq(pg.after, cases[i].after, "case %zu", i);
    }
}

typedef struct prefer_case {
    const char *header;
    int rc, wait_s;
} prefer_case;

Test(api, prefer_wait_is_a_whole_number_of_seconds_up_to_30) {
    static const prefer_case cases[] = {
        {NULL, 0, 0},
        {"wait=5", 0, 5},
        {"wait=1", 0, 1},
        {"wait=30", 0, 30},
        {"Wait = 7", 0, 7},
        {"respond-async, wait=10", 0, 10},
        {"wait=3;foo=bar, return=minimal", 0, 3},
        {"return=representation", 0, 0},
        {"waiting=5", 0, 0},
        {"wait=0", -1, 0},
        {"wait=31", -1, 0},
        {"wait=-1", -1, 0},
        {"wait=2.5", -1, 0},
        {"wait=abc", -1, 0},
        {"wait=", -1, 0},
        {"wait", -1, 0},
        {"wait=9999999999", -1, 0},
        {"wait=\"5\"", -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int w = -7;
        ct_api_error e = {0};
        int rc = ct_api_parse_prefer_wait(cases[i].header, &w, &e);
        cr_expect_eq(rc, cases[i].rc, "case %zu (%s)", i, cases[i].header);
        if (rc == 0)
            cr_expect_eq(w, cases[i].wait_s, "case %zu (%s): %d", i, cases[i].header, w);
        else
            cr_expect(e.status == 400 && strcmp(e.code, "INVALID_PREFER") == 0, "case %zu", i);
    }
}

Test(api, every_rejection_reason_has_its_status) {
    static const struct {
        const char *reason;
        unsigned status;
    } cases[] = {
        {"TOKEN_NOT_ACTIVE", 403},    {"TOKEN_MISMATCH", 403},
        {"NOT_OWNER", 403},           {"SEAT_TAKEN", 409},
        {"DUPLICATE", 409},           {"RESERVATION_NOT_HELD", 409},
        {"PAYMENT_NOT_PENDING", 409}, {"INSUFFICIENT_BALANCE", 402},
        {"HOLD_EXPIRED", 410},        {"LIMIT_EXCEEDED", 422},
        {"BALANCE_LIMIT", 422},       {"INVALID_SEAT", 422},
        {"UNKNOWN_CONCERT", 404},     {"UNKNOWN_SCHEDULE", 404},
        {"UNKNOWN_TOKEN", 404},       {"UNKNOWN_RESERVATION", 404},
        {"UNKNOWN_PAYMENT", 404},     {"POISON", 422},
        {"HOLD_THROTTLED", 429},      {"UNKNOWN_SOMETHING_NEW", 404},
        {"SOMETHING_NEW", 409},       {NULL, 409},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_expect_eq(ct_api_reason_status(cases[i].reason), cases[i].status, "%s", cases[i].reason);
    /* Every reason the domain knows is in the table (none falls to the default). */
    for (int r = 1; r < CT_REASON_COUNT_; r++) {
        const char *name = ct_reason_name((ct_reason)r);
        cr_assert_not_null(name);
        unsigned st = ct_api_reason_status(name);
        cr_expect(st == 402 || st == 403 || st == 404 || st == 409 || st == 410 || st == 422 || st == 429, "%s: %u",
                  name, st);
    }
    cr_assert_eq(ct_api_success_status(CT_ROUTE_ISSUE_TOKEN), 201);
    cr_assert_eq(ct_api_success_status(CT_ROUTE_HOLD_SEAT), 201);
    cr_assert_eq(ct_api_success_status(CT_ROUTE_CREATE_CONCERT), 201);
    cr_assert_eq(ct_api_success_status(CT_ROUTE_REQUEST_PAYMENT), 200);
    cr_assert_eq(ct_api_success_status(CT_ROUTE_CHARGE_BALANCE), 200);
}

Test(api, outcome_answers_carry_the_accepted_fields_or_the_reason) {
    const char *accepted = "{\"token\":\"" TOKEN "\",\"command_id\":\"00000000-0000-4000-8000-000000000001\","
                           "\"status_url\":\"/v1/commands/00000000-0000-4000-8000-000000000001\"}";
    char id[CT_API_UUID_CHARS + 1];
    cr_assert_eq(ct_api_command_id_of(accepted, id), 0);
    cr_assert_str_eq(id, "00000000-0000-4000-8000-000000000001");
    char scratch[CT_API_UUID_CHARS + 1];
    cr_assert_eq(ct_api_command_id_of("{\"command_id\":\"x\"}", scratch), -1);
    cr_assert_eq(ct_api_command_id_of("nope", scratch), -1);
    unsigned st = 0;
    char *body = NULL;
    cr_assert_eq(ct_api_outcome_response(CT_ROUTE_ISSUE_TOKEN, accepted, id, "SUCCEEDED", NULL,
                                         "{\"status\":\"WAITING\",\"position\":3}", &st, &body),
                 0);
    cr_assert_eq(st, 201);
    cr_assert(strstr(body, "\"token\":\"" TOKEN "\"") && strstr(body, "\"status\":\"SUCCEEDED\"") &&
                  strstr(body, "\"result\":{\"status\":\"WAITING\",\"position\":3}") && strstr(body, "status_url"),
              "%s", body);
    free(body);
    cr_assert_eq(ct_api_outcome_response(CT_ROUTE_CHARGE_BALANCE, accepted, id, "SUCCEEDED", NULL, "{}", &st, &body),
                 0);
    cr_assert_eq(st, 200);
    free(body);
    cr_assert_eq(ct_api_outcome_response(CT_ROUTE_HOLD_SEAT, accepted, id, "REJECTED", "SEAT_TAKEN", "{}", &st, &body),
                 0);
    cr_assert_eq(st, 409);
    cr_assert(strstr(body, "\"error\":{\"code\":\"SEAT_TAKEN\",\"message\":") &&
                  strstr(body, "\"command_id\":\"00000000-0000-4000-8000-000000000001\""),
              "%s", body);
    free(body);
    cr_assert_eq(ct_api_outcome_response(CT_ROUTE_REQUEST_PAYMENT, accepted, id, "REJECTED", "INSUFFICIENT_BALANCE",
                                         "{}", &st, &body),
                 0);
    cr_assert_eq(st, 402);
    free(body);
}

/* Identity: users' writes act as the token's user whatever the body says,
 * path users must be the token's, and which routes a token or the admin
 * key open. */
Test(api, a_user_acts_and_reads_only_as_themselves) {
    ct_api_command c;
    ct_api_error e;
    const char *named = "{\"user_id\":\"u2\",\"concert_id\":\"" CONCERT "\"}";
    cr_assert_eq(build(CT_ROUTE_ISSUE_TOKEN, NULL, NULL, named, &c, &e), -1, "u1 asking as u2");
    cr_assert_eq(e.status, 403);
    cr_assert_str_eq(e.code, "FORBIDDEN");
    const char *unnamed = "{\"concert_id\":\"" CONCERT "\"}";
    cr_assert_eq(build(CT_ROUTE_ISSUE_TOKEN, NULL, NULL, unnamed, &c, &e), 0, "%s", e.message);
    cr_assert(strstr(c.envelope, "\"user_id\":\"u1\""), "the token's user: %s", c.envelope);
    ct_api_command_clear(&c);
    const char *pay = "{\"user_id\":\"u2\",\"reservation_id\":\"" CONCERT "_AAAAAAAAAAAAAAAAAAAAAA\"}";
    cr_assert_eq(build(CT_ROUTE_REQUEST_PAYMENT, NULL, TOKEN, pay, &c, &e), -1);
    cr_assert_eq(e.status, 403);
    ct_api_request rq = {.route = CT_ROUTE_ISSUE_TOKEN,
                         .body = unnamed,
                         .body_len = strlen(unnamed),
                         .ts_ms = 1700000000000,
                         .random = counter_random,
                         .random_ctx = &seed};
    cr_assert_eq(ct_api_build_command(&rq, &c, &e), -1, "no user at all");
    cr_assert_eq(e.status, 401);

    cr_assert_eq(ct_api_check_user(CT_ROUTE_CHARGE_BALANCE, "u1", "u1", &e), 0);
    cr_assert_eq(ct_api_check_user(CT_ROUTE_CHARGE_BALANCE, "u1", "u2", &e), -1);
    cr_assert_eq(e.status, 403);
    cr_assert_eq(ct_api_check_user(CT_ROUTE_BALANCE, "u1", "u2", &e), -1);
    cr_assert_eq(ct_api_check_user(CT_ROUTE_USER_RESERVATIONS, "u1", "u2", &e), -1);
    cr_assert_eq(ct_api_check_user(CT_ROUTE_USER_RESERVATIONS, NULL, "u2", &e), -1);
    cr_assert_eq(ct_api_check_user(CT_ROUTE_TOKEN_STATUS, "u1", "sometoken", &e), 0, "checked against the row");

    static const ct_api_route user_routes[] = {
        CT_ROUTE_ISSUE_TOKEN,    CT_ROUTE_HOLD_SEAT,         CT_ROUTE_REQUEST_PAYMENT,
        CT_ROUTE_CHARGE_BALANCE, CT_ROUTE_COMMAND_STATUS,    CT_ROUTE_TOKEN_STATUS,
        CT_ROUTE_RESERVATION,    CT_ROUTE_USER_RESERVATIONS, CT_ROUTE_BALANCE};
    for (size_t i = 0; i < sizeof user_routes / sizeof user_routes[0]; i++)
        cr_assert(ct_api_route_is_user(user_routes[i]), "route %d", (int)user_routes[i]);
    static const ct_api_route public_routes[] = {CT_ROUTE_HEALTHZ, CT_ROUTE_CONCERTS,       CT_ROUTE_SCHEDULES,
                                                 CT_ROUTE_SEATS,   CT_ROUTE_CREATE_CONCERT, CT_ROUTE_OUTBOX_LIST};
    for (size_t i = 0; i < sizeof public_routes / sizeof public_routes[0]; i++)
        cr_assert_not(ct_api_route_is_user(public_routes[i]), "route %d", (int)public_routes[i]);
    cr_assert(ct_api_route_admin_may_read(CT_ROUTE_BALANCE));
    cr_assert_not(ct_api_route_admin_may_read(CT_ROUTE_CHARGE_BALANCE), "the admin key does not charge as a user");

    cr_assert_eq(ct_api_auth_error(CT_AUTH_OK, &e), 0);
    cr_assert_eq(ct_api_auth_error(CT_AUTH_MISSING, &e), -1);
    cr_assert(e.status == 401 && !strcmp(e.code, "UNAUTHORIZED"));
    cr_assert_eq(ct_api_auth_error(CT_AUTH_INVALID, &e), -1);
    cr_assert(e.status == 401 && !strcmp(e.code, "INVALID_TOKEN"));
    cr_assert_eq(ct_api_auth_error(CT_AUTH_EXPIRED, &e), -1);
    cr_assert(e.status == 401 && !strcmp(e.code, "TOKEN_EXPIRED"));
}

/* A user who holds a live token is answered that one: the outcome's token
 * replaces the id the 202 proposed. */
Test(api, a_token_outcome_names_the_live_token) {
    const char *accepted =
        "{\"token\":\"NEWNEWNEWNEWNEWNEWNEW0\",\"command_id\":\"c\",\"status_url\":\"/v1/commands/c\"}";
    unsigned st = 0;
    char *body = NULL;
    cr_assert_eq(ct_api_outcome_response(CT_ROUTE_ISSUE_TOKEN, accepted, "c", "SUCCEEDED", NULL,
                                         "{\"token\":\"LIVELIVELIVELIVELIVE00\",\"status\":\"WAITING\",\"position\":3}",
                                         &st, &body),
                 0);
    cr_assert_eq(st, 201);
    cr_assert(strstr(body, "\"token\":\"LIVELIVELIVELIVELIVE00\""), "%s", body);
    cr_assert_null(strstr(body, "NEWNEW"), "%s", body);
    free(body);
}

Test(api, answers_carry_an_rfc3339_twin_of_every_time) {
    char *out = ct_api_times_rfc3339("{\"token\":\"t\",\"issued_ts\":1800039600000,\"seq\":7,\"estimated_wait_ms\":5,"
                                     "\"schedules\":[{\"starts_at\":1893456000250,\"seats\":5}],\"hold_until\":-500,"
                                     "\"activated_ts\":null,\"created_at\":\"2026-12-06T00:00:00.000Z\"}");
    cr_assert_not_null(out);
    json_t *j = json_loads(out, 0, NULL);
    cr_assert_not_null(j, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(j, "issued_ts_rfc3339")), "2027-01-15T19:00:00.000Z");
    cr_assert_eq(json_integer_value(json_object_get(j, "issued_ts")), 1800039600000LL, "the integer stays");
    json_t *s0 = json_array_get(json_object_get(j, "schedules"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(s0, "starts_at_rfc3339")), "2030-01-01T00:00:00.250Z");
    cr_assert_str_eq(json_string_value(json_object_get(j, "hold_until_rfc3339")), "1969-12-31T23:59:59.500Z");
    /* Not times, not integers, or strings already: no twin. */
    cr_assert_null(json_object_get(j, "seq_rfc3339"));
    cr_assert_null(json_object_get(j, "estimated_wait_ms_rfc3339"));
    cr_assert_null(json_object_get(j, "activated_ts_rfc3339"));
    cr_assert_null(json_object_get(j, "created_at_rfc3339"));
    json_decref(j);
    free(out);
    cr_assert_null(ct_api_times_rfc3339("{\"status\":\"ok\"}"), "no time: sent as it is");
    cr_assert_null(ct_api_times_rfc3339("not json \"x_ts\""));
}

/* ingress/openapi.json documents exactly the routes the server has: each
 * route's method and path (a "{name}" there is a "{}" here), and nothing
 * else. */
Test(api, the_openapi_document_has_every_route_and_no_other) {
    json_error_t je;
    json_t *doc = json_load_file(CT_SOURCE_DIR "/ingress/openapi.json", 0, &je);
    cr_assert_not_null(doc, "openapi.json: %s (line %d)", je.text, je.line);
    cr_assert_str_eq(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    json_t *paths = json_object_get(doc, "paths"), *seen = json_object();
    const char *method, *pattern;
    size_t routes = 0;
    for (size_t i = 0; ct_api_route_at(i, &method, &pattern); i++, routes++) {
        char want[160], lower[8];
        snprintf(lower, sizeof lower, "%s", method);
        for (char *c = lower; *c; c++) *c = (char)(*c - 'A' + 'a');
        bool found = false;
        const char *path;
        json_t *ops;
        json_object_foreach(paths, path, ops) {
            /* /v1/users/{user_id}/balance -> /v1/users/{}/balance */
            char norm[160];
            size_t n = 0;
            for (const char *c = path; *c && n + 3 < sizeof norm; c++) {
                norm[n++] = *c;
                if (*c == '{') {
                    norm[n++] = '}';
                    c = strchr(c, '}');
                    cr_assert_not_null(c, "%s", path);
                }
            }
            norm[n] = '\0';
            if (strcmp(norm, pattern) == 0 && json_object_get(ops, lower)) {
                found = true;
                snprintf(want, sizeof want, "%s %s", lower, path);
                json_object_set_new(seen, want, json_true());
            }
        }
        cr_expect(found, "%s %s is not in openapi.json", method, pattern);
    }
    size_t documented = 0;
    const char *path;
    json_t *ops;
    json_object_foreach(paths, path, ops) documented += json_object_size(ops);
    cr_assert_eq(documented, json_object_size(seen), "openapi.json documents %zu operations, the server has %zu routes",
                 documented, routes);
    cr_assert_eq(routes, json_object_size(seen));
    json_decref(seen);
    json_decref(doc);
}

Test(api, a_token_event_stream_says_each_state_once_and_ends_after_a_final_one) {
    const char *waiting = "{\"token\":\"t1\",\"status\":\"WAITING\",\"position\":5,\"estimated_wait_ms\":3000,"
                          "\"issued_ts\":1800039600000}";
    char *out = NULL;
    cr_assert_eq(ct_api_token_event(waiting, NULL, &out), 200);
    cr_assert(strncmp(out, "retry: 1000\nid: WAITING:5\nevent: waiting\ndata: {", 47) == 0, "%s", out);
    cr_assert(strstr(out, "\"position\":5") && strstr(out, "\"issued_ts_rfc3339\":\"2027-01-15T19:00:00.000Z\""), "%s",
              out);
    const char *eol = strchr(strstr(out, "data: "), '\n');
    cr_assert(eol[1] == '\n' && eol[2] == '\0', "one data line, then the blank line that ends the event: %s", out);
    free(out);
    /* The same WAITING state again is still an answer (a position update). */
    cr_assert_eq(ct_api_token_event(waiting, "WAITING:5", &out), 200);
    free(out);
    const char *active = "{\"token\":\"t1\",\"status\":\"ACTIVE\",\"position\":0,\"active_until\":1800039660000}";
    cr_assert_eq(ct_api_token_event(active, "WAITING:5", &out), 200);
    cr_assert(strstr(out, "id: ACTIVE:0\nevent: active\n"), "%s", out);
    free(out);
    cr_assert_eq(ct_api_token_event(active, "ACTIVE:0", &out), 204, "delivered already: the stream ends");
    cr_assert_str_eq(out, "");
    free(out);
    const char *expired = "{\"token\":\"t1\",\"status\":\"EXPIRED\",\"position\":null}";
    cr_assert_eq(ct_api_token_event(expired, "WAITING:1", &out), 200);
    cr_assert(strstr(out, "id: EXPIRED:-1\nevent: expired\n"), "%s", out);
    free(out);
    cr_assert_eq(ct_api_token_event("{\"error\":{}}", NULL, &out), 0);
    cr_assert_null(out);
    cr_assert_eq(ct_api_token_event("not json", NULL, &out), 0);
}
