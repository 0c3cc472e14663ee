/*
 * ct_ingress: the HTTP front door (libmicrohttpd), DESIGN.md section 9.
 *
 * Writes (queue tokens, reservations, payments, balance charges, admin
 * concert creation) are validated by ct_api, then the connection is
 * suspended and the command handed to ct_commit, whose workers write it to
 * the outbox in a group commit and resume the connection with 202
 * {command_id, status_url} once the row is committed. HTTP threads never
 * wait for Postgres, so a few threads carry thousands of connections.
 *
 * With Prefer: wait=N the connection stays suspended after the commit
 * until ct_wait reports the command's outcome (200/201, or the rejection's
 * 4xx) or N runs out (202).
 *
 * Reads (the read API of DESIGN.md section 9 and GET /v1/commands/{id})
 * are answered from the projector's read models by a separate read pool
 * (CONCERT_INGRESS_READ_CONNS workers), so they never wait behind a group
 * commit.
 *
 * Also: GET /v1/admin/outbox, POST
 * /v1/admin/outbox/{id}/retry, GET /healthz, GET /readyz (measured by a
 * background thread once a second, so probes never block), GET /metrics
 * (Prometheus text). Limits: CONCERT_HTTP_CONNECTIONS_MAX connections,
 * CT_INGRESS_CONN_MEMORY_BYTES per connection (bounds the header size:
 * larger headers get 431 from MHD), bodies of 16 KiB (413), an idle timeout,
 * CONCERT_INGRESS_QUEUE_MAX requests waiting for the database (503),
 * CONCERT_INGRESS_WAITERS_MAX writes waiting for an outcome (then 202 at
 * once).
 */
#ifndef CT_INGRESS_H
#define CT_INGRESS_H

#include "ct_config.h"
#include "ct_error.h"

#define CT_INGRESS_CONN_MEMORY_BYTES (32 * 1024)
#define CT_INGRESS_IDLE_TIMEOUT_S 30
/* File descriptors kept for other than HTTP connections. */
#define CT_INGRESS_FD_RESERVE 256
#define CT_INGRESS_READY_INTERVAL_MS 1000
#define CT_INGRESS_HTTP_THREADS 2
/* At stop, how long answered requests (waiting writes answered 202, the
 * last group commit's) get to reach their clients before the HTTP server
 * closes every connection. */
#define CT_INGRESS_STOP_FLUSH_MS 5000

typedef struct ct_ingress ct_ingress;

/* Binds and starts serving; cfg is borrowed for the ingress's lifetime. */
ct_ingress *ct_ingress_start(const ct_config *cfg, ct_error *err);
/* The port actually bound (useful with CONCERT_HTTP_PORT=0). */
int ct_ingress_port(const ct_ingress *in);
/* Stops serving and frees. NULL ok. */
void ct_ingress_stop(ct_ingress *in);

#endif
