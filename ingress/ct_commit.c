/* ct_commit: see ct_commit.h. */
#include "ct_commit.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ct_log.h"
#include "ct_outbox.h"
#include "ct_pg.h"
#include "ct_pgarray.h"

#define WORKERS_MAX 64
#define TXN_ATTEMPTS 3
struct ct_commit {
    const ct_config *cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ct_commit_item *head, *tail;
    int64_t queued;
    bool stopping;
    pthread_t workers[WORKERS_MAX];
    int nworkers;
    int batch_max;
    _Atomic uint64_t batches, rows, replays, failures, write_us;
};

void ct_commit_set_json(ct_commit_item *it, unsigned status, json_t *j) {
    free(it->body);
    it->status = status;
    it->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!it->body) ct_commit_set_error(it, 500, "INTERNAL", "out of memory");
}

void ct_commit_set_error(ct_commit_item *it, unsigned status, const char *code, const char *fmt, ...) {
    ct_api_error e = {.status = status, .code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    free(it->body);
    it->status = status;
    it->body = ct_api_error_json(&e);
}

/* ---- one batch ---------------------------------------------------------- */

typedef enum item_state { OPEN, RESOLVED, DEFERRED } item_state;

/* Prepared on each writer connection when it opens, beside the outbox's
 * write statements (ct_outbox_write_statements). */
static const ct_pg_statement replays_stmt = {
    "ct_commit_replays", "SELECT key, fingerprint, response FROM idempotency_keys WHERE key = ANY($1::text[])"};

/* Items whose Idempotency-Key is recorded already are resolved here: the
 * first response again, or 422 when the key came with another request.
 * Read outside the writing transaction: a key committed after this read
 * makes the key insert fail with unique_violation, and the batch runs
 * again. */
static int resolve_replays(ct_commit *c, PGconn *pg, ct_commit_item **items, item_state *st, int n, ct_error *err) {
    ct_pgarray keys = {0};
    int nkeys = 0;
    for (int i = 0; i < n; i++)
        if (st[i] == OPEN && items[i]->idem_key) ct_pgarray_add(&keys, items[i]->idem_key), nkeys++;
    if (nkeys == 0) return 0;
    const char *p[1] = {ct_pgarray_text(&keys)};
    PGresult *r = PQexecPrepared(pg, replays_stmt.name, 1, p, NULL, NULL, 0);
    ct_pgarray_free(&keys);
    if (ct_pg_check(pg, r, PGRES_TUPLES_OK, "idempotency lookup", err) != 0) return -1;
    for (int row = 0; row < PQntuples(r); row++) {
        for (int i = 0; i < n; i++) {
            ct_commit_item *it = items[i];
            if (st[i] != OPEN || !it->idem_key || strcmp(it->idem_key, PQgetvalue(r, row, 0)) != 0) continue;
            st[i] = RESOLVED;
            atomic_fetch_add(&c->replays, 1);
            if (strcmp(it->fingerprint, PQgetvalue(r, row, 1)) != 0) {
                ct_commit_set_error(it, 422, "IDEMPOTENCY_KEY_REUSED",
                                    "this Idempotency-Key was used for a different request");
            } else {
                free(it->body);
                it->status = 202;
                it->body = strdup(PQgetvalue(r, row, 2));
            }
        }
    }
    PQclear(r);
    /* The same new key twice in one batch: the first goes now, the others
     * next round, when they find it recorded. */
    for (int i = 0; i < n; i++) {
        if (st[i] != OPEN || !items[i]->idem_key) continue;
        for (int j = 0; j < i; j++)
            if (st[j] == OPEN && items[j]->idem_key && strcmp(items[j]->idem_key, items[i]->idem_key) == 0) {
                st[i] = DEFERRED;
                break;
            }
    }
    return 0;
}

/* The outbox writer lock, the outbox rows and the key rows go to the server
 * in one pipeline, with one Sync: one round trip, and the statements up to
 * the Sync run as one implicit transaction that commits at the Sync (or
 * rolls back entirely at the first error). The lock is held only while the
 * server executes and commits, never across a network round trip, which is
 * what bounds the ingress's throughput: outbox writers take turns.
 *
 * Why the lock: ids come from a sequence, and if two transactions could
 * commit in the opposite order of their ids, the relay could publish a
 * key's later row before an earlier one became visible. Held to the
 * commit, it makes commit order id order. */
typedef struct pipeline {
    PGconn *pg;
    int sent;          /* statements sent */
    bool send_failed;  /* a send or the sync failed: the connection is gone */
    int rows;          /* outbox rows in it */
    PGresult *written; /* the outbox statement's RETURNING: the rows written */
} pipeline;

static void pipe_clear(pipeline *pl) {
    PQclear(pl->written);
    pl->written = NULL;
}

static void pipe_send(pipeline *pl, int stmt, int nparams, const char *const *params) {
    if (pl->send_failed) return;
    if (PQsendQueryPrepared(pl->pg, ct_outbox_write_statements[stmt].name, nparams, params, NULL, NULL, 0))
        pl->sent++;
    else
        pl->send_failed = true;
}

/* Sends one transaction over the OPEN items: the lock, the outbox rows,
 * the key rows, then the Sync that commits them. The connection stays in
 * pipeline mode, so further transactions can follow before this one's
 * results are read. pl->rows is 0 when every item was resolved already;
 * -1: pipeline mode refused (nothing sent). */
static int pipe_send_txn(pipeline *pl, PGconn *pg, ct_commit_item **items, const item_state *st, int n, ct_error *err) {
    *pl = (pipeline){.pg = pg};
    ct_pgarray ids = {0}, topics = {0}, pkeys = {0}, types = {0}, payloads = {0}, ikeys = {0}, icmds = {0}, ifps = {0},
               iresp = {0};
    int irows = 0;
    for (int i = 0; i < n; i++) {
        if (st[i] != OPEN) continue;
        const ct_api_command *cmd = items[i]->cmd;
        ct_pgarray_add(&ids, cmd->command_id), ct_pgarray_add(&topics, cmd->topic), ct_pgarray_add(&pkeys, cmd->key);
        ct_pgarray_add(&types, cmd->type), ct_pgarray_add(&payloads, cmd->envelope);
        pl->rows++;
        if (items[i]->idem_key) {
            ct_pgarray_add(&ikeys, items[i]->idem_key), ct_pgarray_add(&icmds, cmd->command_id);
            ct_pgarray_add(&ifps, items[i]->fingerprint), ct_pgarray_add(&iresp, cmd->response);
            irows++;
        }
    }
    int rc = 0;
    if (pl->rows > 0) {
        if (PQpipelineStatus(pg) == PQ_PIPELINE_OFF && !PQenterPipelineMode(pg)) {
            CT_ERR(err, CT_ERR_RETRIABLE, "cannot enter pipeline mode");
            ct_error_detail(err, "%s", PQerrorMessage(pg));
            rc = -1;
        } else {
            const char *op[5] = {ct_pgarray_text(&ids), ct_pgarray_text(&topics), ct_pgarray_text(&pkeys),
                                 ct_pgarray_text(&types), ct_pgarray_text(&payloads)};
            const char *ip[4] = {ct_pgarray_text(&ikeys), ct_pgarray_text(&icmds), ct_pgarray_text(&ifps),
                                 ct_pgarray_text(&iresp)};
            pipe_send(pl, CT_OUTBOX_WRITE_LOCK, 0, NULL);
            pipe_send(pl, CT_OUTBOX_WRITE_ROWS, 5, op);
            if (irows > 0) pipe_send(pl, CT_OUTBOX_WRITE_KEYS, 4, ip);
            if (!pl->send_failed && !PQpipelineSync(pg)) pl->send_failed = true;
        }
    }
    ct_pgarray_free(&ids), ct_pgarray_free(&topics), ct_pgarray_free(&pkeys), ct_pgarray_free(&types);
    ct_pgarray_free(&payloads), ct_pgarray_free(&ikeys), ct_pgarray_free(&icmds), ct_pgarray_free(&ifps);
    ct_pgarray_free(&iresp);
    return rc;
}

/* Reads the results of the oldest transaction sent. 0: committed; 1: a key
 * conflict (rolled back); -1: error in err, nothing committed unless
 * *unknown. */
static int pipe_collect(pipeline *pl, bool *unknown, ct_error *err) {
    PGconn *pg = pl->pg;
    int rc = 0;
    bool failed_stmt = false;
    *unknown = false;
    for (int q = 0; q < pl->sent && PQstatus(pg) == CONNECTION_OK; q++) {
        PGresult *r = PQgetResult(pg);
        if (!r) break;
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_FATAL_ERROR && !failed_stmt) {
            failed_stmt = true;
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            if (state && strcmp(state, "23505") == 0)
                rc = 1, PQclear(r);
            else
                ct_pg_result_error(pg, r, "outbox write", err), rc = -1; /* clears r */
        } else if (q == 1 && s == PGRES_TUPLES_OK && !pl->written) {     /* 0: the lock, 1: the outbox rows */
            pl->written = r;
        } else {
            PQclear(r);
        }
        while ((r = PQgetResult(pg)) != NULL) PQclear(r); /* the NULL ending this statement's results */
    }
    bool synced = false;
    if (!pl->send_failed) {
        PGresult *r;
        while (PQstatus(pg) == CONNECTION_OK && (r = PQgetResult(pg)) != NULL) {
            ExecStatusType s = PQresultStatus(r);
            if (s == PGRES_PIPELINE_SYNC)
                synced = true;
            else if (s == PGRES_FATAL_ERROR && !failed_stmt) { /* the commit itself failed */
                failed_stmt = true;
                ct_pg_result_error(pg, r, "outbox commit", err), rc = -1;
                continue;
            }
            PQclear(r);
            if (synced) break;
        }
    }
    if (!synced && !failed_stmt) {
        /* The Sync (the commit) may or may not have reached the server. */
        *unknown = !pl->send_failed;
        CT_ERR(err, CT_ERR_RETRIABLE, "connection lost during the outbox write");
        ct_error_detail(err, "%s", PQerrorMessage(pg));
        return -1;
    }
    return rc;
}

