/* ct_reads: see ct_reads.h. */
#include "ct_reads.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_log.h"
#include "ct_outbox.h"
#include "ct_pg.h"
#include "ct_pgarray.h"

PGresult *ct_reads_query(PGconn *pg, ct_commit_item *it, const char *sql, int n, const char *const *params) {
    PGresult *res = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) return res;
    CT_LOG_RATELIMITED(CT_LOG_WARN, "read", 5000, "read failed: %s", PQerrorMessage(pg));
    PQclear(res);
    ct_commit_set_error(it, 503, "STORE_UNAVAILABLE", "cannot read; retry");
    return NULL;
}

/* A JSON value Postgres built (json_build_object ...). */
static json_t *cell_json(PGresult *res, int row, int col) {
    if (PQgetisnull(res, row, col)) return json_null();
    json_t *j = json_loads(PQgetvalue(res, row, col), JSON_DECODE_ANY, NULL);
    return j ? j : json_null();
}

static json_t *cell_int(PGresult *res, int row, int col) {
    return PQgetisnull(res, row, col) ? json_null() : json_integer(strtoll(PQgetvalue(res, row, col), NULL, 10));
}

/* A user reads only their own token, reservation and commands (the admin
 * key reads any). false: answered 403. */
static bool readable_by(const ct_read_request *r, ct_commit_item *it, const char *owner, const char *what) {
    if (r->admin || (owner && owner[0] && strcmp(owner, r->user) == 0)) return true;
    ct_commit_set_error(it, 403, "FORBIDDEN", "this %s belongs to another user", what);
    return false;
}

/* The outcome from `commands` once the projector recorded it; until then
 * what the outbox knows: stored (ACCEPTED) or in Kafka (PUBLISHED). */
static void query_command_status(PGconn *pg, ct_commit_item *it, const ct_read_request *r) {
    const char *p[1] = {r->param};
    /* clang-format off */
    PGresult *res = ct_reads_query(pg, it,
                               "SELECT " CT_OUTBOX_STATUS_COLUMNS ","
                               " c.status, c.type, c.reason, c.result::text, " CT_PG_ISO_TS("c.completed_at") ","
                               " coalesce(" CT_OUTBOX_USER_ID ", c.result->>'user_id')"
                               " FROM (SELECT $1::text AS id) v"
                               CT_OUTBOX_COMMAND_JOIN("v.id")
                               " LEFT JOIN commands c ON c.command_id = v.id",
                               1, p);
    /* clang-format on */
    _Static_assert(CT_OUTBOX_STATUS_NCOLUMNS == 8, "the columns below are numbered after the outbox's eight");
    if (!res) return;
    bool outbox = !PQgetisnull(res, 0, 0), outcome = !PQgetisnull(res, 0, 8);
    if (!outbox && !outcome) {
        ct_commit_set_error(it, 404, "NOT_FOUND", "no command %s", r->param);
        PQclear(res);
        return;
    }
    if (!readable_by(r, it, PQgetisnull(res, 0, 13) ? NULL : PQgetvalue(res, 0, 13), "command")) {
        PQclear(res);
        return;
    }
    const char *ob = outbox ? PQgetvalue(res, 0, 0) : NULL;
    /* A FAILED row was never published (the relay gave up after
     * CONCERT_OUTBOX_MAX_ATTEMPTS): it will have no outcome unless an
     * operator retries it, so it must not read as ACCEPTED. */
    const char *status = "ACCEPTED";
    if (outcome)
        status = PQgetvalue(res, 0, 8);
    else if (strcmp(ob, "SENT") == 0)
        status = "PUBLISHED";
    else if (strcmp(ob, "FAILED") == 0)
        status = "FAILED";
    json_t *j = json_pack("{s:s, s:s, s:s}", "command_id", r->param, "status", status, "type",
                          outbox ? PQgetvalue(res, 0, 1) : PQgetvalue(res, 0, 9));
    if (j && outbox) {
        json_object_set_new(j, "outbox_status", json_string(ob));
        json_object_set_new(j, "attempts", cell_int(res, 0, 2));
        json_object_set_new(j, "created_at", json_string(PQgetvalue(res, 0, 4)));
        if (!PQgetisnull(res, 0, 3)) json_object_set_new(j, "last_error", json_string(PQgetvalue(res, 0, 3)));
        if (!PQgetisnull(res, 0, 5)) {
            json_object_set_new(j, "sent_at", json_string(PQgetvalue(res, 0, 5)));
            json_object_set_new(j, "kafka_partition", cell_int(res, 0, 6));
            json_object_set_new(j, "kafka_offset", cell_int(res, 0, 7));
        }
    }
    if (j && outcome) {
        json_object_set_new(j, "event", json_string(PQgetvalue(res, 0, 9)));
        json_object_set_new(j, "reason", PQgetisnull(res, 0, 10) ? json_null() : json_string(PQgetvalue(res, 0, 10)));
        json_object_set_new(j, "result", cell_json(res, 0, 11));
        json_object_set_new(j, "completed_at", json_string(PQgetvalue(res, 0, 12)));
    }
    PQclear(res);
    ct_commit_set_json(it, 200, j);
}

