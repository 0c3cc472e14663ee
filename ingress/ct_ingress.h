/*
 * ct_ingress: the HTTP front door (libmicrohttpd).
 *
 * Serves GET /healthz (the process is alive) and GET /readyz (Postgres and
 * Kafka both reachable). Readiness is measured by a background thread once a
 * second, so a probe never blocks on I/O and a burst of probes costs nothing.
 * Limits: CONCERT_HTTP_CONNECTIONS_MAX connections, CT_INGRESS_CONN_MEMORY_BYTES
 * per connection (bounds header size: larger requests get 431/413 from MHD),
 * an idle timeout.
 */
#ifndef CT_INGRESS_H
#define CT_INGRESS_H

#include "ct_config.h"
#include "ct_error.h"

#define CT_INGRESS_CONN_MEMORY_BYTES (64 * 1024)
#define CT_INGRESS_IDLE_TIMEOUT_S 30
#define CT_INGRESS_READY_INTERVAL_MS 1000

typedef struct ct_ingress ct_ingress;

/* Binds and starts serving; cfg is borrowed for the ingress's lifetime. */
ct_ingress *ct_ingress_start(const ct_config *cfg, ct_error *err);
/* The port actually bound (useful with CONCERT_HTTP_PORT=0). */
int ct_ingress_port(const ct_ingress *in);
/* Stops serving and frees. NULL ok. */
void ct_ingress_stop(ct_ingress *in);

#endif
