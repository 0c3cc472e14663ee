/* ct_relay: see ct_relay.h. */
#include "ct_relay.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_backoff.h"
#include "ct_kafka.h"
#include "ct_log.h"
#include "ct_metrics.h"
#include "ct_trace.h"
#include "ct_outbox.h"
#include "ct_pg.h"
#include "ct_pgarray.h"
#include "ct_publisher.h"
#include "ct_signal.h"

#define CONNECT_RETRY_MS 1000
#define STATS_EVERY_MS 10000
/* Rounds this large on average (a moving average over about the last 8)
 * are load: the relay lingers before the next (CONCERT_RELAY_LINGER_MS,
 * when set). */
#define LINGER_MIN_ROWS 16
#define TICK_BYTES 160
/* Retention: a pass over the outbox every PRUNE_EVERY_MS, in slices of
 * PRUNE_WINDOW ids after each round (another while the round's slices took
 * less than PRUNE_BUDGET_MS), so deleting a large backlog never holds
 * publishing up for long. */
#define PRUNE_EVERY_MS 60000
#define PRUNE_WINDOW 1000
#define PRUNE_BUDGET_MS 20

struct ct_relay {
    const ct_config *cfg;
    char instance[64];
    PGconn *pg;
    bool leader;
    bool standby_logged;
    /* outbox_frontier.next_id as this leader last read or wrote it; -1:
     * to be read. */
    int64_t frontier;
    int64_t *park; /* the current batch's held new rows */
    /* After a round that did not fill the batch, no claim before this. */
    int64_t linger_until_ms;
    int avg_round8; /* 8 x the moving average of the rounds' sizes (the linger's trigger) */
    ct_publisher *pub;
    int64_t next_tick_ms, last_tick_ts, next_connect_ms, last_stats_ms;
    uint64_t sent, failed, failed_final, ticks, rounds;
    /* retention: where the current pass goes on (0: none under way) */
    int64_t next_prune_ms, prune_from, pass_pruned;
    uint64_t pruned;
    /* Where a round's time goes, since the last progress line (ms). */
    int64_t claim_ms, publish_ms, record_ms;
    ct_histogram publish_seconds; /* a round's produce, from send to every acknowledgement */
    int64_t metrics_ms;
    /* the current batch */
    ct_publish_msg *msgs;
    int64_t *ids;
    int *attempts;
    PGresult *rows;
    char (*tick_values)[TICK_BYTES];
    char (*tick_ids)[64];
    int tick_cap;
};

/* ---- Postgres: connection, leadership ----------------------------------- */

static int prepare_statements(PGconn *pg, ct_error *err);

static void drop_pg(ct_relay *r, const char *why) {
    if (r->pg) {
        CT_LOG_WARN("relay", "database connection lost (%s)%s", why, r->leader ? ", leadership released" : "");
        PQfinish(r->pg);
    }
    r->pg = NULL;
    r->leader = false;
    r->standby_logged = false;
    r->frontier = -1; /* read again: another leader may have moved it */
    r->prune_from = 0, r->pass_pruned = 0;
    r->next_connect_ms = ct_clock_mono_ms() + CONNECT_RETRY_MS;
}

static bool ensure_pg(ct_relay *r) {
    if (r->pg) return true;
    if (ct_clock_mono_ms() < r->next_connect_ms) return false;
    ct_error err = {0};
    r->pg = ct_pg_connect(r->cfg, NULL, &err);
    if (!r->pg) {
        CT_LOG_RATELIMITED(CT_LOG_WARN, "relay", 10000, "cannot connect to Postgres: %s", err.msg);
        r->next_connect_ms = ct_clock_mono_ms() + CONNECT_RETRY_MS;
        return false;
    }
    /* Prepared, but planned at each execution: a plan made while the
     * outbox was small (a fresh install) would keep scanning all of it as
     * it grows, until the next analyze. A few planning runs per round cost
     * little next to the round's rows. */
    if (ct_pg_exec(r->pg, "LISTEN outbox", &err) != 0 ||
        ct_pg_exec(r->pg, "SET plan_cache_mode = force_custom_plan", &err) != 0 ||
        prepare_statements(r->pg, &err) != 0) {
        drop_pg(r, err.msg);
        return false;
    }
    return true;
}

