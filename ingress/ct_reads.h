/*
 * ct_reads: the read API's answers (DESIGN.md section 9) from the
 * projector's read models, and the outbox's admin views: a command's
 * status (its outcome, or what the outbox knows until then), a queue token
 * with position and estimated wait, the catalogue, schedules, seat maps,
 * reservations, balances, outbox rows and their retry. Each runs on a
 * worker's Postgres connection (ct_commit) and sets the item's status and
 * JSON body (or an error: 404 unknown, 403 another user's, 503 when the
 * database does not answer).
 *
 * Locality: any worker thread; no state.
 */
#ifndef CT_READS_H
#define CT_READS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "ct_api.h"
#include "ct_commit.h"

/* What a read needs of its request, parsed by the HTTP thread. */
typedef struct ct_read_request {
    ct_api_route route;
    const char *param, *param2; /* the path's ids, checked already */
    ct_api_page page;
    const char *user;                      /* the bearer token's user; empty for the admin key */
    bool admin;                            /* read with the admin key: any user's data */
    const char *status, *after_id, *limit; /* the outbox list's query string (NULL: absent) */
} ct_read_request;

/* The window in which a concert queue's admissions are counted, its
 * observed rate (the token read and the console's queue view, through
 * migration 0015's concert_queue_clock). */
#define CT_READS_ADMISSION_WINDOW_MS 60000
#define CT_READS_STR_(x) #x
#define CT_READS_STR(x) CT_READS_STR_(x)

/* How long `ahead` fans take to be admitted at `admitted` a window (the
 * observed rate), rounded up; -1 when nobody was admitted (no rate). */
int64_t ct_reads_wait_ms(int64_t ahead, int64_t admitted);

/* Runs a read for item it: its rows, or NULL with it set to 503
 * STORE_UNAVAILABLE (logged) when the database did not answer. */
PGresult *ct_reads_query(PGconn *pg, ct_commit_item *it, const char *sql, int n, const char *const *params);

/* Answers the token reads rqs[0..n) (CT_ROUTE_TOKEN_STATUS, _EVENTS) into
 * items[0..n) in one statement: reads that wait at the same moment (fans
 * admitted together) share the look-ups of their queue. */
void ct_reads_run_tokens(PGconn *pg, ct_commit_item *const *items, const ct_read_request *const *rqs, int n);
/* Answers rq into it (status and body). */
void ct_reads_run(PGconn *pg, ct_commit_item *it, const ct_read_request *rq);

#endif
