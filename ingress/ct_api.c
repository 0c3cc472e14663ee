/* ct_api: see ct_api.h. */
#include "ct_api.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "ct_codec.h"
#include "ct_domain_limits.h"
#include "ct_kafka.h"
#include "ct_record.h"
#include "ct_time.h"

#define FAIL(e, st, cd, ...)                                     \
    do {                                                         \
        (e)->status = (st);                                      \
        (e)->code = (cd);                                        \
        snprintf((e)->message, sizeof(e)->message, __VA_ARGS__); \
        return -1;                                               \
    } while (0)

/* ---- routing ------------------------------------------------------------ */

/* A pattern's "{}" stands for one non-empty path segment (no '/'),
 * copied into the next parameter. */
typedef struct route_spec {
    const char *method;
    const char *pattern;
    ct_api_route route;
    ct_cmd_type cmd; /* what a write route's request becomes (its body's checks come from its catalogue row) */
} route_spec;

static const route_spec routes[] = {
    {"GET", "/healthz", CT_ROUTE_HEALTHZ, CT_CMD_NONE},
    {"GET", "/readyz", CT_ROUTE_READYZ, CT_CMD_NONE},
    {"GET", "/metrics", CT_ROUTE_METRICS, CT_CMD_NONE},
    {"GET", "/openapi.json", CT_ROUTE_OPENAPI, CT_CMD_NONE},
    {"POST", "/v1/queue/tokens", CT_ROUTE_ISSUE_TOKEN, CT_CMD_ISSUE_TOKEN},
    {"GET", "/v1/queue/tokens/{}", CT_ROUTE_TOKEN_STATUS, CT_CMD_NONE},
    {"GET", "/v1/queue/tokens/{}/events", CT_ROUTE_TOKEN_EVENTS, CT_CMD_NONE},
    {"POST", "/v1/reservations", CT_ROUTE_HOLD_SEAT, CT_CMD_HOLD_SEAT},
    {"GET", "/v1/reservations/{}", CT_ROUTE_RESERVATION, CT_CMD_NONE},
    {"POST", "/v1/payments", CT_ROUTE_REQUEST_PAYMENT, CT_CMD_REQUEST_PAYMENT},
    {"POST", "/v1/users/{}/balance/charge", CT_ROUTE_CHARGE_BALANCE, CT_CMD_CHARGE_BALANCE},
    {"GET", "/v1/users/{}/balance", CT_ROUTE_BALANCE, CT_CMD_NONE},
    {"GET", "/v1/users/{}/reservations", CT_ROUTE_USER_RESERVATIONS, CT_CMD_NONE},
    {"POST", "/v1/admin/concerts", CT_ROUTE_CREATE_CONCERT, CT_CMD_CREATE_CONCERT},
    {"GET", "/v1/concerts", CT_ROUTE_CONCERTS, CT_CMD_NONE},
    {"GET", "/v1/concerts/{}/schedules", CT_ROUTE_SCHEDULES, CT_CMD_NONE},
    {"GET", "/v1/concerts/{}/schedules/{}/seats", CT_ROUTE_SEATS, CT_CMD_NONE},
    {"GET", "/v1/commands/{}", CT_ROUTE_COMMAND_STATUS, CT_CMD_NONE},
    {"GET", "/v1/admin/outbox", CT_ROUTE_OUTBOX_LIST, CT_CMD_NONE},
    {"POST", "/v1/admin/outbox/{}/retry", CT_ROUTE_OUTBOX_RETRY, CT_CMD_NONE},
    {"POST", "/v1/admin/outbox/retry", CT_ROUTE_OUTBOX_RETRY_FAILED, CT_CMD_NONE},
    {"GET", "/v1/admin/topics", CT_ROUTE_ADMIN_TOPICS, CT_CMD_NONE},
    {"GET", "/v1/admin/topics/{}/records", CT_ROUTE_ADMIN_RECORDS, CT_CMD_NONE},
    {"POST", "/v1/admin/topics/{}/records", CT_ROUTE_ADMIN_PRODUCE, CT_CMD_NONE},
    {"GET", "/v1/admin/consumers", CT_ROUTE_ADMIN_CONSUMERS, CT_CMD_NONE},
    {"GET", "/v1/admin/queues", CT_ROUTE_ADMIN_QUEUES, CT_CMD_NONE},
    {"GET", "/v1/admin/slack", CT_ROUTE_ADMIN_SLACK, CT_CMD_NONE},
};

bool ct_api_route_at(size_t i, const char **method, const char **pattern) {
    if (i >= sizeof routes / sizeof routes[0]) return false;
    *method = routes[i].method, *pattern = routes[i].pattern;
    return true;
}

static bool path_matches(const route_spec *r, const char *path, char *param, char *param2, size_t param_bytes) {
    const char *p = r->pattern, *u = path;
    int nparam = 0;
    while (*p) {
        if (p[0] == '{' && p[1] == '}') {
            size_t n = strcspn(u, "/");
            if (n == 0 || n >= param_bytes || nparam >= 2) return false;
            char *dst = nparam++ == 0 ? param : param2;
            memcpy(dst, u, n);
            dst[n] = 0;
            u += n, p += 2;
        } else if (*p++ != *u++) {
            return false;
        }
    }
    return *u == 0;
}

ct_api_route ct_api_match2(const char *method, const char *path, char *param, char *param2, size_t param_bytes,
                           ct_api_error *e) {
    bool head = strcmp(method, "HEAD") == 0, path_known = false;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        param[0] = param2[0] = 0;
        if (!path_matches(&routes[i], path, param, param2, param_bytes)) continue;
        path_known = true;
        if (strcmp(method, routes[i].method) == 0 || (head && strcmp(routes[i].method, "GET") == 0))
            return routes[i].route;
    }
    param[0] = param2[0] = 0;
    if (path_known) {
        e->status = 405, e->code = "METHOD_NOT_ALLOWED";
        snprintf(e->message, sizeof e->message, "%s is not allowed on %.200s", method, path);
    } else {
        e->status = 404, e->code = "NOT_FOUND";
        snprintf(e->message, sizeof e->message, "no such endpoint");
    }
    return CT_ROUTE_NONE;
}

