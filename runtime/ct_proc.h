/*
 * ct_proc: starting and stopping child processes (the local Kafka brokers,
 * Postgres, pipeline components, Maven).
 *
 * Children may be started as another user (Postgres refuses to run as root,
 * so when we are root it runs as `postgres`), in a session of their own
 * (daemons that outlive the CLI) or tied to their parent's life
 * (PR_SET_PDEATHSIG, so `concert up` killed with SIGKILL leaves no orphan).
 */
#ifndef CT_PROC_H
#define CT_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#include "ct_error.h"

typedef struct ct_proc_opts {
    const char *const *argv; /* argv[0] is looked up in PATH */
    const char *run_as_user; /* NULL: keep our identity; only honoured when root */
    const char *cwd;         /* NULL: inherit */
    const char *output_path; /* stdout+stderr appended here; NULL: see output_fd */
    int output_fd;           /* >= 0: stdout+stderr to this fd; -1 with no path: inherit */
    bool new_session;        /* setsid(): detached daemon */
    bool die_with_parent;    /* SIGTERM when the parent dies */
    bool null_stdin;         /* stdin from /dev/null */
} ct_proc_opts;

/* Starts a child; returns its pid, or -1 with err. */
pid_t ct_proc_spawn(const ct_proc_opts *opts, ct_error *err);

/* Runs argv to completion (output as opts says) within timeout_ms (killed
 * after). Returns 0 when it exited 0, else -1 with err saying how it ended. */
int ct_proc_run(const ct_proc_opts *opts, int timeout_ms, ct_error *err);

/* Waits for pid up to timeout_ms. Returns 1 when it exited (status filled),
 * 0 on timeout. */
int ct_proc_wait(pid_t pid, int timeout_ms, int *status);

/* Sends sig, waits up to timeout_ms, then SIGKILL and reaps. For our own
 * children only. Returns 0 once the child is gone. */
int ct_proc_stop(pid_t pid, int sig, int timeout_ms);

/* True while pid exists (any process, not only our children). */
bool ct_proc_alive(pid_t pid);

/* Reads a pid file; 0 when missing, unreadable or the process is gone. */
pid_t ct_proc_read_pidfile(const char *path);
int ct_proc_write_pidfile(const char *path, pid_t pid, ct_error *err);

/* Path of our own executable (to start `concert <component>` children). */
int ct_proc_self_exe(char *out, size_t out_bytes, ct_error *err);

/* mkdir -p with mode; 0 or -1 with err. */
int ct_fs_mkdirs(const char *path, unsigned mode, ct_error *err);
/* Writes a whole file atomically (temp file + rename). */
int ct_fs_write_file(const char *path, const char *data, size_t len, ct_error *err);
bool ct_fs_exists(const char *path);

#endif
