/*
 * ct_commit: group commit of the ingress's outbox writes.
 *
 * HTTP threads submit items and move on (the connection is suspended); a
 * small pool of workers, each with its own Postgres connection, takes
 * whatever items are waiting (up to CONCERT_INGRESS_BATCH_MAX) and writes
 * them in ONE transaction: one fsync for the whole batch instead of one per
 * request. An item's done callback runs only after its fate is known: 202
 * after COMMIT returned, or an error. Under load batches grow by themselves
 * (items pile up while a commit is in flight); when idle a lone request is
 * committed at once, so there is no batching delay to tune.
 *
 * Idempotency-Key: keys already recorded answer with the first response
 * (same command_id, no new row); a key reused with a different request gets
 * 422; two requests with one key in the same batch are serialised. The key
 * row and the outbox row commit together.
 *
 * Queries go through such workers too (admin ones through the writer's,
 * GET reads through a separate read pool), so HTTP threads never block on
 * Postgres.
 */
#ifndef CT_COMMIT_H
#define CT_COMMIT_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>

#include "ct_api.h"
#include "ct_config.h"
#include "ct_error.h"

typedef struct ct_commit ct_commit;
typedef struct ct_commit_item ct_commit_item;

/* The most items one query_batch call answers. */
#define CT_COMMIT_QUERY_BATCH_MAX 64

struct ct_commit_item {
    /* A write: the command, and its Idempotency-Key (NULL: none). */
    const ct_api_command *cmd;
    const char *idem_key;
    char fingerprint[CT_API_FINGERPRINT_CHARS + 1];
    /* Or a query: run by a worker with its connection; sets status, body. */
    void (*query)(PGconn *pg, ct_commit_item *it);
    /* Or a query that shares one statement with the others of its kind: a
     * worker that takes one also takes the queued items with the same
     * query_batch (up to CT_COMMIT_QUERY_BATCH_MAX, wherever they wait) and
     * runs them at once; each gets its own status and body. */
    void (*query_batch)(PGconn *pg, ct_commit_item *const *items, int n);
    void *query_ctx;
    /* Result: HTTP status and JSON body (malloc'd, the submitter frees). */
    unsigned status;
    char *body;
    /* Called once, from a worker thread, when the result is set. */
    void (*done)(ct_commit_item *it);
    void *done_ctx;
    ct_commit_item *next; /* private */
};

/* The outbox writer: CONCERT_INGRESS_PG_CONNS workers, batches of up to
 * CONCERT_INGRESS_BATCH_MAX. */
ct_commit *ct_commit_start(const ct_config *cfg, ct_error *err);
/* A pool of `workers` connections taking up to batch_max items per round.
 * The ingress's read pool is one of these with batch_max 1: only queries,
 * each worker takes one (or one set of query_batch items), so one slow
 * query does not hold others back. */
ct_commit *ct_commit_start_pool(const ct_config *cfg, int workers, int batch_max, ct_error *err);
/* Queues an item. -1 when CONCERT_INGRESS_QUEUE_MAX items wait already or
 * the pool is stopping (the caller answers 503 itself; done is not called). */
int ct_commit_submit(ct_commit *c, ct_commit_item *it);
/* Refuses new items from now on, finishes the queued ones (their done
 * callbacks run) and joins the workers. Submitting stays safe (it fails)
 * until ct_commit_destroy. */
void ct_commit_stop(ct_commit *c);
void ct_commit_destroy(ct_commit *c); /* stops first if needed; NULL ok */

typedef struct ct_commit_stats {
    uint64_t batches, rows, replays, failures;
    /* Time the writers spent in outbox transactions (summed over writers):
     * its rate near the writer count means writing is the bottleneck. */
    uint64_t write_us;
    int64_t queued;
} ct_commit_stats;
void ct_commit_get_stats(ct_commit *c, ct_commit_stats *out);

/* Sets an item's result to status and the JSON j (taken; NULL or out of
 * memory: 500). */
void ct_commit_set_json(ct_commit_item *it, unsigned status, json_t *j);
/* Sets an item's result to an error body. */
void ct_commit_set_error(ct_commit_item *it, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