ct_api_route ct_api_match(const char *method, const char *path, char *param, size_t param_bytes, ct_api_error *e) {
    char scratch[param_bytes > 0 ? param_bytes : 1];
    return ct_api_match2(method, path, param, scratch, param_bytes, e);
}

bool ct_api_route_is_console(ct_api_route r) {
    return r == CT_ROUTE_OUTBOX_RETRY_FAILED || r == CT_ROUTE_ADMIN_TOPICS || r == CT_ROUTE_ADMIN_RECORDS ||
           r == CT_ROUTE_ADMIN_PRODUCE || r == CT_ROUTE_ADMIN_CONSUMERS || r == CT_ROUTE_ADMIN_QUEUES ||
           r == CT_ROUTE_ADMIN_SLACK;
}

bool ct_api_route_is_admin(ct_api_route r) {
    return r == CT_ROUTE_CREATE_CONCERT || r == CT_ROUTE_OUTBOX_LIST || r == CT_ROUTE_OUTBOX_RETRY ||
           ct_api_route_is_console(r);
}

/* The command a write route's request becomes; CT_CMD_NONE for any other
 * route. */
static ct_cmd_type route_command(ct_api_route r) {
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (routes[i].route == r) return routes[i].cmd;
    return CT_CMD_NONE;
}

bool ct_api_route_is_write(ct_api_route r) { return r >= CT_ROUTE_ISSUE_TOKEN && r <= CT_ROUTE_CREATE_CONCERT; }

/* ---- headers ------------------------------------------------------------ */

int ct_api_check_admin(const char *authorization, const char *admin_key, ct_api_error *e) {
    if (!admin_key || !admin_key[0])
        FAIL(e, 403, "ADMIN_DISABLED", "admin endpoints are disabled: CONCERT_ADMIN_KEY is not set");
    static const char bearer[] = "Bearer ";
    if (!authorization || strncmp(authorization, bearer, sizeof bearer - 1) != 0)
        FAIL(e, 401, "UNAUTHORIZED", "Authorization: Bearer <admin key> required");
    const char *given = authorization + sizeof bearer - 1;
    size_t kl = strlen(admin_key), gl = strlen(given);
    /* Every byte of the key is compared whatever the input, so the time
     * taken says nothing about how much of a guess was right. */
    volatile unsigned char diff = (unsigned char)(gl != kl);
    for (size_t i = 0; i < kl; i++) diff |= (unsigned char)(admin_key[i] ^ (i < gl ? given[i] : 0));
    if (diff) FAIL(e, 401, "UNAUTHORIZED", "wrong admin key");
    return 0;
}

bool ct_api_route_is_user(ct_api_route r) {
    switch (r) {
    case CT_ROUTE_ISSUE_TOKEN:
    case CT_ROUTE_HOLD_SEAT:
    case CT_ROUTE_REQUEST_PAYMENT:
    case CT_ROUTE_CHARGE_BALANCE:
    case CT_ROUTE_COMMAND_STATUS:
    case CT_ROUTE_TOKEN_STATUS:
    case CT_ROUTE_TOKEN_EVENTS:
    case CT_ROUTE_RESERVATION:
    case CT_ROUTE_USER_RESERVATIONS:
    case CT_ROUTE_BALANCE: return true;
    case CT_ROUTE_NONE:
    case CT_ROUTE_HEALTHZ:
    case CT_ROUTE_READYZ:
    case CT_ROUTE_METRICS:
    case CT_ROUTE_OPENAPI:
    case CT_ROUTE_CREATE_CONCERT:
    case CT_ROUTE_OUTBOX_LIST:
    case CT_ROUTE_OUTBOX_RETRY:
    case CT_ROUTE_CONCERTS:
    case CT_ROUTE_SCHEDULES:
    case CT_ROUTE_SEATS:
    case CT_ROUTE_OUTBOX_RETRY_FAILED:
    case CT_ROUTE_ADMIN_TOPICS:
    case CT_ROUTE_ADMIN_RECORDS:
    case CT_ROUTE_ADMIN_PRODUCE:
    case CT_ROUTE_ADMIN_CONSUMERS:
    case CT_ROUTE_ADMIN_QUEUES:
    case CT_ROUTE_ADMIN_SLACK: return false;
    }
    return false;
}

bool ct_api_route_admin_may_read(ct_api_route r) { return ct_api_route_is_user(r) && ct_api_route_is_read(r); }

int ct_api_auth_error(ct_auth_result res, ct_api_error *e) {
    switch (res) {
    case CT_AUTH_OK: return 0;
    case CT_AUTH_MISSING:
        FAIL(e, 401, "UNAUTHORIZED",
             "a user's token is required: Authorization: Bearer <token>"
             " (concert auth token USER prints one)");
    case CT_AUTH_INVALID: FAIL(e, 401, "INVALID_TOKEN", "the bearer token is not valid");
    case CT_AUTH_EXPIRED: FAIL(e, 401, "TOKEN_EXPIRED", "the bearer token has expired");
    }
    FAIL(e, 401, "INVALID_TOKEN", "the bearer token is not valid");
}

int ct_api_check_user(ct_api_route r, const char *user, const char *param, ct_api_error *e) {
    bool path_user = r == CT_ROUTE_CHARGE_BALANCE || r == CT_ROUTE_BALANCE || r == CT_ROUTE_USER_RESERVATIONS;
    if (path_user && (!user || !param || strcmp(user, param) != 0))
        FAIL(e, 403, "FORBIDDEN", "a user acts and reads only as themselves (the token is for another user)");
    return 0;
}

