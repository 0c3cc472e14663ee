/*
 * ct_slack: delivers slack_notifications rows to CONCERT_SLACK_WEBHOOK_URL.
 *
 * The rows are written by whoever has something to say, in the transaction
 * of the cause (the relay's FAILED row, the projector's confirmed
 * reservation or dead letter, `concert up`'s crash loop). This sender, a
 * thread of its own inside `concert projector`, claims due unsent rows
 * (FOR UPDATE SKIP LOCKED, so several projectors never post the same row at
 * once), posts each as Slack's incoming-webhook JSON `{"text": ...}` with
 * libcurl, and marks it sent_at, or counts the attempt, keeps the error and
 * schedules the next one with exponential backoff and jitter; the sender
 * itself backs off while the receiver fails, and every row goes out once it
 * answers again.
 *
 * Delivery is at-least-once: a crash between Slack's 200 and the UPDATE
 * posts that row again (incoming webhooks have no idempotency key).
 * Without a URL nothing is sent and rows stay visible. The URL is a secret:
 * it is never logged, and errors are stored as "HTTP <status>" or libcurl's
 * error name, never with the address.
 */
#ifndef CT_SLACK_H
#define CT_SLACK_H

#include "ct_config.h"
#include "ct_error.h"

typedef struct ct_slack ct_slack;

/* Starts the sender thread (none when no URL is configured: the returned
 * handle is still valid). */
ct_slack *ct_slack_start(const ct_config *cfg, ct_error *err);
/* Stops the thread (finishing the post in flight) and frees. NULL ok. */
void ct_slack_stop(ct_slack *s);

/* The webhook body for a message: {"text": "..."}, JSON-escaped. Caller
 * frees. NULL when out of memory. */
char *ct_slack_payload(const char *text);

#endif
