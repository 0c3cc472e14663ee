/*
 * ct_admin: the admin API behind the operator's console (ct_console): the
 * cluster's topics and records, a test record, the consumer groups' lag
 * and owners, each concert's queue and sales, the Slack notifications, and
 * a retry of every FAILED outbox row. Each answer is JSON with an HTTP
 * status, built from Postgres (the connection given) and Kafka (ct_cluster,
 * held here).
 *
 * Locality: one thread at a time (the ingress's admin worker): calls block
 * for up to a few seconds on the cluster.
 */
#ifndef CT_ADMIN_H
#define CT_ADMIN_H

#include <libpq-fe.h>
#include <stddef.h>

#include "ct_api.h"
#include "ct_commit.h"
#include "ct_config.h"

typedef struct ct_admin ct_admin;

ct_admin *ct_admin_new(const ct_config *cfg);
void ct_admin_destroy(ct_admin *a); /* NULL ok */

/* One request: its route, the topic of its path, and its query string's
 * values (NULL when absent). */
typedef struct ct_admin_request {
    ct_api_route route;
    const char *topic;
    const char *partition, *offset, *limit, *key, *status;
    const char *body;
    size_t body_len;
} ct_admin_request;

/* Answers rq into it (ct_commit_set_json / _set_error): a malformed
 * parameter is 400 INVALID_QUERY, an unknown topic or partition 404, a
 * cluster or database that does not answer 503. */
void ct_admin_run(ct_admin *a, PGconn *pg, ct_commit_item *it, const ct_admin_request *rq);

#endif