int ct_api_check_content_type(const char *ct, ct_api_error *e) {
    static const char json[] = "application/json";
    size_t n = sizeof json - 1;
    if (!ct || strncasecmp(ct, json, n) != 0 || (ct[n] && ct[n] != ';' && ct[n] != ' '))
        FAIL(e, 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json");
    return 0;
}

int ct_api_check_idempotency_key(const char *key, ct_api_error *e) {
    if (!key) return 0;
    size_t n = strlen(key);
    if (n == 0 || n > CT_API_IDEMPOTENCY_KEY_BYTES_MAX)
        FAIL(e, 400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1..%d characters",
             CT_API_IDEMPOTENCY_KEY_BYTES_MAX);
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            FAIL(e, 400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be visible ASCII characters");
    return 0;
}

/* ---- generated ids ------------------------------------------------------ */

static void b64url(const uint8_t *in, size_t n, char *out) { /* n*8/6 chars, no padding */
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i], bits += 8;
        while (bits >= 6) out[o++] = a[(acc >> (bits - 6)) & 63], bits -= 6;
    }
    if (bits > 0) out[o++] = a[(acc << (6 - bits)) & 63];
    out[o] = 0;
}

static void random_token(const ct_api_request *rq, char out[CT_API_TOKEN_CHARS + 1]) {
    uint8_t r[16];
    rq->random(rq->random_ctx, r, sizeof r);
    b64url(r, sizeof r, out);
}

/* UUID v7 (RFC 9562): the command's millisecond time, then 74 random bits.
 * Ids in time order land at the right edge of the outbox's command_id
 * index instead of on a random leaf. */
static void time_uuid(const ct_api_request *rq, char out[CT_API_UUID_CHARS + 1]) {
    uint8_t r[16];
    rq->random(rq->random_ctx, r, sizeof r);
    uint64_t ms = rq->ts_ms > 0 ? (uint64_t)rq->ts_ms : 0;
    for (int i = 0; i < 6; i++) r[i] = (uint8_t)(ms >> (40 - 8 * i));
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x70), r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    snprintf(out, CT_API_UUID_CHARS + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
}

bool ct_api_uuid_valid(const char *s) {
    if (strlen(s) != CT_API_UUID_CHARS) return false;
    for (int i = 0; i < CT_API_UUID_CHARS; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    }
    return true;
}

static bool concert_id_valid(const char *s) {
    if (strlen(s) != CT_API_CONCERT_ID_CHARS) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}

static bool token_valid(const char *s) { return strlen(s) == CT_API_TOKEN_CHARS && ct_id_valid(s, CT_API_TOKEN_CHARS); }

/* ---- body validation ---------------------------------------------------- */

/* F_TIME: epoch milliseconds, or an RFC 3339 string (ct_time) turned into them. */
typedef enum ftype { F_ID, F_CONCERT_ID, F_RESERVATION_ID, F_INT, F_TIME, F_TITLE, F_SCHEDULES } ftype;

typedef struct fspec {
    const char *name;
    ftype type;
    bool required;
    int64_t lo, hi;
} fspec;

#define END_ \
    { NULL, 0, false, 0, 0 }

/* Each command's body fields, from its catalogue rows (domain/ct_catalog.h,
 * the IN column): the bearer's user first (USER: optional, and when given
 * it must be that user, ct_api_build_command), then those a client sends
 * (BODY, CONCERT_ID, RESERVATION_ID) in catalogue order, with the
 * catalogue's kind, REQ/OPT and range. Fields the ingress makes or takes
 * from the path or a header are not the body's: sent, they are unknown. A
 * KIND no body carries (BOOL, REASON) has no F_ type and does not compile. */
#define BODY_FTYPE_ID F_ID
#define BODY_FTYPE_I64 F_INT
#define BODY_FTYPE_U32 F_INT
#define BODY_FTYPE_TITLE F_TITLE
#define BODY_FTYPE_SCHEDULES F_SCHEDULES
#define BODY_REQ true
#define BODY_OPT false
#define BODY_USER(m, kind, json, member, req, lo, hi, dflt, in) BODY_USER_##in(json)
#define BODY_USER_USER(json) {#json, F_ID, false, 0, 0},
#define BODY_USER_BODY(json)
#define BODY_USER_CONCERT_ID(json)
#define BODY_USER_RESERVATION_ID(json)
#define BODY_USER_PATH(json)
#define BODY_USER_HEADER(json)
#define BODY_USER_MADE(json)
#define BODY_USER_NONE(json)
#define BODY_SENT(m, kind, json, member, req, lo, hi, dflt, in) BODY_SENT_##in(kind, json, req, lo, hi)
#define BODY_SENT_BODY(kind, json, req, lo, hi) {#json, BODY_FTYPE_##kind, BODY_##req, lo, hi},
#define BODY_SENT_CONCERT_ID(kind, json, req, lo, hi) {#json, F_CONCERT_ID, BODY_##req, 0, 0},
#define BODY_SENT_RESERVATION_ID(kind, json, req, lo, hi) {#json, F_RESERVATION_ID, BODY_##req, 0, 0},
#define BODY_SENT_USER(kind, json, req, lo, hi)
#define BODY_SENT_PATH(kind, json, req, lo, hi)
#define BODY_SENT_HEADER(kind, json, req, lo, hi)
#define BODY_SENT_MADE(kind, json, req, lo, hi)
#define BODY_SENT_NONE(kind, json, req, lo, hi)
#define CT_X(type, member, name, role, key, from) \
    static const fspec body_##member[] = {CT_FIELDS_##type(BODY_USER, member) CT_FIELDS_##type(BODY_SENT, member) END_};
CT_COMMANDS(CT_X)
#undef CT_X
/* By command type; only client commands have write routes. */
static const fspec *const body_fields[CT_CMD_TYPE_COUNT_] = {
#define CT_X(type, member, name, role, key, from) [CT_CMD_##type] = body_##member,
    CT_COMMANDS(CT_X)
#undef CT_X
};
/* A schedule of CreateConcert's schedules: the catalogue's SCHEDULES kind
 * is one field, its members are checked here and in ct_codec. */
