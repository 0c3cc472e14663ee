/*
 * ct_supervisor: runs child processes for `concert up`, prefixes their
 * output with their name, restarts crashed ones with exponential backoff,
 * and stops everything cleanly.
 *
 * Children are started with PR_SET_PDEATHSIG, so even a supervisor killed
 * with SIGKILL leaves no orphan. Stopping goes by tier, highest first (the
 * pipeline components before the infrastructure they use): every child of a
 * tier gets its stop signal at once, then SIGKILL after its grace period.
 * Single-threaded: call everything from the main thread.
 */
#ifndef CT_SUPERVISOR_H
#define CT_SUPERVISOR_H

#include <stdbool.h>
#include <sys/types.h>

#include "ct_error.h"

typedef struct ct_supervisor ct_supervisor;

typedef struct ct_child_spec {
    const char *name;        /* log prefix and lookup key; copied */
    const char *const *argv; /* copied */
    const char *run_as_user; /* NULL: as ourselves */
    int stop_signal;         /* e.g. SIGTERM; Postgres wants SIGINT (fast shutdown) */
    int stop_timeout_ms;     /* grace before SIGKILL */
    int tier;                /* stop order: higher tiers stop first */
} ct_child_spec;

#define CT_SUPERVISOR_CHILDREN_MAX 32
/* A child restarted this many times within the window is crash-looping. */
#define CT_SUPERVISOR_CRASHLOOP_RESTARTS 5
#define CT_SUPERVISOR_CRASHLOOP_WINDOW_MS (60 * 1000)

ct_supervisor *ct_supervisor_new(int backoff_max_ms, ct_error *err);
/* Destroys after ct_supervisor_stop_all() (called here if needed). NULL ok. */
void ct_supervisor_destroy(ct_supervisor *sup);

/* Called once per crash-loop window when a child reaches
 * CT_SUPERVISOR_CRASHLOOP_RESTARTS restarts in it, from ct_supervisor_poll
 * (keep it short: the supervisor waits). last_exit: "exit=N" / "signal=N". */
typedef void (*ct_supervisor_crashloop_fn)(const char *name, int restarts, const char *last_exit, void *ctx);
void ct_supervisor_on_crashloop(ct_supervisor *sup, ct_supervisor_crashloop_fn fn, void *ctx);

/* Registers and starts a child. */
int ct_supervisor_add(ct_supervisor *sup, const ct_child_spec *spec, ct_error *err);

/* Waits up to timeout_ms for output, exits, restarts that fall due, or a
 * stop signal (ct_signal), and handles them. Returns at once when a stop
 * signal is pending. */
void ct_supervisor_poll(ct_supervisor *sup, int timeout_ms);

bool ct_supervisor_running(const ct_supervisor *sup, const char *name);
int ct_supervisor_restarts(const ct_supervisor *sup, const char *name);

/* Stops every child, tier by tier. */
void ct_supervisor_stop_all(ct_supervisor *sup);

#endif
