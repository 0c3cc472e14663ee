/* ct_metrics: see ct_metrics.h. */
#include "ct_metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ct_proc.h"

static const int64_t bucket_us[CT_METRICS_BUCKETS] = {1000,   2000,   5000,   10000,   20000,  50000,
                                                      100000, 200000, 500000, 1000000, 5000000};

void ct_histogram_observe_us(ct_histogram *h, int64_t us) {
    size_t b = 0;
    while (b < CT_METRICS_BUCKETS && us > bucket_us[b]) b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)(us > 0 ? us : 0), memory_order_relaxed);
}

void ct_metrics_printf(ct_metrics_text *t, const char *fmt, ...) {
    if (t->full || t->len >= t->cap) {
        t->full = 1;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= t->cap - t->len) {
        t->full = 1;
        t->buf[t->len] = '\0'; /* whole lines only */
        return;
    }
    t->len += (size_t)n;
}

void ct_metrics_family(ct_metrics_text *t, const char *name, const char *type, const char *help) {
    ct_metrics_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void ct_metrics_one(ct_metrics_text *t, const char *name, const char *type, const char *help, const char *labels,
                    double value) {
    ct_metrics_family(t, name, type, help);
    if (labels[0])
        ct_metrics_printf(t, "%s{%s} %.17g\n", name, labels, value);
    else
        ct_metrics_printf(t, "%s %.17g\n", name, value);
}

void ct_metrics_histogram(ct_metrics_text *t, const char *name, const char *labels, const ct_histogram *h) {
    const char *sep = labels[0] ? "," : "";
    uint64_t cum = 0;
    for (size_t b = 0; b < CT_METRICS_BUCKETS; b++) {
        cum += atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
        ct_metrics_printf(t, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, sep, (double)bucket_us[b] / 1e6,
                          cum);
    }
    cum += atomic_load_explicit(&h->buckets[CT_METRICS_BUCKETS], memory_order_relaxed);
    ct_metrics_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep, cum);
    char l[256] = "";
    if (labels[0]) snprintf(l, sizeof l, "{%s}", labels);
    ct_metrics_printf(t, "%s_sum%s %.6f\n%s_count%s %" PRIu64 "\n", name, l,
                      (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6, name, l, cum);
}

static void metrics_dir(const ct_config *cfg, char *out, size_t n) { snprintf(out, n, "%s/metrics", cfg->data_dir); }

int ct_metrics_publish(const ct_config *cfg, const char *name, const ct_metrics_text *t, ct_error *err) {
    char dir[CT_CONFIG_PATH_MAX + 16], path[CT_CONFIG_PATH_MAX + 160];
    metrics_dir(cfg, dir, sizeof dir);
    if (ct_fs_mkdirs(dir, 0755, err) != 0) return -1;
    snprintf(path, sizeof path, "%s/%s.prom", dir, name);
    return ct_fs_write_file(path, t->buf, t->len, err);
}

void ct_metrics_collect(const ct_config *cfg, ct_metrics_text *t) {
    char dir[CT_CONFIG_PATH_MAX + 16];
    metrics_dir(cfg, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (!d) return;
    time_t now = time(NULL);
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".prom") != 0) continue;
        char path[CT_CONFIG_PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || (int64_t)(now - st.st_mtime) * 1000 > CT_METRICS_STALE_MS) continue;
        FILE *f = fopen(path, "r");
        if (!f) continue;
        char line[1024];
        while (fgets(line, sizeof line, f)) ct_metrics_printf(t, "%s", line);
        fclose(f);
    }
    closedir(d);
}