static const fspec schedule_fields[] = {{"starts_at", F_TIME, true, 0, CT_TS_MS_MAX},
                                        {"seats", F_INT, true, 1, CT_SEATS_PER_SCHEDULE_MAX},
                                        {"price", F_INT, true, 0, CT_PRICE_WON_MAX},
                                        END_};

static int check_fields(json_t *obj, const fspec *spec, const char *where, ct_api_error *e);

/* A validated F_TIME value as epoch milliseconds (a new reference). */
static json_t *time_ms(json_t *v) {
    int64_t ms = 0;
    if (json_is_integer(v)) return json_integer(json_integer_value(v));
    ct_time_parse_rfc3339(json_string_value(v), json_string_length(v), &ms);
    return json_integer(ms);
}

static int check_value(json_t *v, const fspec *f, const char *name, ct_api_error *e) {
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    switch (f->type) {
    case F_ID:
        if (!s || !ct_id_valid(s, strlen(s)))
            FAIL(e, 422, "INVALID_FIELD", "field %s: must be 1..%d characters of [A-Za-z0-9_-]", name, CT_ID_BYTES_MAX);
        return 0;
    case F_CONCERT_ID:
        if (!s || !concert_id_valid(s))
            FAIL(e, 422, "INVALID_FIELD", "field %s: must be a concert id (%d lowercase hex characters)", name,
                 CT_API_CONCERT_ID_CHARS);
        return 0;
    case F_RESERVATION_ID:
        if (!s || strlen(s) != CT_API_CONCERT_ID_CHARS + 1 + CT_API_TOKEN_CHARS || s[CT_API_CONCERT_ID_CHARS] != '_' ||
            !ct_id_valid(s, strlen(s)) || !token_valid(s + CT_API_CONCERT_ID_CHARS + 1)) {
            FAIL(e, 422, "INVALID_FIELD", "field %s: must be a reservation id as returned by POST /v1/reservations",
                 name);
        }
        char concert[CT_API_CONCERT_ID_CHARS + 1];
        memcpy(concert, s, CT_API_CONCERT_ID_CHARS), concert[CT_API_CONCERT_ID_CHARS] = 0;
        if (!concert_id_valid(concert))
            FAIL(e, 422, "INVALID_FIELD", "field %s: must be a reservation id as returned by POST /v1/reservations",
                 name);
        return 0;
    case F_INT:
        if (!json_is_integer(v)) FAIL(e, 422, "INVALID_FIELD", "field %s: must be an integer", name);
        if (json_integer_value(v) < f->lo || json_integer_value(v) > f->hi)
            FAIL(e, 422, "INVALID_FIELD", "field %s: must be between %lld and %lld", name, (long long)f->lo,
                 (long long)f->hi);
        return 0;
    case F_TIME: {
        int64_t ms = 0;
        if (json_is_integer(v))
            ms = json_integer_value(v);
        else if (!s || ct_time_parse_rfc3339(s, json_string_length(v), &ms) != 0)
            FAIL(e, 422, "INVALID_FIELD",
                 "field %s: must be an RFC 3339 time (like 2027-01-15T19:00:00Z) or milliseconds since the epoch",
                 name);
        if (ms < f->lo || ms > f->hi) {
            char lo[CT_TIME_RFC3339_BYTES] = "?", hi[CT_TIME_RFC3339_BYTES] = "?";
            ct_time_format_rfc3339(f->lo, lo), ct_time_format_rfc3339(f->hi, hi);
            FAIL(e, 422, "INVALID_FIELD", "field %s: must be between %s and %s", name, lo, hi);
        }
        return 0;
    }
    case F_TITLE: {
        size_t n = s ? json_string_length(v) : 0;
        if (!s || n == 0 || n > CT_TITLE_BYTES_MAX || memchr(s, 0, n))
            FAIL(e, 422, "INVALID_FIELD", "field %s: must be a string of 1..%d bytes", name, CT_TITLE_BYTES_MAX);
        return 0;
    }
    case F_SCHEDULES: {
        size_t n = json_is_array(v) ? json_array_size(v) : 0;
        if (!json_is_array(v) || n < 1 || n > CT_SCHEDULES_PER_CONCERT_MAX)
            FAIL(e, 422, "INVALID_FIELD", "field %s: must be an array of 1..%d schedules", name,
                 CT_SCHEDULES_PER_CONCERT_MAX);
        for (size_t i = 0; i < n; i++) {
            char where[128];
            snprintf(where, sizeof where, "%s[%zu]", name, i);
            if (check_fields(json_array_get(v, i), schedule_fields, where, e) != 0) return -1;
        }
        return 0;
    }
    }
    FAIL(e, 500, "INTERNAL", "unknown field type");
}

static int check_fields(json_t *obj, const fspec *spec, const char *where, ct_api_error *e) {
    if (!json_is_object(obj)) FAIL(e, 422, "INVALID_FIELD", "%s: must be a JSON object", where[0] ? where : "body");
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        const fspec *f = spec;
        while (f->name && strcmp(f->name, k) != 0) f++;
        if (!f->name) FAIL(e, 422, "UNKNOWN_FIELD", "unknown field %s%s%.64s", where, where[0] ? "." : "", k);
    }
    for (const fspec *f = spec; f->name; f++) {
        char name[96];
        snprintf(name, sizeof name, "%s%s%s", where, where[0] ? "." : "", f->name);
        json_t *fv = json_object_get(obj, f->name);
        if (!fv || json_is_null(fv)) {
            if (f->required) FAIL(e, 422, "MISSING_FIELD", "field %s is required", name);
            continue;
        }
        if (check_value(fv, f, name, e) != 0) return -1;
    }
    return 0;
}

