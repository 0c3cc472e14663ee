#include "ct_replay.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_kafka.h"
#include "ct_log.h"
#include "ct_migrate.h"
#include "ct_pg.h"
#include "ct_projector.h"

/* Every read-model table, its compared columns (key columns first) and
 * whether the live retention deletes its old rows. */
typedef struct table_spec {
    const char *name, *cols;
    int keys;
    bool pruned;
} table_spec;

static const table_spec tables[] = {
    {"projector_offsets", "topic, partition, next_offset", 2, false},
    {"projected_events", "id", 1, true},
    {"commands", "command_id, type, status, reason, result, event_id", 1, true},
    {"concerts", "concert_id, title, max_active, active_ttl_ms, hold_ttl_ms, schedule_count, created_ts", 1, false},
    {"schedules", "concert_id, schedule_id, starts_at, seats, price", 2, false},
    {"seats", "concert_id, schedule_id, seat_no, status, reservation_id, user_id, hold_until", 3, false},
    {"queue_tokens", "token, concert_id, user_id, seq, status, issued_ts, activated_ts, active_until, ended_ts", 1,
     false},
    {"reservations",
     "reservation_id, concert_id, schedule_id, seat_no, user_id, token, status, price, hold_until, payment_id,"
     " held_ts, updated_ts",
     1, false},
    {"payments", "payment_id, reservation_id, user_id, concert_id, amount, status, reason, updated_ts", 1, false},
    {"balances", "user_id, balance, updated_ts", 1, false},
};
#define TABLES (sizeof tables / sizeof tables[0])

#define MARKS_MAX 4096

typedef struct mark {
    const char *topic;
    int partition;
    int64_t first;  /* the partition's first offset now */
    int64_t offset; /* where the rebuild stops (exclusive) */
} mark;

/* ---- marks ------------------------------------------------------------------ */

/* Every partition the projector reads, with its first and end offsets now:
 * the end is where a rebuild without --compare stops. */
static int read_partitions(rd_kafka_t *rk, const ct_config *cfg, mark *m, int *n, ct_error *err) {
    for (int t = 0; ct_projector_topic(t); t++)
        for (int part = 0; part < cfg->kafka_partitions && *n < MARKS_MAX; part++) {
            int64_t lo = 0, hi = 0;
            rd_kafka_resp_err_t e =
                rd_kafka_query_watermark_offsets(rk, ct_projector_topic(t), part, &lo, &hi, cfg->kafka_timeout_ms);
            if (e) {
                CT_ERR(err, CT_ERR_RETRIABLE, "offsets of %s[%d]: %s", ct_projector_topic(t), part,
                       rd_kafka_err2str(e));
                return -1;
            }
            m[(*n)++] = (mark){ct_projector_topic(t), part, lo, hi};
        }
    return 0;
}

/* Whether res (topic, partition, ... rows of projector_offsets) has a row
 * for m; its column 2, the next offset, into *next when given. */
static bool stored_offset(PGresult *res, const mark *m, int64_t *next) {
    for (int r = 0; r < PQntuples(res); r++)
        if (strcmp(PQgetvalue(res, r, 0), m->topic) == 0 && atoi(PQgetvalue(res, r, 1)) == m->partition) {
            if (next) *next = strtoll(PQgetvalue(res, r, 2), NULL, 10);
            return true;
        }
    return false;
}

/* With --compare the rebuild stops where the live read models stand, read
 * in the snapshot `live` has open (0 for a partition they never read). */
static int marks_at_live(PGconn *live, mark *m, int n, ct_error *err) {
    PGresult *res = PQexec(live, "SELECT topic, partition, next_offset FROM projector_offsets");
    if (ct_pg_check(live, res, PGRES_TUPLES_OK, "read the live offsets", err) != 0) return -1;
    for (int i = 0; i < n; i++) {
        m[i].offset = 0;
        stored_offset(res, &m[i], &m[i].offset);
    }
    PQclear(res);
    return 0;
}

/* Records the rebuild cannot see: before each partition's first offset,
 * where the rebuild starts from the beginning (no stored offset). */
static int64_t lost_before_start(PGconn *into, const mark *m, int n) {
    PGresult *res = PQexec(into, "SELECT topic, partition, next_offset FROM projector_offsets");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return 0;
    }
    int64_t lost = 0;
    for (int i = 0; i < n; i++) {
        if (m[i].first <= 0 || stored_offset(res, &m[i], NULL)) continue;
        CT_LOG_WARN("replay",
                    "%s[%d] starts at offset %" PRId64 ": the records before it are deleted and the"
                    " rebuild lacks them",
                    m[i].topic, m[i].partition, m[i].first);
        lost += m[i].first;
    }
    PQclear(res);
    return lost;
}

