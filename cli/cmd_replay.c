/* `concert replay read-models|processor`: recovery from the topics.
 *
 *   read-models --into DB [--compare]
 *       rebuilds the read models from the event topics into database DB
 *       (ct_replay); with --compare, up to the live read models' offsets,
 *       then compares them and exits 1 naming the first difference.
 *   read-models --reset
 *       empties the live read models (no projector may be running): the
 *       next projector rebuilds them from the event topics.
 *   processor --role R [--instance N] [--timeout-s S]
 *       a running instance (its pid file) is sent SIGUSR1 and rebuilds
 *       every store it holds from its input topic while the rest of the
 *       pipeline keeps running; this follows its status file and prints
 *       how far it is. An instance that is not running has its stores
 *       wiped: it rebuilds them when it starts. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "ct_log.h"
#include "ct_proc.h"
#include "ct_processor.h"
#include "ct_replay.h"
#include "ct_signal.h"
#include "ct_store.h"

static int usage(void) {
    fprintf(stderr, "usage: concert replay read-models --into DATABASE [--compare] | --reset\n"
                    "       concert replay processor --role concert|wallet [--instance N] [--timeout-s S]\n");
    return CT_EXIT_USAGE;
}

static int read_models(const ct_config *cfg, int argc, char **argv) {
    const char *into = NULL;
    bool compare = false, reset = false;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--into") == 0 && i + 1 < argc)
            into = argv[++i];
        else if (strcmp(argv[i], "--compare") == 0)
            compare = true;
        else if (strcmp(argv[i], "--reset") == 0)
            reset = true;
        else
            return usage();
    }
    ct_error err = {0};
    if (reset && !into && !compare) {
        if (ct_replay_reset_read_models(cfg, &err) != 0)
            return err.klass == CT_ERR_PERMANENT ? (ct_cmd_fail("replay", &err), CT_EXIT_USAGE)
                                                 : ct_cmd_fail("replay", &err);
        printf("the live read models are empty: the next projector rebuilds them from the event topics\n");
        return CT_EXIT_OK;
    }
    if (reset || !into || !into[0]) return usage();
    if (ct_signal_install(&err) != 0) return ct_cmd_fail("replay", &err);
    ct_replay_result r;
    int rc = ct_replay_read_models(cfg, into, compare, &r, &err);
    if (rc < 0)
        return err.klass == CT_ERR_PERMANENT ? (ct_cmd_fail("replay", &err), CT_EXIT_USAGE)
                                             : ct_cmd_fail("replay", &err);
    printf("rebuilt the read models into %s from the event topics: %" PRId64 " events applied\n", into, r.events);
    if (r.lost_offsets > 0)
        printf("warning: %" PRId64 " records were deleted from the topics' beginnings (Kafka retention) and are not"
               " in the rebuild\n",
               r.lost_offsets);
    if (!compare) return CT_EXIT_OK;
    if (rc == 1) {
        printf("DIFFERENT after %" PRId64 " equal rows: %s\n", r.rows, r.diff);
        return CT_EXIT_FAILURE;
    }
    printf("equal: %" PRId64 " rows in %d tables", r.rows, r.tables);
    if (r.pruned_live > 0)
        printf(" (%" PRId64 " rows only in the rebuild: deleted live by its retention)", r.pruned_live);
    printf("\n");
    return CT_EXIT_OK;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The instance is not running: its stores go, and it rebuilds them at its
 * next start (a missing store is rebuilt from the partition's first
 * record). Opening each store first proves nobody holds it. */
static int wipe_offline(const char *root) {
    int wiped = 0;
    for (int part = 0; part < CT_PROCESSOR_PARTITIONS_MAX; part++) {
        char dir[CT_CONFIG_PATH_MAX + 200];
        snprintf(dir, sizeof dir, "%s/p%d", root, part);
        if (!ct_fs_exists(dir)) continue;
        ct_error err = {0};
        ct_store *st = ct_store_open(dir, &err);
        if (!st) return ct_cmd_fail(dir, &err);
        ct_store_close(st);
        if (ct_store_wipe(dir, &err) != 0) return ct_cmd_fail(dir, &err);
        wiped++;
    }
    printf("the processor is not running: %d store(s) under %s wiped; it rebuilds them from its input topic when it"
           " starts\n",
           wiped, root);
    return CT_EXIT_OK;
}