int64_t ct_reads_wait_ms(int64_t ahead, int64_t admitted) {
    return admitted > 0 ? (ahead * CT_READS_ADMISSION_WINDOW_MS + admitted - 1) / admitted : -1;
}

/* Answers one token read from row `row` of a concert_token_read_many
 * result (columns: token, status, concert_id, user_id, seq, issued_ts,
 * activated_ts, active_until, queue_position, admitted, as_of_ts). */
static void answer_token(ct_commit_item *it, const ct_read_request *r, PGresult *res, int row) {
    if (!readable_by(r, it, PQgetvalue(res, row, 3), "queue token")) return;
    const char *status = PQgetvalue(res, row, 1);
    long long admitted = strtoll(PQgetvalue(res, row, 9), NULL, 10);
    json_t *position = json_null(), *wait = json_null();
    if (strcmp(status, "WAITING") == 0) {
        long long pos = strtoll(PQgetvalue(res, row, 8), NULL, 10);
        json_decref(position);
        position = json_integer(pos);
        int64_t ms = ct_reads_wait_ms(pos, admitted);
        if (ms >= 0) {
            json_decref(wait);
            wait = json_integer(ms);
        }
    } else if (strcmp(status, "ACTIVE") == 0) {
        json_decref(position), json_decref(wait);
        position = json_integer(0), wait = json_integer(0);
    }
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I}", "token", r->param, "status", status,
                  "concert_id", PQgetvalue(res, row, 2), "user_id", PQgetvalue(res, row, 3), "position", position,
                  "estimated_wait_ms", wait, "active_until", cell_int(res, row, 7), "seq", cell_int(res, row, 4),
                  "issued_ts", cell_int(res, row, 5), "activated_ts", cell_int(res, row, 6), "admitted_last_minute",
                  (json_int_t)admitted, "as_of_ts", (json_int_t)strtoll(PQgetvalue(res, row, 10), NULL, 10));
    ct_commit_set_json(it, 200, j);
}

/* Tokens, their positions and their queues' admission rates, all found
 * through indexes, in one statement for the n reads (migration 0016,
 * concert_token_read_many: a function, so that each connection plans its
 * probes once, and the figures of one concert are looked up once). */
void ct_reads_run_tokens(PGconn *pg, ct_commit_item *const *items, const ct_read_request *const *rqs, int n) {
    ct_pgarray tokens = {0};
    for (int i = 0; i < n; i++) ct_pgarray_add(&tokens, rqs[i]->param);
    const char *p[2] = {ct_pgarray_text(&tokens), CT_READS_STR(CT_READS_ADMISSION_WINDOW_MS)};
    PGresult *res = p[0] ? PQexecParams(pg, "SELECT * FROM concert_token_read_many($1::text[], $2::bigint)", 2, NULL, p,
                                        NULL, NULL, 0)
                         : NULL;
    ct_pgarray_free(&tokens);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        CT_LOG_RATELIMITED(CT_LOG_WARN, "read", 5000, "token read failed: %s",
                           res ? PQerrorMessage(pg) : "out of memory");
        for (int i = 0; i < n; i++) ct_commit_set_error(items[i], 503, "STORE_UNAVAILABLE", "cannot read; retry");
        PQclear(res);
        return;
    }
    for (int i = 0; i < n; i++) {
        int row = PQntuples(res) - 1;
        while (row >= 0 && strcmp(PQgetvalue(res, row, 0), rqs[i]->param) != 0) row--;
        if (row < 0)
            ct_commit_set_error(items[i], 404, "NOT_FOUND", "no queue token %s", rqs[i]->param);
        else
            answer_token(items[i], rqs[i], res, row);
    }
    PQclear(res);
}

