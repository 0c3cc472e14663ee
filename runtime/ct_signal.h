/*
 * ct_signal: clean shutdown on SIGINT/SIGTERM, and SIGUSR1 as a request
 * whose meaning is the process's (a processor rebuilds its stores).
 *
 * Handlers only set a flag and write one byte to a self-pipe, so a loop can
 * either test ct_signal_stop_requested() or poll() ct_signal_fd(). SIGPIPE
 * is ignored (a closed socket is an error return, not a death).
 */
#ifndef CT_SIGNAL_H
#define CT_SIGNAL_H

#include <stdbool.h>

#include "ct_error.h"

int ct_signal_install(ct_error *err);
bool ct_signal_stop_requested(void);
/* Whether SIGUSR1 arrived since the last call (and forgets it). */
bool ct_signal_take_user1(void);
/* The signal number that asked us to stop (0 if none). */
int ct_signal_received(void);
/* Readable when a stop signal or SIGCHLD arrived; drain with ct_signal_drain(). */
int ct_signal_fd(void);
void ct_signal_drain(void);
/* For tests and internal shutdown paths: behave as if SIGTERM arrived. */
void ct_signal_request_stop(void);

#endif