/* Back to ordinary mode once no results are outstanding. */
static void pipe_leave(PGconn *pg) {
    if (pg && PQstatus(pg) == CONNECTION_OK && PQpipelineStatus(pg) != PQ_PIPELINE_OFF) PQexitPipelineMode(pg);
}

/* Whether the transaction wrote cmd's row (all did unless a hold was
 * refused). */
static bool was_written(const pipeline *pl, const ct_api_command *cmd) {
    if (!pl->written || PQntuples(pl->written) >= pl->rows) return true;
    for (int r = 0; r < PQntuples(pl->written); r++)
        if (strcmp(PQgetvalue(pl->written, r, 0), cmd->command_id) == 0) return true;
    return false;
}

/* The items of a committed transaction are answered: 202, or 402 for a
 * hold the balance does not cover. */
static void resolve_committed(ct_commit *c, ct_commit_item **items, item_state *st, int n, pipeline *pl) {
    int rows = 0;
    for (int i = 0; i < n; i++) {
        if (st[i] != OPEN) continue;
        st[i] = RESOLVED;
        if (!was_written(pl, items[i]->cmd)) {
            ct_commit_set_error(items[i], 402, "INSUFFICIENT_BALANCE",
                                "the balance does not cover this seat's price: charge it before holding");
            continue;
        }
        rows++;
        free(items[i]->body);
        items[i]->status = 202;
        items[i]->body = strdup(items[i]->cmd->response);
    }
    pipe_clear(pl);
    if (rows > 0) atomic_fetch_add(&c->batches, 1), atomic_fetch_add(&c->rows, (uint64_t)rows);
}