/* ---- commands ----------------------------------------------------------- */

static char *dump(json_t *j) { return json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII); }

/* The command of type t (its name and topic from the catalogue) with its
 * envelope and the answer to give, checked by the processors' decoder. */
static int finish(const ct_api_request *rq, ct_api_command *out, ct_cmd_type t, const char *key, json_t *data,
                  json_t *response, ct_api_error *e) {
    const char *type = ct_cmd_type_name(t);
    out->type = type;
    out->topic = ct_topic_name(ct_cmd_type_topic(t));
    snprintf(out->key, sizeof out->key, "%s", key);
    time_uuid(rq, out->command_id);
    json_t *env = json_pack("{s:s, s:s, s:i, s:I, s:s, s:s, s:O}", "id", out->command_id, "type", type, "v", 1, "ts",
                            (json_int_t)rq->ts_ms, "command_id", out->command_id, "key", key, "data", data);
    char status_url[64];
    snprintf(status_url, sizeof status_url, "/v1/commands/%s", out->command_id);
    json_object_set_new(response, "command_id", json_string(out->command_id));
    json_object_set_new(response, "status_url", json_string(status_url));
    out->envelope = env ? dump(env) : NULL;
    out->response = dump(response);
    json_decref(env);
    json_decref(response);
    json_decref(data);
    if (!out->envelope || !out->response) {
        ct_api_command_clear(out);
        FAIL(e, 500, "INTERNAL", "out of memory");
    }
    /* The processors' own decoder has the last word. */
    ct_cmd cmd;
    ct_error derr = {0};
    if (ct_codec_decode(out->envelope, strlen(out->envelope), &cmd, &derr) != 0) {
        ct_api_command_clear(out);
        FAIL(e, 422, "INVALID_COMMAND", "%s", derr.msg);
    }
    return 0;
}

int ct_api_build_command(const ct_api_request *rq, ct_api_command *out, ct_api_error *e) {
    memset(out, 0, sizeof *out);
    if (rq->body_len > CT_API_BODY_BYTES_MAX)
        FAIL(e, 413, "BODY_TOO_LARGE", "request body over %d bytes", CT_API_BODY_BYTES_MAX);
    json_error_t jerr;
    json_t *body = json_loadb(rq->body ? rq->body : "", rq->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) FAIL(e, 400, "BAD_JSON", "body is not valid JSON: %.120s (at byte %d)", jerr.text, jerr.position);
    if (!json_is_object(body)) {
        json_decref(body);
        FAIL(e, 422, "INVALID_FIELD", "body: must be a JSON object");
    }
    ct_cmd_type t = route_command(rq->route);
    const fspec *spec = t != CT_CMD_NONE ? body_fields[t] : NULL;
    int rc = -1;
    if (!spec) {
        e->status = 404, e->code = "NOT_FOUND";
        snprintf(e->message, sizeof e->message, "no such endpoint");
        goto out;
    }
    if (check_fields(body, spec, "", e) != 0) goto out;
    /* Users act as themselves: the token's user, also when a body names one. */
    bool acts_as_user = ct_api_route_is_user(rq->route);
    if (acts_as_user && (!rq->user || !rq->user[0])) {
        (void)ct_api_auth_error(CT_AUTH_MISSING, e); /* fills e */
        goto out;
    }
    const char *body_user = json_string_value(json_object_get(body, "user_id"));
    if (acts_as_user && body_user && strcmp(body_user, rq->user) != 0) {
        e->status = 403, e->code = "FORBIDDEN";
        snprintf(e->message, sizeof e->message, "user_id must be the token's user: a user acts only as themselves");
        goto out;
    }
    bool needs_token = rq->route == CT_ROUTE_HOLD_SEAT || rq->route == CT_ROUTE_REQUEST_PAYMENT;
    if (needs_token && !rq->queue_token) {
        e->status = 400, e->code = "MISSING_QUEUE_TOKEN";
        snprintf(e->message, sizeof e->message, "header X-Queue-Token is required");
        goto out;
    }
    if (needs_token && !token_valid(rq->queue_token)) {
        e->status = 400, e->code = "INVALID_QUEUE_TOKEN";
        snprintf(e->message, sizeof e->message,
                 "header X-Queue-Token must be a token as returned by POST /v1/queue/tokens");
        goto out;
    }
#define S(name) json_string_value(json_object_get(body, name))
    json_t *response = json_object(), *data = NULL;
    switch (rq->route) {
    case CT_ROUTE_ISSUE_TOKEN: {
        char token[CT_API_TOKEN_CHARS + 1];
        random_token(rq, token);
        data = json_pack("{s:s, s:s, s:s}", "token", token, "user_id", rq->user, "concert_id", S("concert_id"));
        json_object_set_new(response, "token", json_string(token));
        rc = finish(rq, out, t, S("concert_id"), data, response, e);
        break;
    }
    case CT_ROUTE_HOLD_SEAT: {
        char rid[CT_API_CONCERT_ID_CHARS + 1 + CT_API_TOKEN_CHARS + 1], r[CT_API_TOKEN_CHARS + 1];
        random_token(rq, r);
        snprintf(rid, sizeof rid, "%s_%s", S("concert_id"), r);
        data = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O}", "reservation_id", rid, "token", rq->queue_token, "user_id",
                         rq->user, "concert_id", S("concert_id"), "schedule_id", S("schedule_id"), "seat_no",
                         json_object_get(body, "seat_no"));
        json_object_set_new(response, "reservation_id", json_string(rid));
        rc = finish(rq, out, t, S("concert_id"), data, response, e);
        break;
    }
    case CT_ROUTE_REQUEST_PAYMENT: {
        char pid[CT_API_TOKEN_CHARS + 1], concert[CT_API_CONCERT_ID_CHARS + 1];
        random_token(rq, pid);
        memcpy(concert, S("reservation_id"), CT_API_CONCERT_ID_CHARS), concert[CT_API_CONCERT_ID_CHARS] = 0;
        data = json_pack("{s:s, s:s, s:s, s:s, s:s}", "payment_id", pid, "reservation_id", S("reservation_id"), "token",
                         rq->queue_token, "user_id", rq->user, "concert_id", concert);
        json_object_set_new(response, "payment_id", json_string(pid));
        rc = finish(rq, out, t, concert, data, response, e);
        break;
    }
    case CT_ROUTE_CHARGE_BALANCE:
        if (!rq->param || !ct_id_valid(rq->param, strlen(rq->param))) {
            json_decref(response);
            e->status = 422, e->code = "INVALID_FIELD";
            snprintf(e->message, sizeof e->message, "path user id: must be 1..%d characters of [A-Za-z0-9_-]",
                     CT_ID_BYTES_MAX);
            goto out;
        }
        data = json_pack("{s:s, s:O}", "user_id", rq->param, "amount", json_object_get(body, "amount"));
        rc = finish(rq, out, t, rq->param, data, response, e);
        break;
    case CT_ROUTE_CREATE_CONCERT: {
        uint8_t r[12];
        char cid[CT_API_CONCERT_ID_CHARS + 1];
        rq->random(rq->random_ctx, r, sizeof r);
        for (int i = 0; i < 12; i++) snprintf(cid + 2 * i, 3, "%02x", r[i]);
        json_t *in = json_object_get(body, "schedules"), *sched = json_array(), *ids = json_array();
        for (size_t i = 0; i < json_array_size(in); i++) {
            json_t *s = json_array_get(in, i);
            char sid[24];
            snprintf(sid, sizeof sid, "%zu", i + 1);
            json_array_append_new(sched, json_pack("{s:s, s:o, s:O, s:O}", "schedule_id", sid, "starts_at",
                                                   time_ms(json_object_get(s, "starts_at")), "seats",
                                                   json_object_get(s, "seats"), "price", json_object_get(s, "price")));
            json_array_append_new(ids, json_string(sid));
        }
        data = json_pack("{s:s, s:s, s:o}", "concert_id", cid, "title", S("title"), "schedules", sched);
        static const char *const opt[] = {"max_active", "active_ttl_ms", "hold_ttl_ms"};
        for (int i = 0; i < 3; i++) {
            json_t *v = json_object_get(body, opt[i]);
            if (v && !json_is_null(v)) json_object_set(data, opt[i], v);
        }
        json_object_set_new(response, "concert_id", json_string(cid));
        json_object_set_new(response, "schedule_ids", ids);
        rc = finish(rq, out, t, cid, data, response, e);
        break;
    }
    default: json_decref(response); break;
    }
