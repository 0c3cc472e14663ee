/*
 * ct_outbox: every operation on the outbox table (DESIGN.md section 7)
 * except the ingress's inserts, shared by the relay, `concert outbox` and the
 * admin HTTP endpoints so each SQL statement exists once.
 *
 * Row states: PENDING -> SENT, PENDING -> FAILED (attempt limit), FAILED ->
 * PENDING (admin retry). No other transition is valid.
 */
#ifndef CT_OUTBOX_H
#define CT_OUTBOX_H

#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>

#include "ct_error.h"

typedef enum ct_outbox_status { CT_OUTBOX_PENDING, CT_OUTBOX_SENT, CT_OUTBOX_FAILED } ct_outbox_status;

const char *ct_outbox_status_name(ct_outbox_status s);
/* 0 and *out on success, -1 for an unknown name. */
int ct_outbox_status_parse(const char *name, ct_outbox_status *out);

/* Puts FAILED rows back to PENDING with attempts reset and due now (among
 * the rows awaiting a retry, retry_at = now(), where the relay finds them).
 * id > 0: that row only (it must exist and be FAILED, else a PERMANENT
 * error whose message says which); id == 0: every FAILED row. *count gets
 * the number of rows re-driven. */
int ct_outbox_retry(PGconn *conn, int64_t id, int64_t *count, ct_error *err);

/* What is not sent yet, for metrics: rows to publish (new ones from the
 * relay's frontier on, and those awaiting a retry), FAILED rows, and the
 * age of the oldest row to publish (0 when none). Index reads only. */
typedef struct ct_outbox_backlog {
    int64_t pending, failed;
    double oldest_pending_s;
} ct_outbox_backlog;
/* The largest row id (0 for an empty outbox): how far a pass over it goes. */
int ct_outbox_max_id(PGconn *conn, int64_t *out, ct_error *err);
int ct_outbox_backlog_read(PGconn *conn, int64_t frontier, ct_outbox_backlog *out, ct_error *err);

/* Rows with the given status (any when status_filter is NULL), id order,
 * ids > after_id, at most limit (1..1000) rows, as a JSON array string
 * (caller frees with free()): [{"id","command_id","topic","partition_key",
 * "type","status","attempts","next_attempt_at","last_error","created_at",
 * "sent_at","kafka_partition","kafka_offset"}, ...]. */
int ct_outbox_list_json(PGconn *conn, const ct_outbox_status *status_filter, int64_t after_id, int limit,
                        char **json_out, ct_error *err);

/* Retention: one slice of a pass over the outbox in id order. Deletes the
 * SENT rows among ids [from, from + window) below the relay's frontier
 * whose sent_at is more than retention_s seconds ago, and the
 * Idempotency-Keys naming them (a replay of such a key is a new command),
 * in one statement. from <= 0 starts at the smallest id. *deleted gets the
 * rows deleted; *next_from the id the next slice starts at (the next row
 * there is, so old gaps are skipped), or 0 when the pass
 * is over: the slice met a SENT row still kept (later ids were sent later,
 * but for retried rows) or reached the frontier. PENDING and FAILED rows
 * are never deleted. window 1..100000, retention_s >= 1. */
int ct_outbox_prune_slice(PGconn *conn, int64_t from, int window, int retention_s, int64_t *deleted, int64_t *next_from,
                          ct_error *err);

#endif