static bool try_lead(ct_relay *r) {
    char key[32];
    snprintf(key, sizeof key, "%" PRId64, CT_RELAY_LOCK_KEY);
    const char *p[1] = {key};
    PGresult *res = PQexecParams(r->pg, "SELECT pg_try_advisory_lock($1::bigint)", 1, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        drop_pg(r, "lock query failed");
        return false;
    }
    r->leader = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (r->leader) {
        CT_LOG_INFO("relay", "leader instance=%s: publishing the outbox and ticking", r->instance);
        r->frontier = -1;
        r->next_tick_ms = ct_clock_mono_ms();
    } else if (!r->standby_logged) {
        CT_LOG_INFO("relay", "standby instance=%s: another relay holds the lock", r->instance);
        r->standby_logged = true;
    }
    return r->leader;
}

/* Drains queued notifications; true if there was one. */
static bool drain_notifies(ct_relay *r) {
    bool any = false;
    PGnotify *n;
    while (r->pg && (n = PQnotifies(r->pg))) PQfreemem(n), any = true;
    return any;
}

/* Sleeps until a NOTIFY, a signal or timeout_ms; drains notifications.
 * Notifications that arrived during the last round's queries are already
 * in libpq's queue (the socket will not wake us for them): checked first. */
static void wait_for_work(ct_relay *r, int timeout_ms) {
    if (drain_notifies(r)) return;
    struct pollfd fds[2] = {{.fd = ct_signal_fd(), .events = POLLIN},
                            {.fd = r->pg ? PQsocket(r->pg) : -1, .events = POLLIN}};
    if (timeout_ms < 0) timeout_ms = 0;
    poll(fds, r->pg ? 2 : 1, timeout_ms);
    ct_signal_drain();
    if (r->pg) {
        if (!PQconsumeInput(r->pg)) {
            drop_pg(r, PQerrorMessage(r->pg));
            return;
        }
        drain_notifies(r);
    }
}

/* Sleeps timeout_ms unless a signal comes; notifications wait in the
 * socket for the next wait_for_work. */
static void linger(int timeout_ms) {
    struct pollfd fd = {.fd = ct_signal_fd(), .events = POLLIN};
    poll(&fd, 1, timeout_ms < 0 ? 0 : timeout_ms);
    ct_signal_drain();
}

/* ---- publishing the outbox ---------------------------------------------- */

static int ensure_publisher(ct_relay *r, ct_error *err) {
    if (r->pub) return 0;
    char client[96];
    snprintf(client, sizeof client, "concert-relay-%s", r->instance);
    r->pub = ct_publisher_new(r->cfg, client, err);
    return r->pub ? 0 : -1;
}

/* The round's statements are the outbox's (ct_outbox_relay_statements:
 * why the claim reads what it reads, and why the marks test only the id);
 * the relay decides when each runs and what goes in one transaction. */
static int prepare_statements(PGconn *pg, ct_error *err) {
    return ct_pg_prepare(pg, ct_outbox_relay_statements, CT_OUTBOX_RELAY_STMTS, err);
}

static PGresult *exec_stmt(ct_relay *r, int stmt, int nparams, const char *const *params) {
    return PQexecPrepared(r->pg, ct_outbox_relay_statements[stmt].name, nparams, params, NULL, NULL, 0);
}

/* Runs a prepared statement that returns no rows. */
static int exec_command(ct_relay *r, int stmt, int nparams, const char *const *params, const char *what,
                        ct_error *err) {
    PGresult *res = exec_stmt(r, stmt, nparams, params);
    if (ct_pg_check(r->pg, res, PGRES_COMMAND_OK, what, err) != 0) return -1;
    PQclear(res);
    return 0;
}

/* Records the batch's outcome in one transaction: n published messages,
 * npark held rows parked, and the frontier moved to next_frontier. */
