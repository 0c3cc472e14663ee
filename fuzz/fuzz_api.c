/* libFuzzer harness: the ingress's request validation (ct_api) and the
 * headers it parses, on arbitrary bytes. Input: a route byte, then three
 * NUL-separated fields (path parameter, header value, body). Every call
 * must return an answer (0, or -1 with a 4xx status and a code) without
 * touching memory it does not own; a built command must decode with the
 * processors' own codec (ct_api_build_command checks that itself). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ct_api.h"
#include "ct_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fixed_random(void *ctx, uint8_t *out, size_t n) {
    (void)ctx;
    for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(i * 37 + 11);
}

static void must(int ok) {
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const ct_api_route writes[] = {CT_ROUTE_ISSUE_TOKEN, CT_ROUTE_HOLD_SEAT, CT_ROUTE_REQUEST_PAYMENT,
                                          CT_ROUTE_CHARGE_BALANCE, CT_ROUTE_CREATE_CONCERT};
    ct_api_route route = writes[data[0] % (sizeof writes / sizeof writes[0])];
    char *copy = malloc(size);
    memcpy(copy, data + 1, size - 1);
    copy[size - 1] = '\0';
    /* param \0 header \0 body (the body is the rest, NULs included) */
    const char *param = copy;
    size_t pl = strlen(param);
    const char *header = pl + 1 < size - 1 ? copy + pl + 1 : "";
    size_t hl = strlen(header);
    bool has_body = pl + 1 + hl + 1 < size - 1;
    const char *body = has_body ? header + hl + 1 : "";
    size_t bl = has_body ? (size_t)((copy + size - 1) - body) : 0;

    ct_api_error e = {0};
    ct_api_command cmd;
    ct_api_request rq = {.route = route,
                         .param = param,
                         .user = "u1",
                         .queue_token = header,
                         .body = body,
                         .body_len = bl,
                         .ts_ms = 1700000000000,
                         .random = fixed_random};
    if (ct_api_build_command(&rq, &cmd, &e) == 0) {
        must(cmd.envelope && cmd.response && ct_api_uuid_valid(cmd.command_id));
        ct_api_command_clear(&cmd);
    } else {
        must(e.status >= 400 && e.status < 600 && e.code);
    }
    char *json = ct_api_error_json(&e);
    free(json);

    int wait = 0;
    if (ct_api_parse_prefer_wait(header, &wait, &e) == 0) must(wait >= 0 && wait <= CT_API_WAIT_S_MAX);
    ct_api_page page;
    static const ct_api_route pages[] = {CT_ROUTE_CONCERTS, CT_ROUTE_SEATS, CT_ROUTE_USER_RESERVATIONS};
    if (ct_api_parse_page(pages[data[0] % 3], param, header, &page, &e) == 0)
        must(page.limit >= 1 && page.limit <= CT_API_SEAT_PAGE_MAX);
    (void)ct_api_check_idempotency_key(header, &e);
    (void)ct_api_check_content_type(header, &e);
    char p1[80], p2[80];
    (void)ct_api_match2(data[0] & 1 ? "GET" : "POST", param, p1, p2, sizeof p1, &e);
    (void)ct_api_check_read_params(CT_ROUTE_SEATS, param, header, &e);
    char user[CT_AUTH_USER_BYTES_MAX + 1];
    ct_auth_result ar = ct_auth_verify("fuzz-key-0123456789abcdef0123456789abcdef", header, 1700000000, user);
    must(ar != CT_AUTH_OK || user[0]);
    char fp[CT_API_FINGERPRINT_CHARS + 1];
    ct_api_fingerprint(route, param, header, body, bl, fp);
    must(strlen(fp) == CT_API_FINGERPRINT_CHARS);
    free(copy);
    return 0;
}
