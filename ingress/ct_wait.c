/* ct_wait: see ct_wait.h. */
#include "ct_wait.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ct_hash.h"
#include "ct_log.h"
#include "ct_trace.h"
#include "ct_pg.h"
#include "ct_pgarray.h"

/* How long the listener sleeps at most: bounds how late a deadline is
 * noticed when no eventfd poke arrives (registrations poke only when they
 * bring the next deadline forward). */
#define TICK_MS 250

struct ct_wait {
    const ct_config *cfg;
    pthread_mutex_t mu;
    /* Ids registered since the listener last looked (commands and tokens
     * apart): it checks them in one query each on its own connection. */
    ct_pgarray fresh_cmds, fresh_tokens;
    ct_waiter *buckets[CT_WAIT_BUCKETS];
    int64_t count;
    int64_t next_deadline;
    bool stopping;
    int efd;
    pthread_t thread;
    bool started;
    _Atomic uint64_t outcomes, timeouts, refused, reconnects;
};

static const char *const outcome_sql =
    "SELECT command_id, status, reason, result::text FROM commands WHERE command_id = ANY($1::text[])";

static size_t bucket_of(const char *id) { return (size_t)(ct_hash64_str(id) & (CT_WAIT_BUCKETS - 1)); }

static void poke(ct_wait *wt) {
    uint64_t one = 1;
    /* A full counter (never in practice) still leaves the fd readable. */
    if (write(wt->efd, &one, sizeof one) < 0 && errno != EAGAIN)
        CT_LOG_RATELIMITED(CT_LOG_WARN, "wait", 5000, "eventfd write failed errno=%d", errno);
}

static void release(ct_waiter *w) {
    if (atomic_fetch_sub(&w->refs, 1) == 1) w->done(w);
}

/* Ends the waiters of a list taken out of the table (linked by next),
 * counting them in *counter. Called without mu. */
static void release_all(ct_waiter *ready, _Atomic uint64_t *counter) {
    while (ready) {
        ct_waiter *w = ready;
        ready = w->next;
        w->next = NULL;
        atomic_fetch_add(counter, 1);
        release(w);
    }
}

/* Unlinks w if it is still waiting. Called with mu held; true: the caller
 * decides w's fate and must release it (after unlocking). */
static bool take_locked(ct_wait *wt, ct_waiter *w) {
    if (!w->in_table) return false;
    ct_waiter **pp = &wt->buckets[bucket_of(w->command_id)];
    while (*pp && *pp != w) pp = &(*pp)->next;
    if (*pp) *pp = w->next;
    w->next = NULL;
    w->in_table = false;
    wt->count--;
    return true;
}

static void set_outcome(ct_waiter *w, const char *status, const char *reason, const char *result) {
    w->found = true;
    snprintf(w->status, sizeof w->status, "%s", status);
    w->reason = reason ? strdup(reason) : NULL;
    w->result = result ? strdup(result) : NULL;
}

/* Ends the waiters of the rows of an outcome_sql result. */
static void resolve_rows(ct_wait *wt, PGresult *res) {
    ct_waiter *ready = NULL;
    pthread_mutex_lock(&wt->mu);
    for (int row = 0; row < PQntuples(res); row++) {
        const char *id = PQgetvalue(res, row, 0);
        ct_waiter **pp = &wt->buckets[bucket_of(id)];
        while (*pp) {
            ct_waiter *w = *pp;
            if (strcmp(w->command_id, id) != 0) {
                pp = &w->next;
                continue;
            }
            take_locked(wt, w);
            set_outcome(w, PQgetvalue(res, row, 1), PQgetisnull(res, row, 2) ? NULL : PQgetvalue(res, row, 2),
                        PQgetvalue(res, row, 3));
            w->next = ready;
            ready = w;
        }
    }
    pthread_mutex_unlock(&wt->mu);
    release_all(ready, &wt->outcomes);
}

/* Reads the outcomes of ids (≤ CT_WAIT_QUERY_IDS_MAX) and ends their
 * waiters. -1 when the query failed (the connection is suspect). */
static int lookup(ct_wait *wt, PGconn *pg, ct_pgarray *ids) {
    const char *p[1] = {ct_pgarray_text(ids)};
    if (!p[0]) return -1;
    PGresult *res = PQexecParams(pg, outcome_sql, 1, NULL, p, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        resolve_rows(wt, res);
    } else {
        CT_LOG_RATELIMITED(CT_LOG_WARN, "wait", 5000, "outcome lookup failed: %s", PQerrorMessage(pg));
        rc = -1;
    }
    PQclear(res);
    return rc;
}