/* One transaction over the OPEN items, waited for. 0: committed (or every
 * item resolved by replays); 1: an Idempotency-Key was taken concurrently,
 * run again; -1: error in err (nothing committed, or the commit's outcome
 * is unknown when *unknown). */
static int run_txn(ct_commit *c, PGconn *pg, ct_commit_item **items, item_state *st, int n, bool *unknown,
                   ct_error *err) {
    *unknown = false;
    if (resolve_replays(c, pg, items, st, n, err) != 0) return -1;
    pipeline pl;
    if (pipe_send_txn(&pl, pg, items, st, n, err) != 0) return -1;
    int rc = pl.rows > 0 ? pipe_collect(&pl, unknown, err) : 0;
    pipe_leave(pg);
    if (rc != 0) {
        pipe_clear(&pl);
        return rc;
    }
    resolve_committed(c, items, st, n, &pl);
    return 0;
}

/* The items still unresolved get their 503: the outcome is unknown when
 * the connection broke after the commit was sent, else nothing was stored. */
static void fail_items(ct_commit *c, ct_commit_item **items, item_state *st, int n, bool unknown, const ct_error *err) {
    CT_LOG_RATELIMITED(CT_LOG_WARN, "commit", 1000, "batch not stored rows=%d: %s %s", n, err->msg, err->detail);
    for (int i = 0; i < n; i++) {
        if (st[i] == RESOLVED) continue;
        atomic_fetch_add(&c->failures, 1);
        if (unknown)
            ct_commit_set_error(items[i], 503, "OUTCOME_UNKNOWN",
                                "the database connection broke during commit; retry with the same Idempotency-Key");
        else
            ct_commit_set_error(items[i], 503, "STORE_UNAVAILABLE", "the command could not be stored; retry");
        st[i] = RESOLVED;
    }
}

