/*
 * ct_projector: `concert projector`, the read side's writer (DESIGN.md
 * section 8).
 *
 * Consumes concert.events and wallet.events (read_committed) and the command
 * topics' dead-letter topics, in the consumer group CONCERT_PROJECTOR_GROUP, and
 * applies each batch to the read models of migration 0005 in ONE Postgres
 * transaction together with the batch's next offsets (projector_offsets).
 * Kafka's committed offsets are never used: on assignment the stored offsets
 * are read and the partitions assigned at them, so what Postgres holds and
 * where reading resumes can never disagree, whatever line a crash hits.
 *
 * Inside the transaction:
 *  - event ids applied already (projected_events) are skipped, so a record
 *    delivered twice (a processor's retried transaction, a topic replayed)
 *    changes nothing;
 *  - each event becomes one prepared statement, sent in a libpq pipeline in
 *    partition order (a token's activation follows its issue, a seat's second
 *    hold follows the first one's expiry);
 *  - a terminal event (data.terminal) writes the command's outcome row;
 *  - a confirmed reservation and a dead-lettered record each write a
 *    slack_notifications row (delivered by ct_slack);
 *  - the offsets are advanced with a compare-and-set on the value read at
 *    assignment, so a projector that lost its partitions in a rebalance
 *    cannot overwrite the new owner's progress: a mismatch rolls back and
 *    the partitions are re-read from the stored offsets;
 *  - pg_notify('command_done', ids) for the ingress's Prefer: wait, which
 *    Postgres delivers only when the transaction commits.
 * An event that cannot be applied (malformed JSON, missing fields, a value
 * the tables reject) is skipped with a `projection_skipped` Slack row naming
 * its topic, partition and offset, and the offset moves past it: one bad
 * record never stops the read models.
 */
#ifndef CT_PROJECTOR_H
#define CT_PROJECTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "ct_config.h"
#include "ct_error.h"

/* Static group membership (group.instance.id concert-projector-<instance>):
 * a projector restarted after a crash takes its partitions back at once
 * instead of waiting for the dead member's session to time out. */
#define CT_PROJECTOR_SESSION_TIMEOUT_MS 10000

/* The Postgres application_name of a projector's connection. */
#define CT_PROJECTOR_APPLICATION_NAME "concert-projector"

typedef struct ct_projector ct_projector;

/* instance: this process's name within the group (distinct per process). */
ct_projector *ct_projector_new(const ct_config *cfg, const char *instance, ct_error *err);

/* A replay (`concert replay read-models`, ct_replay): a projector that
 * writes into database `dbname` on the configured server, in a consumer
 * group of its own, delivers no Slack message and prunes nothing, and whose
 * ct_projector_run returns 0 once every partition has been applied up to
 * its mark (ct_projector_replay_until, exclusive; a partition without a
 * mark contributes nothing). It starts where `dbname`'s projector_offsets
 * say, or at each partition's beginning. */
ct_projector *ct_projector_new_replay(const ct_config *cfg, const char *dbname, ct_error *err);
/* Marks where a replay stops reading topic's partition (records at or past
 * `offset` are not applied). -1 if topic is not one the projector reads. */
int ct_projector_replay_until(ct_projector *p, const char *topic, int partition, int64_t offset);
/* Counters since start (from the thread that runs it, or after ct_projector_run returned). */
typedef struct ct_projector_stats {
    uint64_t applied, duplicates, skipped, dead_letters, batches;
} ct_projector_stats;
void ct_projector_stats_get(const ct_projector *p, ct_projector_stats *out);

/* The topics the projector reads: i = 0, 1, ... until NULL. */
const char *ct_projector_topic(int i);
/* Runs until a stop signal (ct_signal); -1 with err on a fatal error. */
int ct_projector_run(ct_projector *p, ct_error *err);
void ct_projector_destroy(ct_projector *p);

/* What the projector makes of one event record, without a database: NULL
 * when it would be applied, else why it would be skipped (a static string,
 * as logged). For fuzzing the decoder (fuzz/fuzz_event.c). */
const char *ct_projector_check_event(const void *payload, size_t len);

#endif