static int record_outcome(ct_relay *r, int n, int npark, int64_t next_frontier, ct_error *err) {
    ct_pgarray sid = {0}, spart = {0}, soff = {0}, fid = {0}, ferr = {0}, fdelay = {0}, pid = {0};
    int nsent = 0, nfail = 0;
    for (int i = 0; i < n; i++) {
        ct_publish_msg *m = &r->msgs[i];
        if (m->out_err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            ct_pgarray_add_int(&sid, r->ids[i]), ct_pgarray_add_int(&spart, m->out_partition);
            ct_pgarray_add_int(&soff, m->out_offset);
            nsent++;
        } else {
            char e[200];
            snprintf(e, sizeof e, "%s: %s", rd_kafka_err2name(m->out_err), m->out_errstr);
            ct_pgarray_add_int(&fid, r->ids[i]), ct_pgarray_add(&ferr, e);
            ct_pgarray_add_int(&fdelay, ct_backoff_ms(r->attempts[i], r->cfg->relay_backoff_base_ms,
                                                      r->cfg->relay_backoff_max_ms, ct_backoff_jitter()));
            nfail++;
        }
    }
    for (int i = 0; i < npark; i++) ct_pgarray_add_int(&pid, r->park[i]);
    int rc = ct_pg_exec(r->pg, "BEGIN", err);
    if (rc == 0 && nsent > 0) {
        const char *p[3] = {ct_pgarray_text(&sid), ct_pgarray_text(&spart), ct_pgarray_text(&soff)};
        rc = exec_command(r, CT_OUTBOX_STMT_SENT, 3, p, "mark SENT", err);
    }
    int newly_failed = 0;
    if (rc == 0 && nfail > 0) {
        char max[16];
        snprintf(max, sizeof max, "%d", r->cfg->outbox_max_attempts);
        const char *p[4] = {ct_pgarray_text(&fid), ct_pgarray_text(&ferr), ct_pgarray_text(&fdelay), max};
        PGresult *res = exec_stmt(r, CT_OUTBOX_STMT_FAILED, 4, p);
        rc = ct_pg_check(r->pg, res, PGRES_TUPLES_OK, "record failures", err);
        if (rc == 0) newly_failed = PQntuples(res), PQclear(res);
    }
    if (rc == 0 && npark > 0) {
        const char *p[1] = {ct_pgarray_text(&pid)};
        rc = exec_command(r, CT_OUTBOX_STMT_PARK, 1, p, "park held rows", err);
    }
    if (rc == 0 && next_frontier > r->frontier) {
        char f[32];
        snprintf(f, sizeof f, "%" PRId64, next_frontier);
        const char *p[1] = {f};
        rc = exec_command(r, CT_OUTBOX_STMT_FRONTIER_SET, 1, p, "move the frontier", err);
    }
    if (rc == 0)
        rc = ct_pg_exec(r->pg, "COMMIT", err);
    else
        PQclear(PQexec(r->pg, "ROLLBACK"));
    ct_pgarray_free(&sid), ct_pgarray_free(&spart), ct_pgarray_free(&soff);
    ct_pgarray_free(&fid), ct_pgarray_free(&ferr), ct_pgarray_free(&fdelay), ct_pgarray_free(&pid);
    if (rc != 0) return -1;
    if (next_frontier > r->frontier) r->frontier = next_frontier;
    r->sent += (uint64_t)nsent;
    r->failed += (uint64_t)nfail;
    r->failed_final += (uint64_t)newly_failed;
    if (nfail > 0)
        CT_LOG_RATELIMITED(CT_LOG_WARN, "relay", 1000, "publish failed rows=%d (now FAILED: %d), retrying with backoff",
                           nfail, newly_failed);
    if (newly_failed > 0)
        CT_LOG_ERROR("relay", "outbox rows FAILED after %d attempts count=%d", r->cfg->outbox_max_attempts,
                     newly_failed);
    return 0;
}

