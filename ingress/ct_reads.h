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

/* A concert queue's admissions in the window before its logical "now",
 * shared by the token read and the console's queue view. Admission is
 * FIFO by seq and every seq is admitted once, so they are the seqs after
 * the last one admitted before the window, up to the latest admitted: two
 * index probes (migration 0009), not a count.
 * CT_READS_ADMISSIONS_JOIN(concert, now) adds the lateral joins hi (the
 * latest activation: seq, activated_ts), lo and first for the SQL
 * expressions `concert` (its id) and `now` (which may use hi);
 * CT_READS_ADMITTED_SQL is the number of admissions they give. */
#define CT_READS_ADMISSION_WINDOW_MS 60000
#define CT_READS_STR_(x) #x
#define CT_READS_STR(x) CT_READS_STR_(x)
#define CT_READS_ADMISSIONS_JOIN(concert, now)                                                                             \
    " LEFT JOIN LATERAL (SELECT a.seq, a.activated_ts FROM queue_tokens a WHERE a.concert_id = " concert                   \
    "   AND a.activated_ts IS NOT NULL ORDER BY a.activated_ts DESC, a.seq DESC LIMIT 1) hi ON true"                       \
    " LEFT JOIN LATERAL (SELECT a.seq FROM queue_tokens a WHERE a.concert_id = " concert                                   \
    "   AND a.activated_ts IS NOT NULL AND a.activated_ts <= " now " - " CT_READS_STR(                                     \
        CT_READS_ADMISSION_WINDOW_MS) " ORDER BY a.activated_ts DESC, a.seq DESC LIMIT 1) lo ON true"                      \
                                      " LEFT JOIN LATERAL (SELECT a.seq FROM queue_tokens a WHERE a.concert_id = " concert \
                                      "   AND a.activated_ts IS NOT NULL ORDER BY a.activated_ts, a.seq LIMIT 1) first ON true"
#define CT_READS_ADMITTED_SQL "coalesce(hi.seq - coalesce(lo.seq, first.seq - 1), 0)"

/* How long `ahead` fans take to be admitted at `admitted` a window (the
 * observed rate), rounded up; -1 when nobody was admitted (no rate). */
int64_t ct_reads_wait_ms(int64_t ahead, int64_t admitted);

/* Runs a read for item it: its rows, or NULL with it set to 503
 * STORE_UNAVAILABLE (logged) when the database did not answer. */
PGresult *ct_reads_query(PGconn *pg, ct_commit_item *it, const char *sql, int n, const char *const *params);

/* Answers rq into it (status and body). */
void ct_reads_run(PGconn *pg, ct_commit_item *it, const ct_read_request *rq);

#endif