/* ---- comparison --------------------------------------------------------------- */

/* A COPY of one table in key order, row by row. */
typedef struct copy_stream {
    PGconn *pg;
    char *row; /* current row (COPY text format, no newline), NULL at the end */
} copy_stream;

static int copy_open(copy_stream *s, PGconn *pg, const table_spec *t, ct_error *err) {
    char order[512] = "", col[64];
    const char *c = t->cols;
    for (int k = 0; k < t->keys; k++) {
        size_t len = strcspn(c, ",");
        snprintf(col, sizeof col, "%.*s", (int)len, c);
        size_t used = strlen(order);
        snprintf(order + used, sizeof order - used, "%s%s::text COLLATE \"C\"", k ? ", " : "", col);
        c += len;
        c += strspn(c, ", ");
    }
    char sql[1024];
    snprintf(sql, sizeof sql, "COPY (SELECT %s FROM %s ORDER BY %s) TO STDOUT", t->cols, t->name, order);
    s->pg = pg;
    s->row = NULL;
    PGresult *res = PQexec(pg, sql);
    return ct_pg_check(pg, res, PGRES_COPY_OUT, t->name, err) == 0 ? (PQclear(res), 0) : -1;
}

/* Moves to the next row; 0, or -1 with err. */
static int copy_next(copy_stream *s, ct_error *err) {
    if (s->row) PQfreemem(s->row);
    s->row = NULL;
    char *buf = NULL;
    int len = PQgetCopyData(s->pg, &buf, 0);
    if (len >= 0) {
        if (len > 0 && buf[len - 1] == '\n') buf[len - 1] = '\0';
        s->row = buf;
        return 0;
    }
    if (len == -2) {
        CT_ERR(err, CT_ERR_RETRIABLE, "copy: %s", PQerrorMessage(s->pg));
        return -1;
    }
    PGresult *res = PQgetResult(s->pg); /* the COPY's own end */
    int rc = ct_pg_check(s->pg, res, PGRES_COMMAND_OK, "copy", err);
    if (rc == 0) PQclear(res);
    while ((res = PQgetResult(s->pg))) PQclear(res);
    return rc;
}

/* Orders two rows by their first `keys` fields, byte by byte. */
static int key_cmp(const char *a, const char *b, int keys) {
    for (int k = 0; k < keys; k++) {
        size_t la = strcspn(a, "\t"), lb = strcspn(b, "\t");
        int c = memcmp(a, b, la < lb ? la : lb);
        if (c != 0) return c;
        if (la != lb) return la < lb ? -1 : 1;
        a += la + (a[la] == '\t'), b += lb + (b[lb] == '\t');
    }
    return 0;
}

static void show(char *out, size_t n, const table_spec *t, const char *live, const char *rebuilt) {
    snprintf(out, n, "%s: live [%.300s] rebuilt [%.300s]", t->name, live ? live : "no such row",
             rebuilt ? rebuilt : "no such row");
    for (char *c = out; *c; c++)
        if (*c == '\t') *c = '|';
}

/* 0 equal, 1 different (out->diff), -1 error. */
static int compare_table(PGconn *live, PGconn *into, const table_spec *t, bool retention, ct_replay_result *out,
                         ct_error *err) {
    copy_stream a, b;
    if (copy_open(&a, live, t, err) != 0) return -1;
    if (copy_open(&b, into, t, err) != 0) {
        while (copy_next(&a, err) == 0 && a.row) {}
        return -1;
    }
    int rc = copy_next(&a, err) == 0 && copy_next(&b, err) == 0 ? 0 : -1;
    while (rc == 0 && (a.row || b.row)) {
        int c = !a.row ? 1 : !b.row ? -1 : key_cmp(a.row, b.row, t->keys);
        if (c > 0 && t->pruned && retention) { /* deleted live by its retention */
            out->pruned_live++;
            rc = copy_next(&b, err);
        } else if (c != 0 || strcmp(a.row, b.row) != 0) {
            show(out->diff, sizeof out->diff, t, c <= 0 ? a.row : NULL, c >= 0 ? b.row : NULL);
            rc = 1;
        } else {
            out->rows++;
            rc = copy_next(&a, err) == 0 && copy_next(&b, err) == 0 ? 0 : -1;
        }
    }
    /* Drain what is left of both streams so the connections stay usable. */
    ct_error ignored = {0};
    while (a.row && copy_next(&a, &ignored) == 0 && a.row) {}
    while (b.row && copy_next(&b, &ignored) == 0 && b.row) {}
    if (a.row) PQfreemem(a.row);
    if (b.row) PQfreemem(b.row);
    return rc;
}

