/*
 * ct_api: the write side of the HTTP API (DESIGN.md section 9) as pure
 * functions, no I/O: a request (method, path, headers the caller picked
 * out, body) becomes either an error {status, code, message} or a command
 * ready for the outbox: its topic, partition key, type, command_id and the
 * record envelope (DESIGN.md section 3) as JSON text.
 *
 * Validation is complete here, so nothing malformed reaches the outbox:
 * body a JSON object, every field known (422 UNKNOWN_FIELD names it),
 * required fields present, types exact (integers are JSON integers), ids of
 * [A-Za-z0-9_-], ranges of domain/ct_domain_limits.h. The finished envelope
 * is decoded once more by the domain's own codec, so the ingress can never
 * accept what a processor would dead-letter.
 *
 * Ids the ingress generates come from the caller's random bytes (the OS
 * CSPRNG in production, a fixed stream in tests):
 *   command_id      UUID v7 (the command's ms time, then 74 random bits)
 *   queue token     22 chars base64url (128 bits)
 *   concert_id      24 hex chars (96 bits)
 *   reservation_id  <concert_id>_<22 chars base64url>: the concert is in
 *                   the id, so a payment routes to the concert's partition
 *                   without reading anything
 *   payment_id      22 chars base64url
 */
#ifndef CT_API_H
#define CT_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ct_auth.h"

#define CT_API_BODY_BYTES_MAX (16 * 1024)
#define CT_API_IDEMPOTENCY_KEY_BYTES_MAX 255
#define CT_API_TOKEN_CHARS 22
#define CT_API_CONCERT_ID_CHARS 24
#define CT_API_UUID_CHARS 36
/* Pages of the read API: small enough that one page is one short query and
 * a few tens of KiB of JSON. Seat maps have bigger pages (one seat is a few
 * bytes) so most halls fit in one. */
#define CT_API_PAGE_DEFAULT 50
#define CT_API_PAGE_MAX 200
#define CT_API_SEAT_PAGE_DEFAULT 1000
#define CT_API_SEAT_PAGE_MAX 5000
/* Prefer: wait=N, N in 1..30 s (DESIGN.md section 9). */
#define CT_API_WAIT_S_MAX 30

typedef enum ct_api_route {
    CT_ROUTE_NONE = 0,
    CT_ROUTE_HEALTHZ,
    CT_ROUTE_READYZ,
    CT_ROUTE_METRICS,
    CT_ROUTE_OPENAPI,         /* GET /openapi.json: ingress/openapi.json */
    CT_ROUTE_ISSUE_TOKEN,     /* POST /v1/queue/tokens */
    CT_ROUTE_HOLD_SEAT,       /* POST /v1/reservations */
    CT_ROUTE_REQUEST_PAYMENT, /* POST /v1/payments */
    CT_ROUTE_CHARGE_BALANCE,  /* POST /v1/users/{id}/balance/charge */
    CT_ROUTE_CREATE_CONCERT,  /* POST /v1/admin/concerts */
    CT_ROUTE_COMMAND_STATUS,  /* GET /v1/commands/{command_id} */
    CT_ROUTE_OUTBOX_LIST,     /* GET /v1/admin/outbox */
    CT_ROUTE_OUTBOX_RETRY,    /* POST /v1/admin/outbox/{id}/retry */
    /* Read models (ct_api_route_is_read, with COMMAND_STATUS). */
    CT_ROUTE_TOKEN_STATUS,      /* GET /v1/queue/tokens/{token} */
    CT_ROUTE_CONCERTS,          /* GET /v1/concerts */
    CT_ROUTE_SCHEDULES,         /* GET /v1/concerts/{id}/schedules */
    CT_ROUTE_SEATS,             /* GET /v1/concerts/{id}/schedules/{sid}/seats */
    CT_ROUTE_RESERVATION,       /* GET /v1/reservations/{id} */
    CT_ROUTE_USER_RESERVATIONS, /* GET /v1/users/{id}/reservations */
    CT_ROUTE_BALANCE,           /* GET /v1/users/{id}/balance */
    CT_ROUTE_TOKEN_EVENTS,      /* GET /v1/queue/tokens/{token}/events (Server-Sent Events) */
    /* The console's admin API (ct_admin), run by the admin worker. */
    CT_ROUTE_OUTBOX_RETRY_FAILED, /* POST /v1/admin/outbox/retry */
    CT_ROUTE_ADMIN_TOPICS,        /* GET /v1/admin/topics */
    CT_ROUTE_ADMIN_RECORDS,       /* GET /v1/admin/topics/{topic}/records */
    CT_ROUTE_ADMIN_PRODUCE,       /* POST /v1/admin/topics/test-topic/records */
    CT_ROUTE_ADMIN_CONSUMERS,     /* GET /v1/admin/consumers */
    CT_ROUTE_ADMIN_QUEUES,        /* GET /v1/admin/queues */
    CT_ROUTE_ADMIN_SLACK,         /* GET /v1/admin/slack */
} ct_api_route;

