/*
 * ct_wait: writes that wait for their outcome (Prefer: wait=N).
 *
 * The projector NOTIFYs channel `command_done` with the ids of the commands
 * whose outcome it has just committed (comma-separated). One thread holds
 * a dedicated Postgres connection that LISTENs on it once and dispatches to
 * a table of waiters keyed by command_id: a notification for ids nobody
 * waits for costs a hash lookup, and ids that have waiters are read from
 * the `commands` table in one query per wake-up. No request polls. Queue
 * tokens ride the same channel: the projector adds a token it has just
 * admitted, and a token waiter (a token read with Prefer: wait) wakes.
 *
 * Races closed:
 *   - The outcome committed before the waiter registered (the NOTIFY went
 *     by): the listener reads the `commands` rows of the ids registered
 *     since it last looked, in one query on its own connection (not
 *     through the read pool: behind a queue of GETs the check, and so the
 *     answer, waited seconds under load).
 *   - A NOTIFY lost while the listener's connection was broken: after
 *     reconnecting (and LISTENing again) every current waiter is checked.
 *
 * A waiter ends exactly once: with an outcome, or on its deadline (the
 * caller answers its 202), or at stop (likewise). Its done callback runs
 * once, and the check looks waiters up by id under the table's lock, so
 * the waiter's memory is free to go from done on.
 *
 * Ownership: a waiter is the caller's memory, borrowed from a successful
 * ct_wait_register until its done callback.
 */
#ifndef CT_WAIT_H
#define CT_WAIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ct_api.h"
#include "ct_commit.h"
#include "ct_config.h"
#include "ct_error.h"

/* Buckets of the waiter table; chains stay short up to a few waiters per
 * bucket, and CONCERT_INGRESS_WAITERS_MAX bounds the total. */
#define CT_WAIT_BUCKETS 4096
/* Ids looked up in `commands` per query (notifications and re-checks). */
#define CT_WAIT_QUERY_IDS_MAX 1000
/* The listener's connection is retried this often while Postgres is away. */
#define CT_WAIT_RECONNECT_MS 500

typedef struct ct_wait ct_wait;
typedef struct ct_waiter ct_waiter;

struct ct_waiter {
    /* The command's id, or with token set a queue token (22 characters:
     * the two kinds of key never collide). */
    char command_id[CT_API_UUID_CHARS + 1];
    /* A token waiter (GET /v1/queue/tokens/{token} with Prefer: wait) ends
     * when the projector NOTIFYs the token (it was admitted), when its
     * registration check finds it no longer WAITING, on its deadline, or
     * after a reconnect (a wake that may be early: the caller reads the
     * token again and answers what it finds). found says which. */
    bool token;
    int64_t deadline_mono_ms;
    void (*done)(ct_waiter *w); /* called once, from any ct_wait or read-pool thread */
    void *done_ctx;
    /* The outcome, set before done: found, with status SUCCEEDED|REJECTED,
     * reason (or NULL) and result (JSON text), both malloc'd: release with
     * ct_waiter_clear. !found: the deadline passed or the ingress stops. */
    bool found;
    char status[16];
    char *reason, *result;
    /* private */
    ct_wait *owner;
    ct_waiter *next;
    bool in_table;
    _Atomic int refs;
};

/* Starts the listener thread. */
ct_wait *ct_wait_start(const ct_config *cfg, ct_error *err);
/* Registers w (command_id, deadline_mono_ms, done set by the caller). 0:
 * done will be called; -1: refused (CONCERT_INGRESS_WAITERS_MAX waiters
 * already, or stopping): done will not be called. Any thread. */
int ct_wait_register(ct_wait *wt, ct_waiter *w);
/* Ends every waiter without an outcome, refuses new ones, joins the
 * listener. NULL ok. */
void ct_wait_stop(ct_wait *wt);
void ct_wait_destroy(ct_wait *wt); /* stops first; NULL ok */
void ct_waiter_clear(ct_waiter *w);

typedef struct ct_wait_stats {
    int64_t waiters;
    uint64_t outcomes, timeouts, refused, reconnects;
} ct_wait_stats;
void ct_wait_get_stats(ct_wait *wt, ct_wait_stats *out);

#endif