/* ---- the replay ------------------------------------------------------------------ */

static int rebuild(const ct_config *cfg, const char *into, const mark *marks, int n, ct_replay_result *out,
                   ct_error *err) {
    ct_projector *p = ct_projector_new_replay(cfg, into, err);
    if (!p) return -1;
    for (int i = 0; i < n; i++) ct_projector_replay_until(p, marks[i].topic, marks[i].partition, marks[i].offset);
    int64_t t0 = ct_clock_mono_ms();
    int rc = ct_projector_run(p, err);
    ct_projector_stats st;
    ct_projector_stats_get(p, &st);
    out->events = (int64_t)st.applied;
    ct_projector_destroy(p);
    if (rc == 0)
        CT_LOG_INFO("replay", "rebuilt database=%s events=%" PRId64 " duplicates=%" PRIu64 " ms=%" PRId64, into,
                    out->events, st.duplicates, ct_clock_mono_ms() - t0);
    return rc;
}

int ct_replay_reset_read_models(const ct_config *cfg, ct_error *err) {
    PGconn *pg = ct_pg_connect(cfg, NULL, err);
    if (!pg) return -1;
    char sql[512] = "TRUNCATE ";
    for (size_t t = 0; t < TABLES; t++) {
        size_t used = strlen(sql);
        snprintf(sql + used, sizeof sql - used, "%s%s", t ? ", " : "", tables[t].name);
    }
    /* The check and the truncation in one transaction: TRUNCATE's lock
     * waits for a projector's batch in flight, and one that connects after
     * the check finds the tables empty and starts from the beginning. */
    int rc = ct_pg_exec(pg, "BEGIN", err);
    if (rc == 0) {
        PGresult *res = PQexec(pg, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                   " AND application_name = '" CT_PROJECTOR_APPLICATION_NAME "'");
        rc = ct_pg_check(pg, res, PGRES_TUPLES_OK, "look for projectors", err);
        if (rc == 0) {
            long running = atol(PQgetvalue(res, 0, 0));
            PQclear(res);
            if (running > 0) {
                CT_ERR(err, CT_ERR_PERMANENT, "%ld projector(s) connected to the database: stop them first", running);
                rc = -1;
            }
        }
    }
    if (rc == 0) rc = ct_pg_exec(pg, sql, err);
    rc = rc == 0 ? ct_pg_exec(pg, "COMMIT", err) : (ct_pg_exec(pg, "ROLLBACK", &(ct_error){0}), -1);
    PQfinish(pg);
    return rc;
}

int ct_replay_read_models(const ct_config *cfg, const char *into, bool compare, ct_replay_result *out, ct_error *err) {
    memset(out, 0, sizeof *out);
    mark *marks = calloc(MARKS_MAX, sizeof *marks);
    PGconn *live = ct_pg_connect(cfg, NULL, err), *pg = NULL;
    rd_kafka_t *rk = NULL;
    int n = 0, rc = -1;
    if (!marks || !live) goto done;
    if (strcmp(PQdb(live), into) == 0) {
        CT_ERR(err, CT_ERR_PERMANENT, "--into names the live database '%s': replay into a new one", into);
        goto done;
    }
    if (ct_pg_create_database(cfg, into, err) != 0 || !(pg = ct_pg_connect(cfg, into, err)) ||
        ct_migrate_apply(pg, ct_migrations_embedded, ct_migrations_embedded_count, NULL, err) != 0)
        goto done;
    if (!(rk = ct_kafka_admin_new(cfg, "concert-replay", err))) goto done;
    if (read_partitions(rk, cfg, marks, &n, err) != 0) goto done;
    /* One snapshot for the marks and every table compared after. */
    if (compare && (ct_pg_exec(live, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) != 0 ||
                    marks_at_live(live, marks, n, err) != 0))
        goto done;
    out->lost_offsets = lost_before_start(pg, marks, n);
    if (rebuild(cfg, into, marks, n, out, err) != 0) goto done;
    rc = 0;
    for (size_t t = 0; compare && rc == 0 && t < TABLES; t++) {
        rc = compare_table(live, pg, &tables[t], cfg->projector_retention_s > 0, out, err);
        out->tables++;
    }
done:
    if (rk) rd_kafka_destroy(rk);
    if (pg) PQfinish(pg);
    if (live) PQfinish(live);
    free(marks);
    return rc;
}