typedef struct ct_api_error {
    unsigned status;
    const char *code; /* static string: BAD_JSON, UNKNOWN_FIELD, ... */
    char message[256];
} ct_api_error;

/* The route table, for documentation checks: route i's method and path
 * pattern ("{}" stands for one path segment); false past the end. */
bool ct_api_route_at(size_t i, const char **method, const char **pattern);

/* The route of (method, path) and its path parameter (copied into param,
 * empty when none). Returns CT_ROUTE_NONE with e filled: 404 for an unknown
 * path, 405 for a known path with the wrong method. */
ct_api_route ct_api_match(const char *method, const char *path, char *param, size_t param_bytes, ct_api_error *e);
/* The same with the second path parameter (the schedule of a seat map);
 * both buffers are param_bytes long. */
ct_api_route ct_api_match2(const char *method, const char *path, char *param, char *param2, size_t param_bytes,
                           ct_api_error *e);

/* Routes needing Authorization: Bearer CONCERT_ADMIN_KEY (or the console's
 * session cookie). */
bool ct_api_route_is_admin(ct_api_route r);
/* Admin routes answered by ct_admin (the console's views). */
bool ct_api_route_is_console(ct_api_route r);
/* Routes that write a command (need a JSON body). */
bool ct_api_route_is_write(ct_api_route r);
/* Routes answered from the read models and the outbox by the read pool. */
bool ct_api_route_is_read(ct_api_route r);

/* The path ids of a read route, checked as the write side checks them
 * (a malformed id is 400 INVALID_ID, a well-formed unknown one is 404
 * later). 0, or -1 with e. */
int ct_api_check_read_params(ct_api_route r, const char *param, const char *param2, ct_api_error *e);

/* A page request: ?limit=N&after=<next_after of the previous page>.
 * after is a concert id (concerts), a reservation id (a user's
 * reservations) or a seat number (seat maps). */
typedef struct ct_api_page {
    int limit;
    bool has_after;
    char after[80];
    long long after_n;
} ct_api_page;
/* 0, or -1 with e (400 INVALID_QUERY). NULL strings: absent. */
int ct_api_parse_page(ct_api_route r, const char *limit, const char *after, ct_api_page *out, ct_api_error *e);

/* The Prefer header's wait preference: *wait_s = N of wait=N (1..30), 0
 * without one. Other preferences are ignored. 0, or -1 with e (400
 * INVALID_PREFER) for a wait that is not a whole number in range. */
int ct_api_parse_prefer_wait(const char *prefer, int *wait_s, ct_api_error *e);

/* The HTTP status of a rejection reason: 403 token/ownership, 409
 * conflicts, 402 balance, 410 expired hold, 422 limits and invalid seat,
 * 404 UNKNOWN_*; 409 for a reason not in the table. */
unsigned ct_api_reason_status(const char *reason);
/* The status of a success: 201 when something was created (token,
 * reservation, concert), 200 for payment and balance charge. */
unsigned ct_api_success_status(ct_api_route r);
/* The command_id of a 202 body. 0, or -1 if it has none. */
int ct_api_command_id_of(const char *accepted_body, char out[CT_API_UUID_CHARS + 1]);
/* The answer of a write whose outcome arrived while it waited: SUCCEEDED
 * -> the 202 body's fields plus status and result (the terminal event's
 * data, JSON text); REJECTED -> {error:{code: reason, message},
 * command_id, status}. *body is malloc'd. 0, or -1 (out of memory). */
int ct_api_outcome_response(ct_api_route r, const char *accepted_body, const char *command_id, const char *status,
                            const char *reason, const char *result_json, unsigned *http_status, char **body);

/* Checks an Authorization header against the admin key in constant time
 * (in the key's length). 0, or -1 with e: 403 when no key is configured,
 * 401 when the header is missing or wrong. */
