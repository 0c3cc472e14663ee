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

/* Answers rq into it (status and body). */
void ct_reads_run(PGconn *pg, ct_commit_item *it, const ct_read_request *rq);

#endif
