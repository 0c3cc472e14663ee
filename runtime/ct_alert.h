/*
 * ct_alert: the one way into slack_notifications. Every alert goes through
 * the SQL function concert_alerts_enqueue(kind, texts[], dedup_keys[])
 * (migration 0012), which inserts each row unless its dedup_key is taken;
 * concert_alert_enqueue(kind, text, dedup_key) is a set of one. projector/
 * ct_slack delivers the rows.
 *
 * Alerts that record a cause in the same statement (a confirmed
 * reservation, a FAILED outbox row, a dead letter, a skipped projection)
 * splice CT_ALERT_ENQUEUE_SQL into that statement, so the alert commits
 * with its cause and the statement stays one pipelined round; an alert with
 * no statement of its own (a crash loop of `concert up`) calls
 * ct_alert_enqueue.
 *
 * Why in runtime/: the relay, the projector and the CLI all enqueue alerts,
 * and runtime/ is the one library below all three (the relay must not
 * depend on the projector, where the sender lives).
 */
#ifndef CT_ALERT_H
#define CT_ALERT_H

#include <libpq-fe.h>

#include "ct_error.h"

/* The SQL function's name, written once on the C side. */
#define CT_ALERT_ENQUEUE_FN "concert_alert_enqueue"
/* A call of it for an SQL statement: each argument an SQL expression (a
 * parameter, a literal, NULL), cast to text so a prepared statement's
 * parameters need no declared types. Its value is the new row's id, NULL
 * when dedup_key was taken. */
#define CT_ALERT_ENQUEUE_SQL(kind, text, dedup_key) \
    CT_ALERT_ENQUEUE_FN "((" kind ")::text, (" text ")::text, (" dedup_key ")::text)"
/* Many alerts of one kind in one INSERT: a set-returning call (the new
 * rows' ids) for a FROM clause; texts and dedup_keys are text[] of one
 * length, a dedup_keys element may be NULL. */
#define CT_ALERTS_ENQUEUE_FN "concert_alerts_enqueue"
#define CT_ALERTS_ENQUEUE_SQL(kind, texts, dedup_keys) \
    CT_ALERTS_ENQUEUE_FN "((" kind ")::text, (" texts ")::text[], (" dedup_keys ")::text[])"

/* Enqueues one alert in a statement of its own (committed at once unless
 * pg is inside a transaction). dedup_key may be NULL (never a duplicate);
 * a duplicate is not written and is no error. 0, or -1 with err. Any
 * thread that owns pg. */
int ct_alert_enqueue(PGconn *pg, const char *kind, const char *text, const char *dedup_key, ct_error *err);

#endif