/* Rows of column 0 (JSON) into an array; `limit + 1` rows were asked for, so
 * an extra row says there is a next page, which starts after the last
 * returned row's column 1. */
static json_t *page_rows(PGresult *res, int limit, json_t **next_after) {
    json_t *arr = json_array();
    int n = PQntuples(res);
    for (int i = 0; i < n && i < limit; i++) json_array_append_new(arr, cell_json(res, i, 0));
    *next_after = n > limit ? json_string(PQgetvalue(res, limit - 1, 1)) : json_null();
    return arr;
}

static void query_concerts(PGconn *pg, ct_commit_item *it, const ct_read_request *r) {
    char lim[16];
    snprintf(lim, sizeof lim, "%d", r->page.limit + 1);
    const char *p[2] = {r->page.has_after ? r->page.after : NULL, lim};
    PGresult *res = ct_reads_query(pg, it,
                                   "SELECT json_build_object('concert_id', concert_id, 'title', title, 'max_active',"
                                   " max_active, 'active_ttl_ms', active_ttl_ms, 'hold_ttl_ms', hold_ttl_ms,"
                                   " 'schedule_count', schedule_count, 'created_ts', created_ts)::text, concert_id"
                                   " FROM concerts WHERE ($1::text IS NULL OR concert_id > $1)"
                                   " ORDER BY concert_id LIMIT $2::int",
                                   2, p);
    if (!res) return;
    json_t *next = NULL, *rows = page_rows(res, r->page.limit, &next);
    PQclear(res);
    ct_commit_set_json(it, 200, json_pack("{s:o, s:o}", "concerts", rows, "next_after", next));
}

#define SEATS_TAKEN(s) \
    "(SELECT count(*) FROM seats x WHERE x.concert_id = " s ".concert_id AND x.schedule_id = " s ".schedule_id)"

static void query_schedules(PGconn *pg, ct_commit_item *it, const ct_read_request *r) {
    const char *p[1] = {r->param};
    /* clang-format off */
    PGresult *res = ct_reads_query(
        pg, it,
        "SELECT json_build_object('concert_id', c.concert_id, 'title', c.title, 'schedules', coalesce("
        " (SELECT json_agg(json_build_object('schedule_id', s.schedule_id, 'starts_at', s.starts_at, 'seats', s.seats,"
        "   'price', s.price, 'seats_left', greatest(0, s.seats - " SEATS_TAKEN("s") "))"
        "   ORDER BY s.starts_at, s.schedule_id) FROM schedules s WHERE s.concert_id = c.concert_id),"
        " '[]'::json))::text"
        " FROM concerts c WHERE c.concert_id = $1",
        1, p);
    /* clang-format on */
    if (!res) return;
    if (PQntuples(res) == 0)
        ct_commit_set_error(it, 404, "NOT_FOUND", "no concert %s", r->param);
    else
        ct_commit_set_json(it, 200, cell_json(res, 0, 0));
    PQclear(res);
}