static int load_frontier(ct_relay *r, ct_error *err) {
    PGresult *res = exec_stmt(r, CT_OUTBOX_STMT_FRONTIER_GET, 0, NULL);
    if (ct_pg_check(r->pg, res, PGRES_TUPLES_OK, "read the outbox frontier", err) != 0) return -1;
    if (PQntuples(res) != 1) {
        PQclear(res);
        CT_ERR(err, CT_ERR_FATAL, "outbox_frontier must hold one row (migration 0006)");
        return -1;
    }
    r->frontier = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* One round: claim due rows, publish, record. Returns rows claimed, or -1. */
static int publish_round(ct_relay *r, ct_error *err) {
    if (r->frontier < 0 && load_frontier(r, err) != 0) return -1;
    char limit[16], frontier[32];
    snprintf(limit, sizeof limit, "%d", r->cfg->relay_batch_max);
    snprintf(frontier, sizeof frontier, "%" PRId64, r->frontier);
    const char *p[2] = {limit, frontier};
    int64_t t0 = ct_clock_mono_ms();
    PGresult *res = exec_stmt(r, CT_OUTBOX_STMT_CLAIM, 2, p);
    int64_t t1 = ct_clock_mono_ms();
    r->claim_ms += t1 - t0;
    if (ct_pg_check(r->pg, res, PGRES_TUPLES_OK, "read the outbox", err) != 0) return -1;
    int rows = PQntuples(res), n = 0, npark = 0;
    if (rows == 0) {
        PQclear(res);
        return 0;
    }
    int64_t next_frontier = r->frontier;
    for (int i = 0; i < rows; i++) {
        int64_t id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        bool fresh = PQgetvalue(res, i, 7)[0] == 't', held = PQgetvalue(res, i, 8)[0] == 't';
        if (fresh && id >= next_frontier) next_frontier = id + 1;
        if (held) {
            r->park[npark++] = id;
            continue;
        }
        ct_publish_msg *m = &r->msgs[n];
        memset(m, 0, sizeof *m);
        r->ids[n] = id;
        r->attempts[n] = atoi(PQgetvalue(res, i, 6));
        m->id = PQgetvalue(res, i, 1);
        m->topic = PQgetvalue(res, i, 2);
        m->partition = RD_KAFKA_PARTITION_UA;
        m->key = PQgetvalue(res, i, 3);
        m->key_len = (size_t)PQgetlength(res, i, 3);
        m->type = PQgetvalue(res, i, 4);
        m->value = PQgetvalue(res, i, 5);
        m->value_len = (size_t)PQgetlength(res, i, 5);
        n++;
    }
    for (int i = 0; i < n; i++) ct_trace_hop(r->msgs[i].id, strlen(r->msgs[i].id), "relay.claim");
    ct_error perr = {0};
    int prc = n > 0 ? ct_publisher_send(r->pub, r->msgs, (size_t)n, &perr) : 0;
    int64_t t2 = ct_clock_mono_ms();
    for (int i = 0; i < n; i++)
        if (r->msgs[i].out_err == RD_KAFKA_RESP_ERR_NO_ERROR)
            ct_trace_hop(r->msgs[i].id, strlen(r->msgs[i].id), "relay.publish");
    int rc = record_outcome(r, n, npark, next_frontier, err);
    r->publish_ms += t2 - t1, r->record_ms += ct_clock_mono_ms() - t2;
    if (n > 0) ct_histogram_observe_us(&r->publish_seconds, (t2 - t1) * 1000);
    bool stale_metadata = false;
    for (int i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = r->msgs[i].out_err;
        stale_metadata |= e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC || e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                          e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
    }
    PQclear(res);
    /* librdkafka remembers a missing topic until its next metadata refresh
     * (minutes): a fresh producer sees a topic created meanwhile, so a
     * re-driven row does not fail again on old news. */
    if (prc != 0) {
        /* Every message has its report, or its refusal in out_err: the
         * outcome recorded above is right either way. */
        if (perr.klass == CT_ERR_FATAL)
            CT_LOG_ERROR("relay", "producer failed: %s %s", perr.msg, perr.detail);
        else
            CT_LOG_RATELIMITED(CT_LOG_WARN, "relay", 10000, "publish refused: %s", perr.msg);
    }
    /* A fatal producer is replaced; so is one that saw a missing topic,
     * since librdkafka remembers that until its next metadata refresh
     * (minutes) and a fresh producer sees a topic created meanwhile. */
    if (stale_metadata || (prc != 0 && perr.klass == CT_ERR_FATAL)) ct_publisher_destroy(r->pub), r->pub = NULL;
    return rc == 0 ? rows : -1;
}

/* ---- retention -------------------------------------------------------------- */

static void prune(ct_relay *r) {
    int64_t start = ct_clock_mono_ms();
    if (r->cfg->outbox_retention_s == 0 || start < r->next_prune_ms) return;
    do {
        int64_t deleted = 0, next = 0;
        ct_error err = {0};
        if (ct_outbox_prune_slice(r->pg, r->prune_from, PRUNE_WINDOW, r->cfg->outbox_retention_s, &deleted, &next,
                                  &err) != 0) {
            CT_LOG_RATELIMITED(CT_LOG_WARN, "relay", 60000, "retention: %s %s", err.msg, err.detail);
            next = 0;
        }
        r->pruned += (uint64_t)deleted, r->pass_pruned += deleted;
        r->prune_from = next;
    } while (r->prune_from != 0 && ct_clock_mono_ms() - start < PRUNE_BUDGET_MS);
    if (r->prune_from != 0) return;
    if (r->pass_pruned > 0)
        CT_LOG_INFO("relay", "retention: deleted %" PRId64 " SENT rows sent more than %d s ago", r->pass_pruned,
                    r->cfg->outbox_retention_s);
    r->pass_pruned = 0;
    r->next_prune_ms = ct_clock_mono_ms() + PRUNE_EVERY_MS;
}

/* ---- the ticker ----------------------------------------------------------- */

static void tick(ct_relay *r) {
    int parts = 0;
    ct_error err = {0};
    if (ct_publisher_partitions(r->pub, CT_TOPIC_CONCERT_COMMANDS, &parts, &err) != 0 || parts <= 0) {
        CT_LOG_RATELIMITED(CT_LOG_WARN, "tick", 10000, "no partition count for %s: %s", CT_TOPIC_CONCERT_COMMANDS,
                           err.msg);
        return;
    }
    if (parts > r->tick_cap) {
        free(r->tick_values), free(r->tick_ids);
        r->tick_values = calloc((size_t)parts, sizeof *r->tick_values);
        r->tick_ids = calloc((size_t)parts, sizeof *r->tick_ids);
        if (!r->tick_values || !r->tick_ids || parts > r->cfg->relay_batch_max) {
            r->tick_cap = 0;
            CT_LOG_ERROR("tick", "cannot prepare %d ticks", parts);
            return;
        }
        r->tick_cap = parts;
    }
    /* Logical time never goes back, even if the wall clock does. */
    int64_t ts = ct_clock_wall_ms();
    if (ts < r->last_tick_ts) ts = r->last_tick_ts;
    r->last_tick_ts = ts;
    for (int p = 0; p < parts; p++) {
        ct_publish_msg *m = &r->msgs[p];
        memset(m, 0, sizeof *m);
        /* The id is the same whichever relay sends it: two ticks of one
         * millisecond on one partition are one tick. */
        snprintf(r->tick_ids[p], sizeof r->tick_ids[p], "tick:%d:%" PRId64, p, ts);
        int len = snprintf(r->tick_values[p], TICK_BYTES,
                           "{\"id\":\"%s\",\"type\":\"Tick\",\"v\":1,\"ts\":%" PRId64
                           ",\"command_id\":\"\",\"key\":\"\",\"data\":{}}",
                           r->tick_ids[p], ts);
        m->topic = CT_TOPIC_CONCERT_COMMANDS;
        m->partition = p;
        m->value = r->tick_values[p];
        m->value_len = (size_t)len;
        m->id = r->tick_ids[p];
        m->type = "Tick";
    }
    if (ct_publisher_send(r->pub, r->msgs, (size_t)parts, &err) != 0) {
        CT_LOG_RATELIMITED(CT_LOG_WARN, "tick", 10000, "ticks not sent: %s", err.msg);
        if (err.klass == CT_ERR_FATAL) ct_publisher_destroy(r->pub), r->pub = NULL;
        return;
    }
    int ok = 0;
    for (int p = 0; p < parts; p++) ok += r->msgs[p].out_err == RD_KAFKA_RESP_ERR_NO_ERROR;
    r->ticks += (uint64_t)ok;
    if (ok < parts) CT_LOG_RATELIMITED(CT_LOG_WARN, "tick", 10000, "ticks delivered to %d of %d partitions", ok, parts);
}

/* ---- lifecycle ------------------------------------------------------------ */

ct_relay *ct_relay_new(const ct_config *cfg, const char *instance, ct_error *err) {
    ct_relay *r = calloc(1, sizeof *r);
    if (!r) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return NULL;
    }
    r->cfg = cfg;
    snprintf(r->instance, sizeof r->instance, "%s", instance);
    size_t n = (size_t)cfg->relay_batch_max;
    r->msgs = calloc(n, sizeof *r->msgs);
    r->ids = calloc(n, sizeof *r->ids);
    r->attempts = calloc(n, sizeof *r->attempts);
    r->park = calloc(n, sizeof *r->park);
    r->frontier = -1;
    if (!r->msgs || !r->ids || !r->attempts || !r->park) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        ct_relay_destroy(r);
        return NULL;
    }
    return r;
}

