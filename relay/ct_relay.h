/*
 * ct_relay: `concert relay`, the outbox's way into Kafka (DESIGN.md
 * sections 1, 4 and 7).
 *
 * Leadership: a session-level Postgres advisory lock (CT_RELAY_LOCK_KEY).
 * Whoever holds it publishes; the others retry the lock every
 * CONCERT_RELAY_POLL_MS and take over within that time after the leader's
 * session ends (process death closes the socket, Postgres drops the lock).
 * If the leader's own connection breaks it stops publishing at once.
 *
 * Publishing: woken by LISTEN outbox (migration 0003) or every
 * CONCERT_RELAY_POLL_MS, the leader reads up to CONCERT_RELAY_BATCH_MAX due
 * PENDING rows in id order, skipping any row whose key has an earlier row
 * waiting out a backoff (so a key's rows stay in id order), publishes them
 * with the idempotent producer (record id = command_id), and after the
 * delivery reports marks them SENT with partition and offset. A failed
 * publish counts an attempt, keeps the error, and schedules the next one
 * with exponential backoff and jitter; at CONCERT_OUTBOX_MAX_ATTEMPTS the row
 * becomes FAILED and a slack_notifications row is written in the same
 * transaction. Publication is at-least-once: a relay killed between the
 * publish and the UPDATE publishes those rows again, with the same id, and
 * the processors drop the repeat.
 *
 * Ticker: the leader also sends a Tick (DESIGN.md section 4) to every
 * partition of concert.commands every CONCERT_TICK_MS.
 */
#ifndef CT_RELAY_H
#define CT_RELAY_H

#include <stdint.h>

#include "ct_config.h"
#include "ct_error.h"

/* pg_try_advisory_lock key of the relay leader ("relay" in ASCII). */
#define CT_RELAY_LOCK_KEY INT64_C(0x72656c6179)

typedef struct ct_relay ct_relay;

ct_relay *ct_relay_new(const ct_config *cfg, const char *instance, ct_error *err);
/* Runs until a stop signal (ct_signal); -1 with err on a fatal error. */
int ct_relay_run(ct_relay *r, ct_error *err);
void ct_relay_destroy(ct_relay *r);

#endif