/* ---- the registration-time check (on the listener's connection) -------- */

/* Ends the token waiters of id (a token admitted), or every token waiter
 * when id is NULL (after a reconnect: they read their token again). */
static void wake_tokens(ct_wait *wt, const char *id) {
    ct_waiter *ready = NULL;
    pthread_mutex_lock(&wt->mu);
    for (size_t b = id ? bucket_of(id) : 0; b < CT_WAIT_BUCKETS; b++) {
        ct_waiter **pp = &wt->buckets[b];
        while (*pp) {
            ct_waiter *w = *pp;
            if (!w->token || (id && strcmp(w->command_id, id) != 0)) {
                pp = &w->next;
                continue;
            }
            take_locked(wt, w);
            w->found = true;
            w->next = ready;
            ready = w;
        }
        if (id) break;
    }
    pthread_mutex_unlock(&wt->mu);
    release_all(ready, &wt->outcomes);
}

/* Outcomes recorded, and tokens admitted, before their waiters existed
 * (their NOTIFY went by): the ids registered since the last look, in one
 * query per kind. -1 when a query failed (the connection is suspect). */
static int check_fresh(ct_wait *wt, PGconn *pg) {
    pthread_mutex_lock(&wt->mu);
    ct_pgarray cmds = wt->fresh_cmds, tokens = wt->fresh_tokens;
    memset(&wt->fresh_cmds, 0, sizeof wt->fresh_cmds);
    memset(&wt->fresh_tokens, 0, sizeof wt->fresh_tokens);
    pthread_mutex_unlock(&wt->mu);
    int rc = cmds.count > 0 ? lookup(wt, pg, &cmds) : 0;
    if (rc == 0 && tokens.count > 0) {
        const char *p[1] = {ct_pgarray_text(&tokens)};
        PGresult *res = p[0] ? PQexecParams(pg,
                                            "SELECT token FROM queue_tokens WHERE token = ANY($1::text[])"
                                            " AND status <> 'WAITING'",
                                            1, NULL, p, NULL, NULL, 0)
                             : NULL;
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            for (int i = 0; i < PQntuples(res); i++) wake_tokens(wt, PQgetvalue(res, i, 0));
        } else {
            CT_LOG_RATELIMITED(CT_LOG_WARN, "wait", 5000, "token check failed: %s", PQerrorMessage(pg));
            rc = -1;
        }
        PQclear(res);
    }
    ct_pgarray_free(&cmds), ct_pgarray_free(&tokens);
    return rc;
}

int ct_wait_register(ct_wait *wt, ct_waiter *w) {
    w->owner = wt;
    w->found = false;
    w->reason = w->result = NULL;
    w->next = NULL;
    atomic_store(&w->refs, 1);
    pthread_mutex_lock(&wt->mu);
    if (wt->stopping || wt->count >= wt->cfg->ingress_waiters_max) {
        pthread_mutex_unlock(&wt->mu);
        atomic_fetch_add(&wt->refused, 1);
        return -1;
    }
    size_t b = bucket_of(w->command_id);
    w->next = wt->buckets[b];
    wt->buckets[b] = w;
    w->in_table = true;
    wt->count++;
    if (w->deadline_mono_ms < wt->next_deadline) wt->next_deadline = w->deadline_mono_ms;
    /* By id, not by pointer: the waiter may end (and its memory go) before
     * the listener looks. */
    ct_pgarray_add(w->token ? &wt->fresh_tokens : &wt->fresh_cmds, w->command_id);
    pthread_mutex_unlock(&wt->mu);
    poke(wt); /* the listener checks it now, and knows its deadline */
    return 0;
}

/* ---- the listener ------------------------------------------------------- */

/* Ends the waiters whose deadline passed (all of them when everything).
 * Recomputes the next deadline. */
static void expire(ct_wait *wt, bool everything) {
    int64_t now = ct_clock_mono_ms();
    ct_waiter *ready = NULL;
    pthread_mutex_lock(&wt->mu);
    if (!everything && now < wt->next_deadline) {
        pthread_mutex_unlock(&wt->mu);
        return;
    }
    int64_t next = INT64_MAX;
    for (size_t b = 0; b < CT_WAIT_BUCKETS && wt->count > 0; b++) {
        ct_waiter **pp = &wt->buckets[b];
        while (*pp) {
            ct_waiter *w = *pp;
            if (!everything && w->deadline_mono_ms > now) {
                if (w->deadline_mono_ms < next) next = w->deadline_mono_ms;
                pp = &w->next;
                continue;
            }
            take_locked(wt, w);
            w->next = ready;
            ready = w;
        }
    }
    wt->next_deadline = next;
    pthread_mutex_unlock(&wt->mu);
    release_all(ready, &wt->timeouts);
}

