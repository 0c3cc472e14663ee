/* `concert outbox list|retry|prune`: the operator's view of the outbox, the
 * same operations as GET /v1/admin/outbox and POST
 * /v1/admin/outbox/{id}/retry, and the relay's retention pass on demand. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "ct_log.h"
#include "ct_outbox.h"
#include "ct_pg.h"

static int usage(void) {
    fprintf(stderr, "usage: concert outbox list [--status PENDING|SENT|FAILED] [--after-id N] [--limit 1..1000]\n"
                    "       concert outbox retry ID | --all-failed\n"
                    "       concert outbox prune [--older-than SECONDS]   (default: CONCERT_OUTBOX_RETENTION_S)\n");
    return CT_EXIT_USAGE;
}

static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int ct_cmd_outbox(const ct_config *cfg, int argc, char **argv) {
    if (argc < 2) return usage();
    bool list = strcmp(argv[1], "list") == 0, retry = strcmp(argv[1], "retry") == 0,
         prune = strcmp(argv[1], "prune") == 0;
    ct_outbox_status status;
    bool has_status = false, all = false;
    int64_t after = 0, limit = 100, id = 0, older = cfg->outbox_retention_s;
    for (int i = 2; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (list && strcmp(argv[i], "--status") == 0 && next && ct_outbox_status_parse(next, &status) == 0) {
            has_status = true;
            i++;
        } else if (list && strcmp(argv[i], "--after-id") == 0 && next && parse_int(next, 0, INT64_MAX, &after) == 0)
            i++;
        else if (list && strcmp(argv[i], "--limit") == 0 && next && parse_int(next, 1, 1000, &limit) == 0)
            i++;
        else if (prune && strcmp(argv[i], "--older-than") == 0 && next && parse_int(next, 1, 315360000, &older) == 0)
            i++;
        else if (retry && strcmp(argv[i], "--all-failed") == 0 && id == 0)
            all = true;
        else if (retry && !all && id == 0 && parse_int(argv[i], 1, INT64_MAX, &id) == 0)
            continue;
        else
            return usage();
    }
    if (!list && !prune && !(retry && (all || id > 0))) return usage();
    if (prune && older == 0) {
        fprintf(stderr, "outbox: CONCERT_OUTBOX_RETENTION_S is 0 (SENT rows kept forever): give --older-than\n");
        return CT_EXIT_USAGE;
    }
    ct_error err = {0};
    PGconn *pg = ct_pg_connect(cfg, NULL, &err);
    if (!pg) return ct_cmd_fail("outbox", &err);
    int rc = CT_EXIT_OK;
    if (list) {
        char *json = NULL;
        if (ct_outbox_list_json(pg, has_status ? &status : NULL, after, (int)limit, &json, &err) != 0)
            rc = ct_cmd_fail("outbox", &err);
        else
            printf("%s\n", json);
        free(json);
    } else if (prune) {
        int64_t total = 0, deleted = 0, from = 0, max_id = 0, said = ct_clock_mono_ms();
        if (ct_outbox_max_id(pg, &max_id, &err) != 0) rc = ct_cmd_fail("outbox", &err);
        while (rc == CT_EXIT_OK) {
            if (ct_outbox_prune_slice(pg, from, 10000, (int)older, &deleted, &from, &err) != 0) {
                rc = ct_cmd_fail("outbox", &err);
                break;
            }
            total += deleted;
            if (from == 0) break;
            if (ct_clock_mono_ms() - said >= 2000) { /* a long pass says how far it is */
                said = ct_clock_mono_ms();
                fprintf(stderr, "pruning: at row id %" PRId64 " of %" PRId64 " (%.0f%%), %" PRId64 " deleted so far\n",
                        from, max_id, max_id > 0 ? 100.0 * (double)from / (double)max_id : 100.0, total);
            }
        }
        if (rc == CT_EXIT_OK)
            printf("pruned: %" PRId64 " SENT row(s) sent more than %" PRId64 " s ago\n", total, older);
    } else {
        int64_t count = 0;
        if (ct_outbox_retry(pg, all ? 0 : id, &count, &err) != 0)
            rc = ct_cmd_fail("outbox", &err);
        else
            printf("re-driven: %" PRId64 " row(s) back to PENDING\n", count);
    }
    PQfinish(pg);
    return rc;
}