int ct_api_check_admin(const char *authorization, const char *admin_key, ct_api_error *e);

/* Routes a user's bearer token opens (ct_auth): their writes and the reads
 * of their data. The reads also take the admin key (an operator looking). */
bool ct_api_route_is_user(ct_api_route r);
bool ct_api_route_admin_may_read(ct_api_route r);
/* The answer to a failed token check: 401 UNAUTHORIZED (none), INVALID_TOKEN
 * or TOKEN_EXPIRED. 0 for CT_AUTH_OK, else -1 with e. */
int ct_api_auth_error(ct_auth_result res, ct_api_error *e);
/* A user acts and reads only as themselves: on the routes naming a user in
 * the path (charge, balance, a user's reservations) it must be user. 0, or
 * -1 with e (403 FORBIDDEN). Body user ids: ct_api_build_command. */
int ct_api_check_user(ct_api_route r, const char *user, const char *param, ct_api_error *e);

/* Content-Type must be application/json (parameters such as charset
 * allowed). 0, or -1 with e (415). */
int ct_api_check_content_type(const char *content_type, ct_api_error *e);

/* An Idempotency-Key header: 1..255 visible ASCII characters. NULL is fine
 * (no key). 0, or -1 with e (400). */
int ct_api_check_idempotency_key(const char *key, ct_api_error *e);

/* Random bytes for generated ids. */
typedef void (*ct_api_random_fn)(void *ctx, uint8_t *out, size_t n);

typedef struct ct_api_request {
    ct_api_route route;
    const char *param;       /* path parameter (user id of a charge) */
    const char *user;        /* the bearer token's user; NULL for admin writes */
    const char *queue_token; /* X-Queue-Token header, or NULL */
    const char *body;
    size_t body_len;
    int64_t ts_ms; /* the command's logical time */
    ct_api_random_fn random;
    void *random_ctx;
} ct_api_request;

typedef struct ct_api_command {
    const char *topic;
    const char *type;
    char key[72];
    char command_id[CT_API_UUID_CHARS + 1];
    char *envelope; /* JSON text, malloc'd: free with ct_api_command_clear */
    char *response; /* the 202 body, malloc'd */
} ct_api_command;

/* Validates a write request and builds its command. 0, or -1 with e. */
int ct_api_build_command(const ct_api_request *rq, ct_api_command *out, ct_api_error *e);
void ct_api_command_clear(ct_api_command *c);

/* True for a canonical lowercase UUID (36 chars). */
bool ct_api_uuid_valid(const char *s);

/* Times in answers: every integer member named *_ts, *_at or *_until (the
 * API's epoch milliseconds) gets an RFC 3339 twin, "<name>_rfc3339"
 * ("2027-01-15T19:00:00.000Z"), at any depth. Returns a malloc'd body, or
 * NULL when body has no such member (or is not JSON): send it as it is. */
char *ct_api_times_rfc3339(const char *body);

/* GET /v1/queue/tokens/{token}/events answers one Server-Sent Event per
 * response: the token's read (token_json, as GET /v1/queue/tokens/{token}
 * gives it) as `event: waiting|active|expired|done`, `id: STATUS:position`,
 * `data: <the JSON>`, with `retry:` so that EventSource comes back for the
 * next one. A WAITING token is answered when the projector admits it or
 * after CT_API_TOKEN_EVENTS_WAIT_S (a position update). Once a final state
 * (ACTIVE, EXPIRED, DONE) was delivered (Last-Event-ID equals its id) the
 * answer is 204, which ends an EventSource. Returns the status (200 or 204)
 * and *out (malloc'd; "" for 204), or 0 when token_json is not a token. */
#define CT_API_TOKEN_EVENTS_WAIT_S 15
#define CT_API_TOKEN_EVENTS_RETRY_MS 1000
unsigned ct_api_token_event(const char *token_json, const char *last_event_id, char **out);

/* {"error":{"code":...,"message":...}}, malloc'd. */
char *ct_api_error_json(const ct_api_error *e);

/* A request's fingerprint: SHA-256 (64 hex chars + NUL) of its route,
 * path parameter, queue token and body, so a reused Idempotency-Key on a
 * different request is told apart and no request can be crafted to pass
 * for another. */
#define CT_API_FINGERPRINT_CHARS 64
void ct_api_fingerprint(ct_api_route r, const char *param, const char *queue_token, const char *body, size_t len,
                        char out[CT_API_FINGERPRINT_CHARS + 1]);

#endif
