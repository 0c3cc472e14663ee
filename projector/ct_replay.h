/*
 * ct_replay: `concert replay read-models`, the read models rebuilt from the
 * event topics into a database of their own, and compared with the live
 * ones.
 *
 * The rebuild is the projector itself (ct_projector_new_replay): the same
 * statements, in its own consumer group, into the new database, with no
 * Slack delivery and no retention. It stops at marks:
 *  - with compare, the live read models' own offsets, read in a REPEATABLE
 *    READ snapshot that stays open until the comparison is over, so both
 *    sides hold exactly the same events whatever the live projector does
 *    meanwhile;
 *  - without, each partition's end when the replay started.
 * The comparison walks every read-model table of both databases in key
 * order (COPY, byte order) and names the first row that differs. Columns
 * that hold Postgres's clock (applied_at, completed_at, updated_at) are not
 * compared. Command outcomes and applied event ids that the live
 * projector's retention (CONCERT_PROJECTOR_RETENTION_S) deleted are only in
 * the rebuild: counted, not a difference, when retention is on.
 */
#ifndef CT_REPLAY_H
#define CT_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "ct_config.h"
#include "ct_error.h"

typedef struct ct_replay_result {
    int64_t events;       /* events the rebuild applied */
    int64_t rows;         /* rows found equal */
    int64_t pruned_live;  /* rows only in the rebuild of tables the live retention prunes */
    int64_t lost_offsets; /* records before the topics' first offsets (deleted by Kafka's retention) */
    int tables;
    char diff[1024]; /* the first difference; empty when equal */
} ct_replay_result;

/* Rebuilds the read models into database `into` on the configured server
 * (created and migrated when missing; an existing one is continued from
 * the offsets it holds) and, with compare, compares them with the live
 * ones. 0 when done (and equal), 1 when they differ (out->diff), -1 with
 * err. `into` must not be the live database. */
int ct_replay_read_models(const ct_config *cfg, const char *into, bool compare, ct_replay_result *out, ct_error *err);

/* Empties the live read models and their offsets (not the outbox, the
 * idempotency keys or the Slack notifications) in one transaction, so that
 * the next projector rebuilds them from the topics' beginnings. Refused
 * while a projector is connected to the database. */
int ct_replay_reset_read_models(const ct_config *cfg, ct_error *err);

#endif
