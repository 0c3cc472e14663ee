/*
 * ct_metrics: Prometheus text exposition for every component.
 *
 * The ingress serves HTTP; the relay, the processors and the projector do
 * not. Each of those writes its figures every few seconds to
 * <data dir>/metrics/<name>.prom (written whole, then renamed: a reader
 * never sees half a file), the textfile-collector convention of the
 * Prometheus node exporter, and the ingress's GET /metrics appends every
 * such file of its data directory written in the last CT_METRICS_STALE_MS
 * (a component that died stops being reported instead of showing its last
 * figures forever). On one machine (`concert up`) that is one scrape for
 * the whole pipeline; elsewhere point a node exporter at the directory.
 *
 * Histograms: latency buckets in seconds, counted with relaxed atomics, so
 * any thread may observe while another formats.
 */
#ifndef CT_METRICS_H
#define CT_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ct_config.h"
#include "ct_error.h"

#define CT_METRICS_STALE_MS 30000
#define CT_METRICS_BUCKETS 11

typedef struct ct_histogram {
    _Atomic uint64_t buckets[CT_METRICS_BUCKETS + 1]; /* the last is +Inf */
    _Atomic uint64_t sum_us;
} ct_histogram;

void ct_histogram_observe_us(ct_histogram *h, int64_t us);

/* Text being built: appends never overflow (a full buffer truncates and
 * sets `full`). */
typedef struct ct_metrics_text {
    char *buf;
    size_t len, cap;
    int full;
} ct_metrics_text;

void ct_metrics_printf(ct_metrics_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* # HELP / # TYPE lines of a family (type: counter, gauge, histogram). */
void ct_metrics_family(ct_metrics_text *t, const char *name, const char *type, const char *help);
/* A family of one sample: its HELP/TYPE lines and `name{labels} value`
 * (labels "" for none). */
void ct_metrics_one(ct_metrics_text *t, const char *name, const char *type, const char *help, const char *labels,
                    double value);
/* The samples of histogram `name` with labels (e.g. `role="wallet"`, or
 * "" for none), after its ct_metrics_family line. */
void ct_metrics_histogram(ct_metrics_text *t, const char *name, const char *labels, const ct_histogram *h);

/* Writes t to <data dir>/metrics/<name>.prom atomically. */
int ct_metrics_publish(const ct_config *cfg, const char *name, const ct_metrics_text *t, ct_error *err);
/* Appends every fresh .prom file of <data dir>/metrics to t. */
void ct_metrics_collect(const ct_config *cfg, ct_metrics_text *t);

#endif
