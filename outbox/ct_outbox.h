/*
 * ct_outbox: every statement on the outbox and outbox_frontier tables
 * (DESIGN.md section 7), so each exists once: the ingress's group-commit
 * insert, the relay's claim, marks and frontier, the command-status read's
 * join, and the operations shared by the relay, `concert outbox` and the
 * admin HTTP endpoints (retry, list, backlog, retention).
 *
 * The ingress's and the relay's hot-path statements are exported as tables
 * of prepared statements, not wrapped in functions: their callers pipeline
 * them (the ingress sends the lock, the rows and the keys with one Sync) or
 * run them inside a transaction of their own (the relay's round), and that
 * sequencing is theirs. Each table is prepared once per connection with
 * ct_pg_prepare.
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
#include "ct_pg.h"

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

/* ---- the ingress's writes (ingress/ct_commit) ---------------------------
 *
 * One group-commit transaction: CT_OUTBOX_WRITE_LOCK, CT_OUTBOX_WRITE_ROWS,
 * then CT_OUTBOX_WRITE_KEYS when some item has an Idempotency-Key, up to one
 * Sync. The lock serialises outbox writers to their commit, so commit order
 * is id order (the relay's frontier relies on it).
 *   LOCK: no parameters.
 *   ROWS: $1 uuid[] command ids, $2 text[] topics, $3 text[] partition
 *         keys, $4 text[] types, $5 jsonb[] payloads; returns the command
 *         ids of the rows written (a HoldSeat the user's balance does not
 *         cover is not written).
 *   KEYS: $1 text[] keys, $2 uuid[] command ids, $3 text[] fingerprints,
 *         $4 text[] stored responses; only for commands written. */
enum { CT_OUTBOX_WRITE_LOCK, CT_OUTBOX_WRITE_ROWS, CT_OUTBOX_WRITE_KEYS, CT_OUTBOX_WRITE_STMTS };
extern const ct_pg_statement ct_outbox_write_statements[CT_OUTBOX_WRITE_STMTS];

/* ---- the relay's round (relay/ct_relay) ---------------------------------
 *
 *   CLAIM: $1 int batch size, $2 bigint frontier; rows id, command_id,
 *          topic, partition_key, type, payload, attempts, fresh (t: a new
 *          row from the frontier on), held (t: a new row whose key waits
 *          behind an earlier row in backoff: to be parked).
 *   SENT:  $1 bigint[] ids, $2 int[] partitions, $3 bigint[] offsets.
 *   FAILED: $1 bigint[] ids, $2 text[] errors, $3 bigint[] backoff delays
 *          (ms), $4 int attempt limit; one row per alert written (a row
 *          that reached the limit is FAILED, with its alert, in the same
 *          statement).
 *   PARK:  $1 bigint[] ids of held new rows.
 *   FRONTIER_GET: one row, next_id. FRONTIER_SET: $1 bigint, moves it
 *          forward only.
 * The marks test nothing but the id: only the leader changes a PENDING
 * row, inside its round's transaction. */
enum {
    CT_OUTBOX_STMT_CLAIM,
    CT_OUTBOX_STMT_SENT,
    CT_OUTBOX_STMT_FAILED,
    CT_OUTBOX_STMT_PARK,
    CT_OUTBOX_STMT_FRONTIER_GET,
    CT_OUTBOX_STMT_FRONTIER_SET,
    CT_OUTBOX_RELAY_STMTS
};
extern const ct_pg_statement ct_outbox_relay_statements[CT_OUTBOX_RELAY_STMTS];

/* ---- the command-status read (ingress/ct_reads) -------------------------
 *
 * CT_OUTBOX_STATUS_COLUMNS, CT_OUTBOX_STATUS_NCOLUMNS columns of the outbox
 * row o: status, type, attempts, last_error, created_at and sent_at (RFC
 * 3339 text), kafka_partition, kafka_offset; CT_OUTBOX_COMMAND_JOIN(id)
 * joins o, the row of the command whose id is the text expression id (all
 * NULL when there is none). */
/* clang-format off */
#define CT_OUTBOX_STATUS_COLUMNS                                                        \
    "o.status, o.type, o.attempts, o.last_error, " CT_PG_ISO_TS("o.created_at") ", "    \
    CT_PG_ISO_TS("o.sent_at") ", o.kafka_partition, o.kafka_offset"
/* clang-format on */
#define CT_OUTBOX_STATUS_NCOLUMNS 8
#define CT_OUTBOX_COMMAND_JOIN(id) " LEFT JOIN outbox o ON o.command_id = " id "::uuid"
/* The user the command in o names (its data's user_id), NULL for none. */
#define CT_OUTBOX_USER_ID "o.payload->'data'->>'user_id'"

#endif
