#include "ct_slack.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ct_backoff.h"
#include "ct_log.h"
#include "ct_pg.h"

/* Rows claimed per round: few, since the claim's lock is held while they
 * are posted one after another. */
#define SLACK_ROUND_MAX 20
#define SLACK_TIMEOUT_MS 10000
#define SLACK_CONNECT_TIMEOUT_MS 3000

struct ct_slack {
    const ct_config *cfg;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    PGconn *pg;
    CURL *curl;
    int failures; /* consecutive failed posts: the sender's own backoff */
};

char *ct_slack_payload(const char *text) {
    json_t *o = json_pack("{s:s}", "text", text);
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *ud) {
    (void)ptr, (void)ud;
    return size * nmemb;
}

/* Posts one message. 0 on a 2xx answer; otherwise -1 with a description
 * that never contains the URL. */
static int post(ct_slack *s, const char *text, char *why, size_t why_bytes) {
    char *body = ct_slack_payload(text);
    if (!body) {
        snprintf(why, why_bytes, "out of memory");
        return -1;
    }
    if (!s->curl) s->curl = curl_easy_init();
    if (!s->curl) {
        free(body);
        snprintf(why, why_bytes, "curl_easy_init failed");
        return -1;
    }
    CURL *c = s->curl;
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, s->cfg->slack_webhook_url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)SLACK_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)SLACK_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
    free(body);
    if (rc != CURLE_OK) {
        snprintf(why, why_bytes, "%s", curl_easy_strerror(rc));
        return -1;
    }
    if (status < 200 || status > 299) {
        snprintf(why, why_bytes, "HTTP %ld", status);
        return -1;
    }
    return 0;
}

static const char *const claim_sql = "SELECT id, kind, text, attempts FROM slack_notifications"
                                     " WHERE sent_at IS NULL AND next_attempt_at <= now()"
                                     " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED";
static const char *const sent_sql =
    "UPDATE slack_notifications SET sent_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = $1";
static const char *const failed_sql = "UPDATE slack_notifications SET attempts = attempts + 1, last_error = $2,"
                                      " next_attempt_at = now() + $3::bigint * interval '1 millisecond' WHERE id = $1";

static int exec_params(PGconn *pg, const char *sql, int n, const char *const *v, const char *what, ct_error *err) {
    PGresult *res = PQexecParams(pg, sql, n, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ct_pg_result_error(pg, res, what, err);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* One round: claim due rows, post them in id order, record the outcomes.
 * Returns the rows delivered, or -1 on a database error. *failed is set
 * when a post failed (the round stops there: the receiver is likely down). */
static int round_once(ct_slack *s, bool *failed, ct_error *err) {
    *failed = false;
    if (ct_pg_exec(s->pg, "BEGIN", err) != 0) return -1;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", SLACK_ROUND_MAX);
    const char *cv[1] = {lim};
    PGresult *rows = PQexecParams(s->pg, claim_sql, 1, NULL, cv, NULL, NULL, 0);
    if (PQresultStatus(rows) != PGRES_TUPLES_OK) {
        ct_pg_result_error(s->pg, rows, "claim notifications", err);
        return -1;
    }
    int delivered = 0, rc = 0;
    for (int i = 0; i < PQntuples(rows) && rc == 0 && !*failed; i++) {
        const char *id = PQgetvalue(rows, i, 0), *kind = PQgetvalue(rows, i, 1);
        int attempts = atoi(PQgetvalue(rows, i, 3));
        char why[160];
        if (post(s, PQgetvalue(rows, i, 2), why, sizeof why) == 0) {
            const char *v[1] = {id};
            rc = exec_params(s->pg, sent_sql, 1, v, "mark notification sent", err);
            if (rc == 0) delivered++, s->failures = 0;
            CT_LOG_INFO("slack", "delivered notification id=%s kind=%s attempts=%d", id, kind, attempts + 1);
        } else {
            *failed = true;
            int64_t delay = ct_backoff_ms(attempts, s->cfg->slack_backoff_base_ms, s->cfg->slack_backoff_max_ms,
                                          ct_backoff_jitter());
            char d[24];
            snprintf(d, sizeof d, "%" PRId64, delay);
            const char *v[3] = {id, why, d};
            rc = exec_params(s->pg, failed_sql, 3, v, "record failed delivery", err);
            s->failures++;
            CT_LOG_RATELIMITED(CT_LOG_WARN, "slack", 2000,
                               "delivery failed id=%s kind=%s attempts=%d error=%s; next try in %" PRId64 " ms", id,
                               kind, attempts + 1, why, delay);
        }
    }
    PQclear(rows);
    if (rc != 0) return -1;
    if (ct_pg_exec(s->pg, "COMMIT", err) != 0) return -1;
    return delivered;
}

/* Sleeps up to ms unless stopping; true when stopping. */
static bool nap(ct_slack *s, int64_t ms) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping && pthread_cond_timedwait(&s->cv, &s->mu, &until) == 0) {}
    bool stop = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

static void *sender_main(void *arg) {
    ct_slack *s = arg;
    int pg_failures = 0;
    for (;;) {
        int64_t wait = s->cfg->slack_poll_ms;
        ct_error err = {0};
        if (!s->pg) {
            s->pg = ct_pg_connect(s->cfg, NULL, &err);
            if (!s->pg) {
                CT_LOG_RATELIMITED(CT_LOG_WARN, "slack", 5000, "cannot connect to the database: %s", err.msg);
                wait = ct_backoff_ms(pg_failures++, 200, 10000, ct_backoff_jitter());
            } else {
                pg_failures = 0;
            }
        }
        if (s->pg) {
            bool failed = false;
            int n = round_once(s, &failed, &err);
            if (n < 0) {
                CT_LOG_WARN("slack", "database error, reconnecting: %s %s", err.msg, err.detail);
                PQfinish(s->pg);
                s->pg = NULL;
            } else if (failed) {
                wait = ct_backoff_ms(s->failures - 1, s->cfg->slack_backoff_base_ms, s->cfg->slack_backoff_max_ms,
                                     ct_backoff_jitter());
            } else if (n == SLACK_ROUND_MAX) {
                wait = 0;
            }
        }
        if (nap(s, wait)) break;
    }
    return NULL;
}

ct_slack *ct_slack_start(const ct_config *cfg, ct_error *err) {
    ct_slack *s = calloc(1, sizeof *s);
    if (!s) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (cfg->slack_webhook_url[0] == '\0') {
        CT_LOG_INFO("slack", "no CONCERT_SLACK_WEBHOOK_URL: notifications are kept unsent in slack_notifications");
        return s;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        CT_ERR(err, CT_ERR_FATAL, "curl_global_init failed");
        ct_slack_stop(s);
        return NULL;
    }
    if (pthread_create(&s->thread, NULL, sender_main, s) != 0) {
        CT_ERR(err, CT_ERR_FATAL, "cannot start the Slack sender thread");
        curl_global_cleanup();
        ct_slack_stop(s);
        return NULL;
    }
    s->running = true;
    CT_LOG_INFO("slack", "sender started (webhook URL configured, not shown) poll_ms=%d", cfg->slack_poll_ms);
    return s;
}

void ct_slack_stop(ct_slack *s) {
    if (!s) return;
    if (s->running) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
        if (s->curl) curl_easy_cleanup(s->curl);
        if (s->pg) PQfinish(s->pg);
        curl_global_cleanup();
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