static void query_seats(PGconn *pg, ct_commit_item *it, const ct_read_request *r) {
    char after[24], lim[16];
    snprintf(after, sizeof after, "%lld", r->page.after_n);
    snprintf(lim, sizeof lim, "%d", r->page.limit);
    const char *p[4] = {r->param, r->param2, after, lim};
    /* clang-format off */
    PGresult *res = ct_reads_query(
        pg, it,
        "SELECT s.seats, greatest(0, s.seats - " SEATS_TAKEN("s") "), coalesce("
        " (SELECT json_agg(json_build_object('seat_no', g.n, 'status', coalesce(x.status, 'AVAILABLE')) ORDER BY g.n)"
        "  FROM generate_series($3::int + 1, least(s.seats, $3::int + $4::int)) g(n)"
        "  LEFT JOIN seats x ON x.concert_id = s.concert_id AND x.schedule_id = s.schedule_id AND x.seat_no = g.n),"
        " '[]'::json)::text"
        " FROM schedules s WHERE s.concert_id = $1 AND s.schedule_id = $2",
        4, p);
    /* clang-format on */
    if (!res) return;
    if (PQntuples(res) == 0) {
        ct_commit_set_error(it, 404, "NOT_FOUND", "no schedule %s of concert %s", r->param2, r->param);
        PQclear(res);
        return;
    }
    long long seats = strtoll(PQgetvalue(res, 0, 0), NULL, 10), end = r->page.after_n + r->page.limit;
    json_t *j = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "concert_id", r->param, "schedule_id", r->param2, "seats",
                          cell_int(res, 0, 0), "seats_left", cell_int(res, 0, 1), "seat_map", cell_json(res, 0, 2),
                          "next_after", end < seats ? json_integer(end) : json_null());
    PQclear(res);
    ct_commit_set_json(it, 200, j);
}

#define RESERVATION_JSON                                                                                              \
    "json_build_object('reservation_id', r.reservation_id, 'concert_id', r.concert_id, 'schedule_id', r.schedule_id," \
    " 'seat_no', r.seat_no, 'user_id', r.user_id, 'status', r.status, 'price', r.price, 'hold_until', r.hold_until,"  \
    " 'payment_id', r.payment_id, 'held_ts', r.held_ts, 'updated_ts', r.updated_ts, 'payment',"                       \
    " CASE WHEN p.payment_id IS NULL THEN NULL ELSE json_build_object('payment_id', p.payment_id, 'status',"          \
    " p.status, 'reason', p.reason, 'amount', p.amount, 'updated_ts', p.updated_ts) END)::text"

static void query_reservation(PGconn *pg, ct_commit_item *it, const ct_read_request *r) {
    const char *p[1] = {r->param};
    PGresult *res = ct_reads_query(pg, it,
                                   "SELECT " RESERVATION_JSON ", r.user_id FROM reservations r"
                                   " LEFT JOIN payments p ON p.payment_id = r.payment_id WHERE r.reservation_id = $1",
                                   1, p);
    if (!res) return;
    if (PQntuples(res) == 0)
        ct_commit_set_error(it, 404, "NOT_FOUND", "no reservation %s", r->param);
    else if (readable_by(r, it, PQgetvalue(res, 0, 1), "reservation"))
        ct_commit_set_json(it, 200, cell_json(res, 0, 0));
    PQclear(res);
}

static void query_user_reservations(PGconn *pg, ct_commit_item *it, const ct_read_request *r) {
    char lim[16];
    snprintf(lim, sizeof lim, "%d", r->page.limit + 1);
    const char *p[3] = {r->param, r->page.has_after ? r->page.after : NULL, lim};
    PGresult *res = ct_reads_query(pg, it,
                                   "SELECT " RESERVATION_JSON ", r.reservation_id FROM reservations r"
                                   " LEFT JOIN payments p ON p.payment_id = r.payment_id"
                                   " WHERE r.user_id = $1 AND ($2::text IS NULL OR r.reservation_id > $2)"
                                   " ORDER BY r.reservation_id LIMIT $3::int",
                                   3, p);
    if (!res) return;
    json_t *next = NULL, *rows = page_rows(res, r->page.limit, &next);
    PQclear(res);
    ct_commit_set_json(it, 200,
                       json_pack("{s:s, s:o, s:o}", "user_id", r->param, "reservations", rows, "next_after", next));
}

static void query_balance(PGconn *pg, ct_commit_item *it, const ct_read_request *r) {
    const char *p[1] = {r->param};
    PGresult *res = ct_reads_query(pg, it, "SELECT balance, updated_ts FROM balances WHERE user_id = $1", 1, p);
    if (!res) return;
    /* No row: the user never charged, which is a balance of 0. */
    bool row = PQntuples(res) == 1;
    ct_commit_set_json(it, 200,
                       json_pack("{s:s, s:o, s:o}", "user_id", r->param, "balance",
                                 row ? cell_int(res, 0, 0) : json_integer(0), "updated_ts",
                                 row ? cell_int(res, 0, 1) : json_null()));
    PQclear(res);
}

