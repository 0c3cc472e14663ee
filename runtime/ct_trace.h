/*
 * ct_trace: per-hop timing of a sample of commands through the pipeline.
 *
 * With CONCERT_TRACE_SAMPLE = N > 0, every component logs one line per hop
 * a sampled command passes:
 *
 *   ... INFO <component> trace: cmd=<command_id> hop=<hop> us=<wall µs>
 *
 * The sample is a pure function of the command id (1 in N by its hash), so
 * every process picks the same commands without talking to the others, and
 * the lines of one command from the ingress, the relay, both processors and
 * the projector line up on one machine's wall clock. bench/trace_report.py
 * turns them into per-hop latency distributions. N = 0 (the default) costs
 * one integer test per hop.
 *
 * The setting is process-wide, set once by main before threads start (like
 * the log level); ct_trace_hop may be called from any thread.
 */
#ifndef CT_TRACE_H
#define CT_TRACE_H

#include <stdbool.h>
#include <stddef.h>

void ct_trace_init(int one_in);
/* Logs the hop when the command is sampled; returns whether it was. hop: a
 * short static name such as "ingress.commit". */
bool ct_trace_hop(const char *command_id, size_t len, const char *hop);

#endif