#undef S
out:
    json_decref(body);
    return rc;
}

void ct_api_command_clear(ct_api_command *c) {
    free(c->envelope);
    free(c->response);
    c->envelope = c->response = NULL;
}

static bool time_name(const char *k) {
    size_t n = strlen(k);
    return (n > 3 && (strcmp(k + n - 3, "_ts") == 0 || strcmp(k + n - 3, "_at") == 0)) ||
           (n > 6 && strcmp(k + n - 6, "_until") == 0);
}

/* Adds the twins under j; how many. */
static int add_times(json_t *j) {
    int added = 0;
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++) added += add_times(json_array_get(j, i));
        return added;
    }
    if (!json_is_object(j)) return 0;
    const char *k;
    json_t *v;
    json_t *twins = json_object();
    json_object_foreach(j, k, v) {
        char name[128], text[CT_TIME_RFC3339_BYTES];
        added += add_times(v);
        if (!json_is_integer(v) || !time_name(k) || strlen(k) + sizeof "_rfc3339" > sizeof name) continue;
        snprintf(name, sizeof name, "%s_rfc3339", k);
        if (!json_object_get(j, name) && ct_time_format_rfc3339(json_integer_value(v), text) == 0)
            json_object_set_new(twins, name, json_string(text)), added++;
    }
    json_object_update(j, twins);
    json_decref(twins);
    return added;
}

char *ct_api_times_rfc3339(const char *body) {
    /* Most answers have no time at all: skip parsing them. */
    if (!body || (!strstr(body, "_ts\"") && !strstr(body, "_at\"") && !strstr(body, "_until\""))) return NULL;
    json_t *j = json_loads(body, JSON_DECODE_ANY, NULL);
    char *out = j && add_times(j) > 0 ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    return out;
}

unsigned ct_api_token_event(const char *token_json, const char *last_event_id, char **out) {
    *out = NULL;
    json_t *j = token_json ? json_loads(token_json, 0, NULL) : NULL;
    const char *status = json_string_value(json_object_get(j, "status"));
    if (!status) {
        json_decref(j);
        return 0;
    }
    char id[64], event[16];
    json_t *pos = json_object_get(j, "position");
    snprintf(id, sizeof id, "%s:%lld", status, json_is_integer(pos) ? (long long)json_integer_value(pos) : -1LL);
    snprintf(event, sizeof event, "%s", status);
    for (char *c = event; *c; c++) *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    unsigned code = 200;
    if (strcmp(status, "WAITING") != 0 && last_event_id && strcmp(last_event_id, id) == 0) {
        code = 204; /* the final state was delivered: the stream ends */
        *out = strdup("");
    } else {
        char *data = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER), *timed = ct_api_times_rfc3339(data);
        if (data && asprintf(out, "retry: %d\nid: %s\nevent: %s\ndata: %s\n\n", CT_API_TOKEN_EVENTS_RETRY_MS, id, event,
                             timed ? timed : data) < 0)
            *out = NULL;
        free(data), free(timed);
    }
    json_decref(j);
    return *out ? code : 0;
}