/* After a (re)connect: the notifications sent while nobody listened are
 * gone, so every current waiter is looked up. */
static int recheck_all(ct_wait *wt, PGconn *pg) {
    wake_tokens(wt, NULL);
    size_t b = 0;
    while (b < CT_WAIT_BUCKETS) {
        ct_pgarray ids = {0};
        int n = 0;
        pthread_mutex_lock(&wt->mu);
        for (; b < CT_WAIT_BUCKETS && n < CT_WAIT_QUERY_IDS_MAX; b++)
            for (ct_waiter *w = wt->buckets[b]; w; w = w->next)
                if (!w->token) ct_pgarray_add(&ids, w->command_id), n++;
        pthread_mutex_unlock(&wt->mu);
        int rc = n > 0 ? lookup(wt, pg, &ids) : 0;
        ct_pgarray_free(&ids);
        if (rc != 0) return -1;
    }
    return 0;
}

static bool has_waiter(ct_wait *wt, const char *id) {
    pthread_mutex_lock(&wt->mu);
    ct_waiter *w = wt->buckets[bucket_of(id)];
    while (w && strcmp(w->command_id, id) != 0) w = w->next;
    pthread_mutex_unlock(&wt->mu);
    return w != NULL;
}

/* Drains the notifications that arrived and looks up the ids somebody waits
 * for, until none is left: notifications that come in during a lookup are
 * buffered by libpq and would not make the socket readable again. -1 when
 * the connection broke. */
static int dispatch(ct_wait *wt, PGconn *pg) {
    if (!PQconsumeInput(pg)) return -1;
    for (;;) {
        ct_pgarray ids = {0};
        int n = 0;
        PGnotify *nf;
        /* A payload holds at most 8000 bytes, so n stays within
         * CT_WAIT_QUERY_IDS_MAX + 216. */
        while (n < CT_WAIT_QUERY_IDS_MAX && (nf = PQnotifies(pg)) != NULL) {
            const char *p = nf->extra;
            while (*p) {
                size_t len = strcspn(p, ",");
                if (len == CT_API_TOKEN_CHARS) {
                    char id[CT_API_TOKEN_CHARS + 1];
                    memcpy(id, p, len), id[len] = 0;
                    wake_tokens(wt, id);
                } else if (len == CT_API_UUID_CHARS) {
                    char id[CT_API_UUID_CHARS + 1];
                    memcpy(id, p, len), id[len] = 0;
                    if (has_waiter(wt, id)) {
                        ct_trace_hop(id, len, "ingress.notify");
                        ct_pgarray_add(&ids, id), n++;
                    }
                }
                p += len;
                if (*p == ',') p++;
            }
            PQfreemem(nf);
        }
        int rc = n > 0 ? lookup(wt, pg, &ids) : 0;
        ct_pgarray_free(&ids);
        if (rc != 0) return -1;
        if (n == 0) break;
    }
    return PQstatus(pg) == CONNECTION_OK ? 0 : -1;
}

