/*
 * ct_processor: the exactly-once consume-transform-produce loop of one role
 * (DESIGN.md section 6), around the pure domain core and the RocksDB task
 * stores.
 *
 * One read_committed consumer in the role's group and one transactional
 * producer per process. Per batch (up to CONCERT_PROCESSOR_BATCH_MAX records
 * or CONCERT_PROCESSOR_BATCH_MS):
 *   begin; for each record: skip an id applied already, else run the core
 *   against the task's store (reads see the batch's pending writes), produce
 *   its outputs, stage its mutations + id + offset; send the offsets with the
 *   consumer group metadata; commit; only then write the stores.
 * Abortable error: abort, drop the staged writes, seek back to the committed
 * offsets, go on. Fatal error (fenced, ...): return -1 and let the
 * supervisor restart the process.
 *
 * On assignment, a task whose store is behind the group's committed offset
 * (a crash between commit and store write, or a store from an earlier owner)
 * replays the gap in restore mode: state only, no output (those outputs were
 * committed already). A missing store is rebuilt from the partition's first
 * offset. A store ahead of the group (offsets reset) is wiped and rebuilt.
 *
 * Malformed records, unknown types and records the core refuses as
 * malformed go to "<input topic>.dlq" with the reason in headers; the loop
 * goes on.
 *
 * The transactional.id is "concert-<role>-<instance>", stable across
 * restarts of one instance, so a restarted process fences its predecessor
 * and aborts its open transaction at once instead of after a timeout.
 */
#ifndef CT_PROCESSOR_H
#define CT_PROCESSOR_H

#include <stdint.h>

#include "ct_config.h"
#include "ct_error.h"
#include "ct_record.h"

#define CT_PROCESSOR_INSTANCE_MAX 64
/* Kafka transaction timeout: bounds how long a dead producer's open
 * transaction can hold back read_committed consumers if nothing fences it. */
#define CT_PROCESSOR_TXN_TIMEOUT_MS 15000
/* Static group membership (group.instance.id = the transactional id): a
 * restarted instance resumes its partitions without a rebalance; an
 * instance gone for good loses them after this session timeout. */
#define CT_PROCESSOR_SESSION_TIMEOUT_MS 10000
#define CT_PROCESSOR_PARTITIONS_MAX 1024
#define CT_PROCESSOR_RECORD_BYTES_MAX (64 * 1024)
#define CT_PROCESSOR_RESTORE_COMMIT_EVERY 10000
/* Sampled commands (CONCERT_TRACE_SAMPLE) of one transaction whose commit
 * is traced; more are traced at consume only. */
#define CT_PROCESSOR_TRACED_MAX 256

typedef struct ct_processor ct_processor;

/* Counters since start, for progress lines and benchmarks; the ms fields
 * split a batch's wall time into its phases. */
typedef struct ct_processor_stats {
    uint64_t applied, skipped, dead_lettered, batches;
    uint64_t clamped;   /* commands whose ts was lowered to their log time + CONCERT_CLOCK_SKEW_MAX_MS */
    int64_t poll_ms;    /* waiting for and fetching the batch's records */
    int64_t apply_ms;   /* decode, core, encode, produce (enqueue), stage */
    int64_t offsets_ms; /* send_offsets_to_transaction */
    int64_t commit_ms;  /* commit_transaction */
    int64_t store_ms;   /* writing the stores after the commit */
} ct_processor_stats;

/* instance: [A-Za-z0-9_-]{1,64}; its stores live under
 * <data dir>/processors/<role>-<instance>/ (ct_processor_store_root), with
 * its pid file and its last rebuild's status (JSON: state rebuilding, done
 * or failed, started_ms, partitions, partitions_done, partition, offset,
 * to, records, error). SIGUSR1 asks a running processor to rebuild every
 * store it holds from its input topic (`concert replay processor`). */
#define CT_PROCESSOR_PID_FILE "pid"
#define CT_PROCESSOR_REBUILD_FILE "rebuild.json"
void ct_processor_store_root(const ct_config *cfg, ct_role role, const char *instance, char *out, size_t n);
ct_processor *ct_processor_new(const ct_config *cfg, ct_role role, const char *instance, ct_error *err);
/* Runs until a stop signal (0) or a fatal error (-1). */
int ct_processor_run(ct_processor *p, ct_error *err);
void ct_processor_destroy(ct_processor *p);
/* A copy of the counters; any thread may call it. */
void ct_processor_stats_get(const ct_processor *p, ct_processor_stats *out);

#endif
