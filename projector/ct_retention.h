/*
 * ct_retention: what the projector keeps does not grow forever. Applied
 * event ids (`projected_events`), command outcomes (`commands`), and Slack
 * notifications delivered or last due longer ago than a retention are
 * deleted, oldest first, a bounded slice at a time (migration 0008 and the
 * unsent index of 0002 index their times).
 *
 * The retention must exceed the event topics' (an id guards against a
 * redelivered copy of its event as long as one can exist) and the outbox's
 * (a command's status reads from the outbox until its outcome exists; an
 * outcome deleted first would read PUBLISHED again): ct_config refuses a
 * CONCERT_PROJECTOR_RETENTION_S below CONCERT_OUTBOX_RETENTION_S.
 * An undelivered notification goes only when no sender has tried it for
 * the retention (without a webhook none does: DESIGN.md keeps them and
 * shows them, and kept for ever they grew without bound); a sender that
 * keeps retrying moves its next attempt ahead, so it stays.
 */
#ifndef CT_RETENTION_H
#define CT_RETENTION_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "ct_error.h"

typedef struct ct_retention_counts {
    int64_t events, commands, notifications;
} ct_retention_counts;

/* Deletes at most `limit` rows (1..100000) of each table older than
 * retention_s (>= 1) seconds, in one statement, and adds what it deleted to
 * *deleted. *more: some table gave `limit` rows, so more may be due. */
int ct_retention_prune_slice(PGconn *conn, int retention_s, int limit, ct_retention_counts *deleted, bool *more,
                             ct_error *err);

#endif