static PGconn *listen_connect(ct_wait *wt) {
    ct_error err = {0};
    PGconn *pg = ct_pg_connect(wt->cfg, NULL, &err);
    if (!pg) {
        CT_LOG_RATELIMITED(CT_LOG_WARN, "wait", 5000, "listener cannot connect: %s", err.msg);
        return NULL;
    }
    /* Everything registered so far is checked by recheck_all. */
    pthread_mutex_lock(&wt->mu);
    ct_pgarray_free(&wt->fresh_cmds), ct_pgarray_free(&wt->fresh_tokens);
    pthread_mutex_unlock(&wt->mu);
    /* Named, so operators (and the tests) can tell it from the pools. */
    if (ct_pg_exec(pg, "SET application_name = 'concert-ingress-listener'", &err) != 0 ||
        ct_pg_exec(pg, "LISTEN command_done", &err) != 0 || recheck_all(wt, pg) != 0 || dispatch(wt, pg) != 0) {
        CT_LOG_RATELIMITED(CT_LOG_WARN, "wait", 5000, "listener cannot LISTEN command_done: %s", err.msg);
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

static void *listener(void *arg) {
    ct_wait *wt = arg;
    PGconn *pg = NULL;
    int64_t next_connect = 0;
    bool had_connection = false;
    for (;;) {
        pthread_mutex_lock(&wt->mu);
        bool stopping = wt->stopping;
        int64_t next_deadline = wt->next_deadline;
        pthread_mutex_unlock(&wt->mu);
        if (stopping) break;
        int64_t now = ct_clock_mono_ms();
        if (!pg && now >= next_connect) {
            if ((pg = listen_connect(wt)) != NULL) {
                if (had_connection) {
                    atomic_fetch_add(&wt->reconnects, 1);
                    CT_LOG_INFO("wait", "listener reconnected, waiters re-checked");
                }
                had_connection = true;
            } else {
                next_connect = now + CT_WAIT_RECONNECT_MS;
            }
        }
        int64_t timeout = TICK_MS;
        if (next_deadline - now < timeout) timeout = next_deadline - now > 0 ? next_deadline - now : 0;
        if (!pg && next_connect - now < timeout) timeout = next_connect - now > 0 ? next_connect - now : 0;
        struct pollfd fds[2] = {{.fd = wt->efd, .events = POLLIN}, {.fd = pg ? PQsocket(pg) : -1, .events = POLLIN}};
        int prc = poll(fds, pg ? 2 : 1, (int)timeout);
        if (prc < 0 && errno != EINTR) CT_LOG_RATELIMITED(CT_LOG_WARN, "wait", 5000, "poll failed errno=%d", errno);
        if (prc > 0 && (fds[0].revents & POLLIN)) {
            uint64_t v;
            if (read(wt->efd, &v, sizeof v) < 0 && errno != EAGAIN)
                CT_LOG_RATELIMITED(CT_LOG_WARN, "wait", 5000, "eventfd read failed errno=%d", errno);
        }
        /* A failed check drops the connection too: the reconnect re-checks
         * every waiter, the fresh ones among them. */
        if (pg && (check_fresh(wt, pg) != 0 || (prc > 0 && fds[1].revents && dispatch(wt, pg) != 0))) {
            CT_LOG_WARN("wait", "listener connection lost: %s", PQerrorMessage(pg));
            PQfinish(pg);
            pg = NULL;
            next_connect = 0;
        }
        expire(wt, false);
    }
    if (pg) PQfinish(pg);
    return NULL;
}

ct_wait *ct_wait_start(const ct_config *cfg, ct_error *err) {
    ct_wait *wt = calloc(1, sizeof *wt);
    if (!wt) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return NULL;
    }
    wt->cfg = cfg;
    wt->next_deadline = INT64_MAX;
    pthread_mutex_init(&wt->mu, NULL);
    if ((wt->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        CT_ERR(err, CT_ERR_FATAL, "eventfd failed errno=%d", errno);
        pthread_mutex_destroy(&wt->mu);
        free(wt);
        return NULL;
    }
    if (pthread_create(&wt->thread, NULL, listener, wt) != 0) {
        CT_ERR(err, CT_ERR_FATAL, "cannot start the outcome listener");
        ct_wait_destroy(wt);
        return NULL;
    }
    wt->started = true;
    return wt;
}

void ct_wait_stop(ct_wait *wt) {
    if (!wt) return;
    pthread_mutex_lock(&wt->mu);
    wt->stopping = true;
    pthread_mutex_unlock(&wt->mu);
    poke(wt);
    if (wt->started) pthread_join(wt->thread, NULL);
    wt->started = false;
    expire(wt, true);
}

void ct_wait_destroy(ct_wait *wt) {
    if (!wt) return;
    ct_wait_stop(wt);
    close(wt->efd);
    ct_pgarray_free(&wt->fresh_cmds), ct_pgarray_free(&wt->fresh_tokens);
    pthread_mutex_destroy(&wt->mu);
    free(wt);
}

void ct_waiter_clear(ct_waiter *w) {
    free(w->reason);
    free(w->result);
    w->reason = w->result = NULL;
}

void ct_wait_get_stats(ct_wait *wt, ct_wait_stats *out) {
    pthread_mutex_lock(&wt->mu);
    out->waiters = wt->count;
    pthread_mutex_unlock(&wt->mu);
    out->outcomes = atomic_load(&wt->outcomes);
    out->timeouts = atomic_load(&wt->timeouts);
    out->refused = atomic_load(&wt->refused);
    out->reconnects = atomic_load(&wt->reconnects);
}