static void query_outbox_list(PGconn *pg, ct_commit_item *it, const ct_read_request *r) {
    const char *status = r->status, *after = r->after_id, *limit = r->limit;
    ct_outbox_status st;
    char *end = NULL;
    int64_t after_id = after ? strtoll(after, &end, 10) : 0;
    if (after && (!*after || *end || after_id < 0)) {
        ct_commit_set_error(it, 400, "INVALID_QUERY", "after_id must be a non-negative integer");
        return;
    }
    long lim = limit ? strtol(limit, &end, 10) : 100;
    if (limit && (!*limit || *end || lim < 1 || lim > 1000)) {
        ct_commit_set_error(it, 400, "INVALID_QUERY", "limit must be 1..1000");
        return;
    }
    if (status && ct_outbox_status_parse(status, &st) != 0) {
        ct_commit_set_error(it, 400, "INVALID_QUERY", "status must be PENDING, SENT or FAILED");
        return;
    }
    char *rows = NULL;
    ct_error err = {0};
    if (ct_outbox_list_json(pg, status ? &st : NULL, after_id, (int)lim, &rows, &err) != 0) {
        ct_commit_set_error(it, 503, "STORE_UNAVAILABLE", "cannot list the outbox");
        return;
    }
    json_t *arr = json_loads(rows, 0, NULL);
    free(rows);
    json_t *last = json_array_size(arr) ? json_array_get(arr, json_array_size(arr) - 1) : NULL;
    json_t *j = json_pack("{s:o}", "rows", arr ? arr : json_array());
    if (j && last && (size_t)lim == json_array_size(json_object_get(j, "rows")))
        json_object_set(j, "next_after_id", json_object_get(last, "id"));
    ct_commit_set_json(it, 200, j);
}

static void query_outbox_retry(PGconn *pg, ct_commit_item *it, const ct_read_request *r) {
    char *end = NULL;
    long long id = strtoll(r->param, &end, 10);
    if (!r->param[0] || *end || id <= 0) {
        ct_commit_set_error(it, 400, "INVALID_ID", "outbox id must be a positive integer");
        return;
    }
    int64_t count = 0;
    ct_error err = {0};
    if (ct_outbox_retry(pg, id, &count, &err) != 0) {
        if (err.klass != CT_ERR_PERMANENT)
            ct_commit_set_error(it, 503, "STORE_UNAVAILABLE", "cannot retry: %s", err.msg);
        else if (strstr(err.msg, "does not exist"))
            ct_commit_set_error(it, 404, "NOT_FOUND", "%s", err.msg);
        else
            ct_commit_set_error(it, 409, "NOT_FAILED", "%s", err.msg);
        return;
    }
    ct_commit_set_json(it, 200, json_pack("{s:I, s:s}", "id", (json_int_t)id, "status", "PENDING"));
}

void ct_reads_run(PGconn *pg, ct_commit_item *it, const ct_read_request *rq) {
    switch (rq->route) {
    case CT_ROUTE_COMMAND_STATUS: query_command_status(pg, it, rq); return;
    case CT_ROUTE_TOKEN_STATUS:
    case CT_ROUTE_TOKEN_EVENTS: ct_reads_run_tokens(pg, &it, &rq, 1); return;
    case CT_ROUTE_CONCERTS: query_concerts(pg, it, rq); return;
    case CT_ROUTE_SCHEDULES: query_schedules(pg, it, rq); return;
    case CT_ROUTE_SEATS: query_seats(pg, it, rq); return;
    case CT_ROUTE_RESERVATION: query_reservation(pg, it, rq); return;
    case CT_ROUTE_USER_RESERVATIONS: query_user_reservations(pg, it, rq); return;
    case CT_ROUTE_BALANCE: query_balance(pg, it, rq); return;
    case CT_ROUTE_OUTBOX_LIST: query_outbox_list(pg, it, rq); return;
    case CT_ROUTE_OUTBOX_RETRY: query_outbox_retry(pg, it, rq); return;
    default: ct_commit_set_error(it, 404, "NOT_FOUND", "no such endpoint"); return;
    }
}
