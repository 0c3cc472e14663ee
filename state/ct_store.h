/*
 * ct_store: the RocksDB task store, one instance per assigned partition.
 *
 * It holds the partition's domain state (key layout: domain/README.md), the
 * input offset applied last and the ids of records applied recently, and it
 * implements the domain's state port (ct_kv.h): reads see the database plus
 * the current batch's pending writes, so the records of one Kafka
 * transaction build on each other before anything is durable.
 *
 * The pending batch is an in-memory overlay (one final value or tombstone
 * per key, written to RocksDB as one batch at commit, so a key rewritten by
 * every record costs one write per batch); point reads go overlay, then a
 * bounded cache of committed values (the task is the only writer, so it
 * never goes stale), then RocksDB with bloom filters; ordered reads merge a
 * RocksDB iterator with a sorted view of the overlay's keys under the
 * prefix. The processor loop (DESIGN.md section 6) drives a batch:
 *
 *   ct_store_batch_begin
 *   for each record: ct_store_is_applied? skip
 *                    apply the core against ct_store_port, then
 *                    ct_store_batch_add(effects) + ct_store_batch_mark_applied(id, offset)
 *   commit the Kafka transaction, then ct_store_batch_commit   (or ct_store_batch_discard)
 *
 * Store-internal keys start with byte 0x00, which no domain key does (domain
 * keys start with an ASCII tag letter):
 *   0x00 "offset"                 -> applied input offset, big-endian int64
 *   0x00 "id/" <record id>        -> offset it was applied at (be64)
 *   0x00 "io/" <offset be64>      -> 0x01, the log time (be64 ms), record id
 *                                    (the retention index; stores written
 *                                    before log times hold the id alone)
 * An applied id is forgotten only when it is both more than a window of
 * offsets behind the applied offset (CT_STORE_APPLIED_IDS_WINDOW) and
 * logged longer ago than the time retention (ct_store_set_id_retention):
 * a command the outbox may still publish again (it keeps a row for its
 * retention after sending it) is recognised however many records came
 * between, and the index stays bounded by both.
 *
 * One store per thread; not thread-safe.
 */
#ifndef CT_STORE_H
#define CT_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "ct_effects.h"
#include "ct_error.h"
#include "ct_kv.h"

/* How far back (in input offsets) applied record ids are remembered. */
#define CT_STORE_APPLIED_IDS_WINDOW 1000000
/* Largest value the store hands to the core (the port's buffers are the
 * caller's; this bounds what we copy). */
#define CT_STORE_RECORD_ID_MAX 256

typedef struct ct_store ct_store;

/* Opens the store in dir, creating it when missing. Applied ids are kept
 * for the offset window alone until ct_store_set_id_retention says more. */
ct_store *ct_store_open(const char *dir, ct_error *err);
/* Keep applied ids at least window offsets and keep_ms of log time (0:
 * forever) behind the newest applied record; ids whose log time is unknown
 * are kept for the window alone. */
void ct_store_set_id_retention(ct_store *st, int64_t window, int64_t keep_ms);
/* Closes; a pending batch is discarded. NULL ok. */
void ct_store_close(ct_store *st);
/* Deletes the store in dir entirely (must not be open). */
int ct_store_wipe(const char *dir, ct_error *err);

/* The committed applied offset, or -1 when nothing was ever applied. */
int ct_store_applied_offset(ct_store *st, int64_t *offset, ct_error *err);
/* Whether record_id was applied (committed, or earlier in this batch). */
int ct_store_is_applied(ct_store *st, const char *record_id, bool *applied, ct_error *err);

/* The domain's state port over the database and the pending batch. */
ct_kv_port ct_store_port(ct_store *st);

void ct_store_batch_begin(ct_store *st);
/* Adds a record's mutations to the pending batch. */
int ct_store_batch_add(ct_store *st, const ct_effects *fx, ct_error *err);
/* Records that record_id at offset, logged by the brokers at logged_ms
 * (<= 0: unknown), is applied (in the pending batch). */
int ct_store_batch_mark_applied(ct_store *st, const char *record_id, int64_t offset, int64_t logged_ms, ct_error *err);
/* Advances the applied offset alone (a record dead-lettered or skipped as
 * a duplicate: consumed, but nothing to remember by id). */
int ct_store_batch_set_offset(ct_store *st, int64_t offset, ct_error *err);
/* Writes the pending batch atomically (fsync'd WAL) and prunes applied ids
 * beyond the retention window. */
int ct_store_batch_commit(ct_store *st, ct_error *err);
void ct_store_batch_discard(ct_store *st);
/* Records in the pending batch. */
int ct_store_batch_count(ct_store *st);

/* Calls fn for every committed domain key/value in key order (tests,
 * tooling). fn returns nonzero to stop. */
typedef int (*ct_store_visit_fn)(void *ud, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len);
int ct_store_foreach(ct_store *st, ct_store_visit_fn fn, void *ud, ct_error *err);

#endif