char *ct_api_error_json(const ct_api_error *e) {
    json_t *j = json_pack("{s:{s:s, s:s}}", "error", "code", e->code ? e->code : "ERROR", "message", e->message);
    char *s = j ? dump(j) : NULL;
    json_decref(j);
    return s;
}

void ct_api_fingerprint(ct_api_route r, const char *param, const char *queue_token, const char *body, size_t len,
                        char out[CT_API_FINGERPRINT_CHARS + 1]) {
    /* SHA-256 of the route and each part with its length before it, so no
     * two different requests share an input, and no request can be made up
     * to match another's fingerprint. */
    unsigned char md[32];
    unsigned int mdn = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint64_t head[4] = {(uint64_t)r, param ? strlen(param) : 0, queue_token ? strlen(queue_token) : 0, len};
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(ctx, head, sizeof head) == 1 &&
              EVP_DigestUpdate(ctx, param ? param : "", head[1]) == 1 &&
              EVP_DigestUpdate(ctx, queue_token ? queue_token : "", head[2]) == 1 &&
              EVP_DigestUpdate(ctx, body ? body : "", len) == 1 && EVP_DigestFinal_ex(ctx, md, &mdn) == 1 && mdn == 32;
    EVP_MD_CTX_free(ctx);
    if (!ok) { /* cannot happen with a working libcrypto: a value no replay can match */
        memset(md, 0, sizeof md);
        (void)getrandom(md, sizeof md, 0);
    }
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- the read side ------------------------------------------------------ */

bool ct_api_route_is_read(ct_api_route r) {
    return r >= CT_ROUTE_COMMAND_STATUS && r != CT_ROUTE_OUTBOX_LIST && r != CT_ROUTE_OUTBOX_RETRY &&
           !ct_api_route_is_console(r);
}

static bool reservation_id_valid(const char *s) {
    if (strlen(s) != CT_API_CONCERT_ID_CHARS + 1 + CT_API_TOKEN_CHARS || s[CT_API_CONCERT_ID_CHARS] != '_')
        return false;
    char concert[CT_API_CONCERT_ID_CHARS + 1];
    memcpy(concert, s, CT_API_CONCERT_ID_CHARS), concert[CT_API_CONCERT_ID_CHARS] = 0;
    return concert_id_valid(concert) && token_valid(s + CT_API_CONCERT_ID_CHARS + 1);
}

static bool plain_id_valid(const char *s) { return s[0] && ct_id_valid(s, strlen(s)); }

int ct_api_check_read_params(ct_api_route r, const char *param, const char *param2, ct_api_error *e) {
    switch (r) {
    case CT_ROUTE_COMMAND_STATUS:
        if (!ct_api_uuid_valid(param)) FAIL(e, 400, "INVALID_ID", "command ids are lowercase UUIDs");
        return 0;
    case CT_ROUTE_TOKEN_STATUS:
    case CT_ROUTE_TOKEN_EVENTS:
        if (!token_valid(param))
            FAIL(e, 400, "INVALID_ID", "a queue token is %d characters of [A-Za-z0-9_-]", CT_API_TOKEN_CHARS);
        return 0;
    case CT_ROUTE_SCHEDULES:
    case CT_ROUTE_SEATS:
        if (!concert_id_valid(param))
            FAIL(e, 400, "INVALID_ID", "a concert id is %d lowercase hex characters", CT_API_CONCERT_ID_CHARS);
        if (r == CT_ROUTE_SEATS && !plain_id_valid(param2))
            FAIL(e, 400, "INVALID_ID", "a schedule id is 1..%d characters of [A-Za-z0-9_-]", CT_ID_BYTES_MAX);
        return 0;
    case CT_ROUTE_RESERVATION:
        if (!reservation_id_valid(param))
            FAIL(e, 400, "INVALID_ID", "not a reservation id as returned by POST /v1/reservations");
        return 0;
    case CT_ROUTE_BALANCE:
    case CT_ROUTE_USER_RESERVATIONS:
        if (!plain_id_valid(param))
            FAIL(e, 400, "INVALID_ID", "a user id is 1..%d characters of [A-Za-z0-9_-]", CT_ID_BYTES_MAX);
        return 0;
    default: return 0;
    }
}

int ct_api_parse_page(ct_api_route r, const char *limit, const char *after, ct_api_page *out, ct_api_error *e) {
    bool seats = r == CT_ROUTE_SEATS;
    int def = seats ? CT_API_SEAT_PAGE_DEFAULT : CT_API_PAGE_DEFAULT;
    int max = seats ? CT_API_SEAT_PAGE_MAX : CT_API_PAGE_MAX;
    memset(out, 0, sizeof *out);
    out->limit = def;
    if (limit) {
        char *end = NULL;
        long v = strtol(limit, &end, 10);
        if (!limit[0] || *end || limit[0] == '-' || limit[0] == '+' || v < 1 || v > max)
            FAIL(e, 400, "INVALID_QUERY", "limit must be an integer 1..%d", max);
        out->limit = (int)v;
    }
    if (!after) return 0;
    if (seats) {
        char *end = NULL;
        long v = strtol(after, &end, 10);
        if (!after[0] || *end || after[0] == '-' || after[0] == '+' || v < 0 || v > CT_SEATS_PER_SCHEDULE_MAX)
            FAIL(e, 400, "INVALID_QUERY", "after must be a seat number 0..%d", CT_SEATS_PER_SCHEDULE_MAX);
        out->after_n = v;
    } else if (r == CT_ROUTE_CONCERTS ? !concert_id_valid(after) : !reservation_id_valid(after)) {
        FAIL(e, 400, "INVALID_QUERY", "after must be the next_after of the previous page");
    } else {
        snprintf(out->after, sizeof out->after, "%s", after);
    }
    out->has_after = true;
    return 0;
}

int ct_api_parse_prefer_wait(const char *prefer, int *wait_s, ct_api_error *e) {
    *wait_s = 0;
    if (!prefer) return 0;
    /* RFC 7240: preferences separated by commas, each token[=value] with
     * optional ;parameters; only wait matters here, others are ignored. */
    const char *p = prefer;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        size_t n = strcspn(p, ",");
        const char *q = p;
        p += n;
        if (n < 4 || strncasecmp(q, "wait", 4) != 0) continue;
        const char *v = q + 4;
        while (v < p && (*v == ' ' || *v == '\t')) v++;
        if (v < p && *v != '=' && *v != ';') continue; /* a preference whose name only starts with "wait" */
        if (v == p || *v == ';')
            FAIL(e, 400, "INVALID_PREFER", "Prefer: wait needs a number of seconds, 1..%d", CT_API_WAIT_S_MAX);
        v++;
        while (v < p && (*v == ' ' || *v == '\t')) v++;
        long secs = 0;
        int digits = 0;
        while (v < p && *v >= '0' && *v <= '9' && digits < 6) secs = secs * 10 + (*v++ - '0'), digits++;
        while (v < p && (*v == ' ' || *v == '\t')) v++;
        if (digits == 0 || (v < p && *v != ';') || secs < 1 || secs > CT_API_WAIT_S_MAX)
            FAIL(e, 400, "INVALID_PREFER", "Prefer: wait must be a whole number of seconds, 1..%d", CT_API_WAIT_S_MAX);
        *wait_s = (int)secs;
    }
    return 0;
}