static void write_batch(ct_commit *c, PGconn **pg, ct_commit_item **items, int n) {
    item_state st[n];
    for (int i = 0; i < n; i++) st[i] = OPEN;
    int attempts = 0;
    for (;;) {
        bool open = false, unknown = false;
        for (int i = 0; i < n; i++) open |= st[i] == OPEN;
        if (!open) break;
        ct_error err = {0};
        int rc = *pg ? run_txn(c, *pg, items, st, n, &unknown, &err) : -1;
        if (!*pg) CT_ERR(&err, CT_ERR_RETRIABLE, "no database connection");
        if (rc == 0) {
            for (int i = 0; i < n; i++) st[i] = st[i] == DEFERRED ? OPEN : st[i];
            continue;
        }
        if (rc == 1 && ++attempts < TXN_ATTEMPTS) continue;
        fail_items(c, items, st, n, unknown, &err);
        if (*pg && PQstatus(*pg) != CONNECTION_OK) PQfinish(*pg), *pg = NULL;
    }
}

/* ---- workers ------------------------------------------------------------ */

/* Writes without an Idempotency-Key need no look-up before their
 * transaction, so a writer sends the next batch's transaction while the
 * previous one is still executing or flushing: the server goes from one
 * commit to the next without waiting for the round trip, the results'
 * reading and the answers in between. One connection runs its transactions
 * in the order sent, so commit order stays id order. */
#define PIPELINE_DEPTH 2

typedef struct flight {
    ct_commit_item **items;
    int n;
    pipeline pl;
} flight;

/* Reads the oldest flight's outcome and answers its items. A conflict
 * there can only be a command id already taken (random UUIDs: in practice
 * never): the client retries. */
static void land_flight(ct_commit *c, flight *f) {
    item_state st[f->n];
    for (int i = 0; i < f->n; i++) st[i] = OPEN;
    bool unknown = false;
    ct_error err = {0};
    int rc = pipe_collect(&f->pl, &unknown, &err);
    if (rc == 0)
        resolve_committed(c, f->items, st, f->n, &f->pl);
    else
        pipe_clear(&f->pl), fail_items(c, f->items, st, f->n, unknown, &err);
    for (int i = 0; i < f->n; i++) f->items[i]->done(f->items[i]);
}

/* The transactions in the air, oldest first. */
typedef struct flights {
    flight f[PIPELINE_DEPTH];
    int first, n;
    int64_t busy_since; /* when the first of those in the air was sent */
} flights;

/* Lands the oldest flight; the writer's busy time counts until the last
 * one in the air has landed. */
