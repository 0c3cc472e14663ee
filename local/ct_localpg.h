/*
 * ct_localpg: the local PostgreSQL cluster under <data dir>/pg/, run with
 * Debian's binaries as the `postgres` user when we are root (Postgres
 * refuses to run as root), listening on 127.0.0.1:CONCERT_PG_PORT and on a
 * unix socket in <data dir>/pg/run.
 *
 * The cluster is initialised once (initdb, superuser `concert`, trust
 * authentication: it only listens on loopback and a 0700 socket directory)
 * and reused afterwards; the `concert` database is created when missing.
 */
#ifndef CT_LOCALPG_H
#define CT_LOCALPG_H

#include <sys/types.h>

#include "ct_config.h"
#include "ct_error.h"

/* initdb the first time; checks the postgres user can reach the directory. */
int ct_localpg_prepare(const ct_config *cfg, ct_error *err);
/* `postgres` in the foreground (for a supervisor); free with
 * ct_localpg_argv_free(). The child must run as ct_localpg_user(). */
int ct_localpg_server_argv(const ct_config *cfg, char ***argv_out, ct_error *err);
void ct_localpg_argv_free(char **argv);
/* "postgres" when we are root, else NULL (run as ourselves). */
const char *ct_localpg_user(void);

/* Starts the server as a daemon (pg_ctl) unless it runs already, waits until
 * it accepts connections and creates the `concert` database. */
int ct_localpg_start(const ct_config *cfg, ct_error *err);
int ct_localpg_stop(const ct_config *cfg, ct_error *err);
/* pid of the running postmaster, else 0. */
pid_t ct_localpg_pid(const ct_config *cfg);
/* Waits until the server accepts connections, then creates the database. */
int ct_localpg_wait_ready(const ct_config *cfg, int timeout_ms, ct_error *err);

#endif