/* relay-<instance>.prom (runtime/ct_metrics): the leader's counters, its
 * publish latency and the outbox's backlog; a standby says only that. */
static void publish_metrics(ct_relay *r) {
    r->metrics_ms = ct_clock_mono_ms();
    char buf[8192], labels[96], name[160];
    snprintf(labels, sizeof labels, "instance=\"%s\"", r->instance);
    ct_metrics_text t = {.buf = buf, .cap = sizeof buf};
    ct_metrics_one(&t, "concert_relay_leader", "gauge", "1 while this relay holds the leader lock.", labels,
                   (double)(r->leader ? 1 : 0));
    ct_metrics_one(&t, "concert_relay_sent_total", "counter", "Outbox rows published and recorded SENT.", labels,
                   (double)(r->sent));
    ct_metrics_one(&t, "concert_relay_failed_attempts_total", "counter", "Publish attempts that failed.", labels,
                   (double)(r->failed));
    ct_metrics_family(&t, "concert_relay_publish_seconds", "histogram",
                      "A round's produce to Kafka, from send to the last acknowledgement.");
    ct_metrics_histogram(&t, "concert_relay_publish_seconds", labels, &r->publish_seconds);
    ct_outbox_backlog b;
    ct_error e = {0};
    if (r->leader && r->pg && ct_outbox_backlog_read(r->pg, r->frontier, &b, &e) == 0) {
        ct_metrics_family(&t, "concert_outbox_rows", "gauge", "Outbox rows not sent: to publish, or FAILED.");
        ct_metrics_printf(&t, "concert_outbox_rows{status=\"pending\"} %" PRId64 "\n", b.pending);
        ct_metrics_printf(&t, "concert_outbox_rows{status=\"failed\"} %" PRId64 "\n", b.failed);
        ct_metrics_family(&t, "concert_outbox_oldest_pending_seconds", "gauge",
                          "Age of the oldest row still to publish (0: none): the relay's lag.");
        ct_metrics_printf(&t, "concert_outbox_oldest_pending_seconds %.3f\n", b.oldest_pending_s);
    }
    snprintf(name, sizeof name, "relay-%s", r->instance);
    if (ct_metrics_publish(r->cfg, name, &t, &e) != 0)
        CT_LOG_RATELIMITED(CT_LOG_WARN, "metrics", 60000, "cannot write the metrics file: %s", e.msg);
}