static void land_oldest(ct_commit *c, flights *fl) {
    land_flight(c, &fl->f[fl->first]);
    fl->first = (fl->first + 1) % PIPELINE_DEPTH, fl->n--;
    if (fl->n == 0) atomic_fetch_add(&c->write_us, (uint64_t)(ct_clock_mono_us() - fl->busy_since));
}

/* Takes the next round's items out of the queue (c->mu held): up to max
 * in order, or, when the first has a query_batch, it and the queued items
 * with the same one, up to CT_COMMIT_QUERY_BATCH_MAX, the others keeping
 * their order. */
static int take_locked(ct_commit *c, ct_commit_item **batch, int max) {
    int n = 0;
    if (c->head && c->head->query_batch) {
        void (*kind)(PGconn *, ct_commit_item *const *, int) = c->head->query_batch;
        ct_commit_item **pp = &c->head, *last = NULL;
        /* The scan is bounded too: the lock is the HTTP threads' as well. */
        for (int seen = 0; *pp && n < CT_COMMIT_QUERY_BATCH_MAX && seen < 4 * CT_COMMIT_QUERY_BATCH_MAX; seen++) {
            ct_commit_item *it = *pp;
            if (it->query_batch == kind) {
                *pp = it->next;
                batch[n++] = it;
            } else {
                last = it;
                pp = &it->next;
            }
        }
        if (!*pp) c->tail = last; /* the last one kept (NULL: none) */
    } else {
        while (c->head && n < max) {
            batch[n++] = c->head;
            c->head = c->head->next;
        }
        if (!c->head) c->tail = NULL;
    }
    c->queued -= n;
    return n;
}

/* Runs queries (items without a command) on pg, or answers them 503
 * without one. */
static void run_query_batch(PGconn *pg, ct_commit_item *const *items, int n) {
    if (!pg) {
        for (int i = 0; i < n; i++)
            ct_commit_set_error(items[i], 503, "STORE_UNAVAILABLE", "the database is not reachable");
        return;
    }
    if (items[0]->query_batch)
        items[0]->query_batch(pg, items, n);
    else
        items[0]->query(pg, items[0]);
}

static void *worker(void *arg) {
    ct_commit *c = arg;
    int max = c->batch_max;
    ct_commit_item **batch =
        calloc((size_t)(max > CT_COMMIT_QUERY_BATCH_MAX ? max : CT_COMMIT_QUERY_BATCH_MAX), sizeof *batch);
    flights fl = {0};
    bool oom = !batch;
    for (int i = 0; i < PIPELINE_DEPTH; i++) oom |= !(fl.f[i].items = calloc((size_t)max, sizeof *batch));
    PGconn *pg = NULL;
    int64_t next_connect = 0;
    while (!oom) {
        pthread_mutex_lock(&c->mu);
        while (!c->head && !c->stopping && fl.n == 0) pthread_cond_wait(&c->cv, &c->mu);
        int n = 0;
        if (fl.n < PIPELINE_DEPTH) n = take_locked(c, batch, max);
        bool stopping = c->stopping;
        pthread_mutex_unlock(&c->mu);

        if (n == 0) {
            if (fl.n == 0) break; /* stopping, and nothing is left */
            land_oldest(c, &fl);
            if (fl.n == 0 && pg && PQstatus(pg) != CONNECTION_OK) PQfinish(pg), pg = NULL;
            continue;
        }
        if (!pg && ct_clock_mono_ms() >= next_connect && !stopping) {
            ct_error err = {0};
            pg = ct_pg_connect(c->cfg, NULL, &err);
            if (pg && (ct_pg_prepare(pg, ct_outbox_write_statements, CT_OUTBOX_WRITE_STMTS, &err) != 0 ||
                       ct_pg_prepare(pg, &replays_stmt, 1, &err) != 0))
                PQfinish(pg), pg = NULL;
            if (!pg) {
                next_connect = ct_clock_mono_ms() + 500;
                CT_LOG_RATELIMITED(CT_LOG_WARN, "commit", 5000, "cannot connect to Postgres: %s", err.msg);
            }
        }
        bool pipelined = pg && PQstatus(pg) == CONNECTION_OK;
        for (int i = 0; i < n && pipelined; i++) pipelined = batch[i]->cmd && !batch[i]->idem_key;
        if (pipelined) {
            flight *f = &fl.f[(fl.first + fl.n) % PIPELINE_DEPTH];
            item_state st[n];
            for (int i = 0; i < n; i++) st[i] = OPEN;
            memcpy(f->items, batch, (size_t)n * sizeof *batch);
            f->n = n;
            ct_error err = {0};
            if (fl.n == 0) fl.busy_since = ct_clock_mono_us();
            if (pipe_send_txn(&f->pl, pg, f->items, st, n, &err) == 0) {
                fl.n++;
                continue;
            }
        }
        /* The waiting way: everything sent before is read first. */
        while (fl.n > 0) land_oldest(c, &fl);
        pipe_leave(pg);
        if (pg && PQstatus(pg) != CONNECTION_OK) PQfinish(pg), pg = NULL;
        ct_commit_item *writes[n];
        int nw = 0;
        for (int i = 0; i < n; i++)
            if (batch[i]->cmd) writes[nw++] = batch[i];
        if (nw > 0) {
            int64_t t0 = ct_clock_mono_us();
            write_batch(c, &pg, writes, nw);
            atomic_fetch_add(&c->write_us, (uint64_t)(ct_clock_mono_us() - t0));
        }
        if (batch[0]->query_batch) { /* one set: take_locked took only items of its kind */
            run_query_batch(pg, batch, n);
        } else {
            for (int i = 0; i < n; i++) {
                if (batch[i]->cmd) continue;
                run_query_batch(pg, &batch[i], 1);
                if (pg && PQstatus(pg) != CONNECTION_OK) PQfinish(pg), pg = NULL;
            }
        }
        if (pg && PQstatus(pg) != CONNECTION_OK) PQfinish(pg), pg = NULL;
        for (int i = 0; i < n; i++) batch[i]->done(batch[i]);
    }
    if (oom) CT_LOG_ERROR("commit", "writer cannot start: out of memory");
    if (pg) PQfinish(pg);
    for (int i = 0; i < PIPELINE_DEPTH; i++) free(fl.f[i].items);
    free(batch);
    return NULL;
}