typedef struct reason_spec {
    const char *reason;
    unsigned status;
    const char *message;
} reason_spec;

static const reason_spec reasons[] = {
    {"TOKEN_NOT_ACTIVE", 403, "the queue token is not active"},
    {"TOKEN_MISMATCH", 403, "the queue token belongs to another user or concert"},
    {"NOT_OWNER", 403, "the reservation belongs to another user"},
    {"SEAT_TAKEN", 409, "the seat is not available"},
    {"DUPLICATE", 409, "this was done already"},
    {"RESERVATION_NOT_HELD", 409, "the reservation is not held (already paying, paid or expired)"},
    {"PAYMENT_NOT_PENDING", 409, "the payment is not pending"},
    {"INSUFFICIENT_BALANCE", 402, "the balance does not cover the price"},
    {"HOLD_EXPIRED", 410, "the hold expired"},
    {"LIMIT_EXCEEDED", 422, "too many seats held by this user on this schedule"},
    {"BALANCE_LIMIT", 422, "the balance would exceed its limit"},
    {"INVALID_SEAT", 422, "no such seat on this schedule"},
    {"UNKNOWN_CONCERT", 404, "no such concert"},
    {"UNKNOWN_SCHEDULE", 404, "no such schedule"},
    {"UNKNOWN_TOKEN", 404, "no such queue token"},
    {"UNKNOWN_RESERVATION", 404, "no such reservation"},
    {"UNKNOWN_PAYMENT", 404, "no such payment"},
    {"HOLD_THROTTLED", 429, "this queue token let too many holds expire: queue again once it ends"},
    {"POISON", 422, "the command could not be processed and was set aside for an operator (dead-lettered)"},
};

static const reason_spec *reason_find(const char *reason) {
    for (size_t i = 0; reason && i < sizeof reasons / sizeof reasons[0]; i++)
        if (strcmp(reasons[i].reason, reason) == 0) return &reasons[i];
    return NULL;
}

unsigned ct_api_reason_status(const char *reason) {
    const reason_spec *r = reason_find(reason);
    if (r) return r->status;
    /* A reason newer than this table: the command was refused as the
     * state stood, which is what 409 says. */
    if (reason && strncmp(reason, "UNKNOWN_", 8) == 0) return 404;
    return 409;
}

unsigned ct_api_success_status(ct_api_route r) {
    return r == CT_ROUTE_REQUEST_PAYMENT || r == CT_ROUTE_CHARGE_BALANCE ? 200 : 201;
}

int ct_api_command_id_of(const char *accepted_body, char out[CT_API_UUID_CHARS + 1]) {
    out[0] = 0;
    json_t *j = accepted_body ? json_loads(accepted_body, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(j, "command_id"));
    int rc = id && ct_api_uuid_valid(id) ? 0 : -1;
    if (rc == 0) memcpy(out, id, CT_API_UUID_CHARS + 1);
    json_decref(j);
    return rc;
}

int ct_api_outcome_response(ct_api_route r, const char *accepted_body, const char *command_id, const char *status,
                            const char *reason, const char *result_json, unsigned *http_status, char **body) {
    *body = NULL;
    json_t *j = NULL;
    if (strcmp(status, "SUCCEEDED") == 0) {
        json_t *result = result_json ? json_loads(result_json, JSON_DECODE_ANY, NULL) : NULL;
        j = json_loads(accepted_body ? accepted_body : "", 0, NULL);
        if (!json_is_object(j)) {
            json_decref(j);
            j = json_pack("{s:s}", "command_id", command_id);
        }
        if (j) {
            json_object_set_new(j, "status", json_string("SUCCEEDED"));
            /* A user with a live token is answered that one, not the new id. */
            json_t *token = json_object_get(result, "token");
            if (r == CT_ROUTE_ISSUE_TOKEN && json_is_string(token)) json_object_set(j, "token", token);
            json_object_set_new(j, "result", result ? result : json_null());
        } else {
            json_decref(result);
        }
        *http_status = ct_api_success_status(r);
    } else {
        const reason_spec *rs = reason_find(reason);
        char msg[160];
        snprintf(msg, sizeof msg, "%s", rs ? rs->message : "the command was rejected");
        j = json_pack("{s:{s:s, s:s}, s:s, s:s}", "error", "code", reason ? reason : "REJECTED", "message", msg,
                      "command_id", command_id, "status", "REJECTED");
        *http_status = ct_api_reason_status(reason);
    }
    *body = j ? dump(j) : NULL;
    json_decref(j);
    return *body ? 0 : -1;
}