int ct_relay_run(ct_relay *r, ct_error *err) {
    CT_LOG_INFO("relay", "running instance=%s batch_max=%d linger_ms=%d tick_ms=%d", r->instance,
                r->cfg->relay_batch_max, r->cfg->relay_linger_ms, r->cfg->tick_ms);
    r->last_stats_ms = ct_clock_mono_ms();
    while (!ct_signal_stop_requested()) {
        int64_t now = ct_clock_mono_ms();
        if (now - r->last_stats_ms >= STATS_EVERY_MS) {
            r->last_stats_ms = now;
            if (r->leader)
                CT_LOG_INFO("relay",
                            "progress sent=%" PRIu64 " failed_attempts=%" PRIu64 " failed_rows=%" PRIu64
                            " ticks=%" PRIu64 " rounds=%" PRIu64 " ms_claim=%" PRId64 " ms_publish=%" PRId64
                            " ms_record=%" PRId64 " pruned=%" PRIu64,
                            r->sent, r->failed, r->failed_final, r->ticks, r->rounds, r->claim_ms, r->publish_ms,
                            r->record_ms, r->pruned);
            r->claim_ms = r->publish_ms = r->record_ms = 0;
        }
        if (now - r->metrics_ms >= 5000) publish_metrics(r);
        if (!ensure_pg(r)) {
            wait_for_work(r, CONNECT_RETRY_MS);
            continue;
        }
        if (!r->leader && !try_lead(r)) {
            if (r->pg) wait_for_work(r, r->cfg->relay_poll_ms);
            continue;
        }
        if (ensure_publisher(r, err) != 0) return -1;
        if (ct_clock_mono_ms() >= r->next_tick_ms) {
            tick(r);
            r->next_tick_ms += r->cfg->tick_ms;
            if (r->next_tick_ms < ct_clock_mono_ms()) r->next_tick_ms = ct_clock_mono_ms() + r->cfg->tick_ms;
            if (!r->pub) continue;
        }
        now = ct_clock_mono_ms();
        if (now < r->linger_until_ms) {
            int64_t w = r->linger_until_ms - now, t = r->next_tick_ms - now;
            linger((int)(w < t ? w : t));
            continue;
        }
        ct_error rerr = {0};
        int n = publish_round(r, &rerr);
        if (n < 0) {
            if (PQstatus(r->pg) != CONNECTION_OK)
                drop_pg(r, rerr.msg);
            else
                CT_LOG_RATELIMITED(CT_LOG_WARN, "relay", 1000, "round failed: %s %s", rerr.msg, rerr.detail);
            wait_for_work(r, 200);
            continue;
        }
        r->rounds++;
        prune(r);
        if (n >= r->cfg->relay_batch_max) { /* more is waiting: only drain notifications */
            wait_for_work(r, 0);
            continue;
        }
        /* Under load rows keep coming: letting them gather for a moment
         * makes the next produce requests larger and fewer. A small round
         * means they trickle in, and a wait would only delay each one. */
        if (n > 0) {
            r->avg_round8 += n - r->avg_round8 / 8;
            if (r->avg_round8 >= 8 * LINGER_MIN_ROWS) r->linger_until_ms = ct_clock_mono_ms() + r->cfg->relay_linger_ms;
        }
        int64_t until_tick = r->next_tick_ms - ct_clock_mono_ms();
        int wait_ms = (int)(until_tick < r->cfg->relay_poll_ms ? until_tick : r->cfg->relay_poll_ms);
        wait_for_work(r, r->prune_from != 0 ? 0 : wait_ms); /* an idle relay goes on with a pass at once */
    }
    CT_LOG_INFO("relay", "stopping sent=%" PRIu64 " failed_attempts=%" PRIu64 " ticks=%" PRIu64, r->sent, r->failed,
                r->ticks);
    return 0;
}

void ct_relay_destroy(ct_relay *r) {
    if (!r) return;
    ct_publisher_destroy(r->pub);
    if (r->pg) PQfinish(r->pg);
    free(r->msgs);
    free(r->ids);
    free(r->attempts);
    free(r->park);
    free(r->tick_values);
    free(r->tick_ids);
    free(r);
}