ct_commit *ct_commit_start(const ct_config *cfg, ct_error *err) {
    return ct_commit_start_pool(cfg, cfg->ingress_pg_conns, cfg->ingress_batch_max, err);
}

ct_commit *ct_commit_start_pool(const ct_config *cfg, int workers, int batch_max, ct_error *err) {
    ct_commit *c = calloc(1, sizeof *c);
    if (!c) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return NULL;
    }
    c->cfg = cfg;
    c->batch_max = batch_max > 0 ? batch_max : 1;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    int want = workers < WORKERS_MAX ? workers : WORKERS_MAX;
    for (int i = 0; i < want; i++) {
        if (pthread_create(&c->workers[i], NULL, worker, c) != 0) {
            CT_ERR(err, CT_ERR_FATAL, "cannot start commit worker %d", i);
            ct_commit_destroy(c);
            return NULL;
        }
        c->nworkers++;
    }
    return c;
}

int ct_commit_submit(ct_commit *c, ct_commit_item *it) {
    it->next = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->stopping || c->queued >= c->cfg->ingress_queue_max) {
        pthread_mutex_unlock(&c->mu);
        return -1;
    }
    if (c->tail)
        c->tail->next = it;
    else
        c->head = it;
    c->tail = it;
    c->queued++;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void ct_commit_stop(ct_commit *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < c->nworkers; i++) pthread_join(c->workers[i], NULL);
    c->nworkers = 0;
}

void ct_commit_destroy(ct_commit *c) {
    if (!c) return;
    ct_commit_stop(c);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void ct_commit_get_stats(ct_commit *c, ct_commit_stats *out) {
    out->batches = atomic_load(&c->batches);
    out->rows = atomic_load(&c->rows);
    out->replays = atomic_load(&c->replays);
    out->failures = atomic_load(&c->failures);
    out->write_us = atomic_load(&c->write_us);
    pthread_mutex_lock(&c->mu);
    out->queued = c->queued;
    pthread_mutex_unlock(&c->mu);
}