static int processor(const ct_config *cfg, int argc, char **argv) {
    const char *role_name = NULL, *instance = "0";
    int64_t timeout_s = 600;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--role") == 0 && i + 1 < argc)
            role_name = argv[++i];
        else if (strcmp(argv[i], "--instance") == 0 && i + 1 < argc)
            instance = argv[++i];
        else if (strcmp(argv[i], "--timeout-s") == 0 && i + 1 < argc)
            timeout_s = strtoll(argv[++i], NULL, 10);
        else
            return usage();
    }
    ct_role role = 0;
    if (role_name && strcmp(role_name, "concert") == 0) role = CT_ROLE_CONCERT;
    if (role_name && strcmp(role_name, "wallet") == 0) role = CT_ROLE_WALLET;
    if (!role || timeout_s <= 0 || strchr(instance, '/') || strstr(instance, "..")) return usage();
    char root[CT_CONFIG_PATH_MAX + 160], pidfile[sizeof root + 16], status[sizeof root + 32];
    ct_processor_store_root(cfg, role, instance, root, sizeof root);
    snprintf(pidfile, sizeof pidfile, "%s/" CT_PROCESSOR_PID_FILE, root);
    snprintf(status, sizeof status, "%s/" CT_PROCESSOR_REBUILD_FILE, root);
    pid_t pid = ct_proc_read_pidfile(pidfile);
    if (pid <= 0) return wipe_offline(root);

    int64_t asked = ct_clock_wall_ms();
    if (kill(pid, SIGUSR1) != 0) {
        fprintf(stderr, "error: cannot signal processor pid %d: %s\n", (int)pid, strerror(errno));
        return CT_EXIT_FAILURE;
    }
    printf("asked processor %s-%s (pid %d) to rebuild its stores\n", role_name, instance, (int)pid);
    fflush(stdout);
    int64_t deadline = ct_clock_mono_ms() + timeout_s * 1000, last_records = -1;
    while (ct_clock_mono_ms() < deadline) {
        sleep_ms(250);
        json_t *j = json_load_file(status, 0, NULL);
        json_int_t started = 0, records = 0, parts = 0, done = 0, part = -1, off = 0, to = 0;
        const char *state = NULL, *error = NULL;
        if (j &&
            json_unpack(j, "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s?s}", "state", &state, "started_ms", &started,
                        "records", &records, "partitions", &parts, "partitions_done", &done, "partition", &part,
                        "offset", &off, "to", &to, "error", &error) == 0 &&
            started >= asked) {
            if (strcmp(state, "done") == 0) {
                printf("rebuilt %" JSON_INTEGER_FORMAT " partition(s) from their topic: %" JSON_INTEGER_FORMAT
                       " records replayed\n",
                       done, records);
                json_decref(j);
                return CT_EXIT_OK;
            }
            if (strcmp(state, "failed") == 0) {
                fprintf(stderr, "error: the rebuild failed: %s (the processor restarts and finishes it)\n",
                        error ? error : "?");
                json_decref(j);
                return CT_EXIT_FAILURE;
            }
            if (records != last_records) {
                printf("rebuilding: partition %" JSON_INTEGER_FORMAT " at offset %" JSON_INTEGER_FORMAT
                       " of %" JSON_INTEGER_FORMAT ", %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
                       " partitions done, %" JSON_INTEGER_FORMAT " records\n",
                       part, off, to, done, parts, records);
                fflush(stdout);
                last_records = records;
            }
        }
        json_decref(j);
        if (!ct_proc_alive(pid)) {
            fprintf(stderr, "error: processor pid %d exited before finishing; its next start finishes the rebuild\n",
                    (int)pid);
            return CT_EXIT_FAILURE;
        }
    }
    fprintf(stderr, "error: no finished rebuild within %" PRId64 " s (see the processor's log)\n", timeout_s);
    return CT_EXIT_FAILURE;
}

int ct_cmd_replay(const ct_config *cfg, int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "read-models") == 0) return read_models(cfg, argc, argv);
    if (argc >= 2 && strcmp(argv[1], "processor") == 0) return processor(cfg, argc, argv);
    return usage();
}
