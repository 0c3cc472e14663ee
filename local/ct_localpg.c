/* ct_localpg: see ct_localpg.h. */
#include "ct_localpg.h"

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ct_log.h"
#include "ct_pg.h"
#include "ct_proc.h"

#define INITDB_TIMEOUT_MS (120 * 1000)
#define PGCTL_TIMEOUT_MS (90 * 1000)

const char *ct_localpg_user(void) { return geteuid() == 0 ? "postgres" : NULL; }

static void pgdir(const ct_config *cfg, const char *rel, char *out, size_t n) {
    char sub[128];
    snprintf(sub, sizeof sub, "pg%s%s", rel[0] ? "/" : "", rel);
    ct_config_path(cfg, sub, out, n);
}

static int bindir(const ct_config *cfg, char *out, size_t n, ct_error *err) {
    if (cfg->pg_bindir[0]) {
        snprintf(out, n, "%s", cfg->pg_bindir);
        return 0;
    }
    DIR *d = opendir("/usr/lib/postgresql");
    int best = -1;
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            char *end = NULL;
            long v = strtol(e->d_name, &end, 10);
            char probe[512];
            snprintf(probe, sizeof probe, "/usr/lib/postgresql/%s/bin/postgres", e->d_name);
            if (end && *end == '\0' && v > best && access(probe, X_OK) == 0) best = (int)v;
        }
        closedir(d);
    }
    if (best < 0) {
        CT_ERR(err, CT_ERR_FATAL, "no PostgreSQL server found under /usr/lib/postgresql");
        ct_error_detail(err, "install Debian's postgresql package (scripts/up does) or set CONCERT_PG_BINDIR");
        return -1;
    }
    snprintf(out, n, "/usr/lib/postgresql/%d/bin", best);
    return 0;
}

static int chown_to_postgres(const char *path, ct_error *err) {
    if (!ct_localpg_user()) return 0;
    struct passwd *pw = getpwnam("postgres");
    if (!pw) {
        CT_ERR(err, CT_ERR_FATAL, "user 'postgres' does not exist (install Debian's postgresql package)");
        return -1;
    }
    if (chown(path, pw->pw_uid, pw->pw_gid) != 0) {
        CT_ERR(err, CT_ERR_FATAL, "cannot chown %s to postgres: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int ct_localpg_prepare(const ct_config *cfg, ct_error *err) {
    char bin[CT_CONFIG_PATH_MAX], root[CT_CONFIG_PATH_MAX + 16], run[CT_CONFIG_PATH_MAX + 16];
    char logd[CT_CONFIG_PATH_MAX + 16], data[CT_CONFIG_PATH_MAX + 16], version[CT_CONFIG_PATH_MAX + 32];
    if (bindir(cfg, bin, sizeof bin, err) != 0) return -1;
    pgdir(cfg, "", root, sizeof root);
    pgdir(cfg, "run", run, sizeof run);
    pgdir(cfg, "log", logd, sizeof logd);
    pgdir(cfg, "data", data, sizeof data);
    if (ct_fs_mkdirs(root, 0755, err) != 0 || ct_fs_mkdirs(run, 0700, err) != 0 || ct_fs_mkdirs(logd, 0755, err) != 0)
        return -1;
    if (chown_to_postgres(root, err) != 0 || chown_to_postgres(run, err) != 0 || chown_to_postgres(logd, err) != 0)
        return -1;
    if (ct_localpg_user()) {
        /* The server runs as postgres: every parent directory must let it in. */
        const char *argv[] = {"test", "-w", root, "-a", "-x", root, NULL};
        ct_proc_opts po = {.argv = argv, .run_as_user = ct_localpg_user(), .output_fd = -1, .null_stdin = true};
        if (ct_proc_run(&po, 10000, err) != 0) {
            CT_ERR(err, CT_ERR_FATAL, "the postgres user cannot reach %s", root);
            ct_error_detail(err, "set CONCERT_DATA_DIR to a directory whose parents are world-searchable (o+x)");
            return -1;
        }
    }
    snprintf(version, sizeof version, "%s/PG_VERSION", data);
    if (ct_fs_exists(version)) return 0;
    char initdb[CT_CONFIG_PATH_MAX + 16], log[CT_CONFIG_PATH_MAX + 32];
    snprintf(initdb, sizeof initdb, "%s/initdb", bin);
    pgdir(cfg, "log/initdb.log", log, sizeof log);
    const char *argv[] = {initdb,         "-D", data,   "-U",          CT_PG_LOCAL_USER,
                          "--auth=trust", "-E", "UTF8", "--no-locale", NULL};
    ct_proc_opts po = {
        .argv = argv, .run_as_user = ct_localpg_user(), .output_path = log, .output_fd = -1, .null_stdin = true};
    CT_LOG_INFO("pg", "initialising the local Postgres cluster dir=%s", data);
    if (ct_proc_run(&po, INITDB_TIMEOUT_MS, err) != 0) {
        ct_error_detail(err, "see %s", log);
        return -1;
    }
    return 0;
}

/* Server settings shared by the foreground and the pg_ctl forms. */
static int server_options(const ct_config *cfg, char *port, size_t pn, char *sock, size_t sn) {
    snprintf(port, pn, "%d", cfg->pg_port);
    pgdir(cfg, "run", sock, sn);
    return 0;
}

/* The local cluster's settings (both ways of starting it use them). The
 * outbox's write rate is the ingress's throughput: WAL is its cost, so
 * checkpoints are spaced out (fewer full-page images after each) and the
 * images compressed. None of these weakens durability: synchronous_commit
 * and fsync stay on. */
static const char *const server_settings[] = {
    "listen_addresses=127.0.0.1", "max_connections=200",      "shared_buffers=512MB",
    "max_wal_size=4GB",           "checkpoint_timeout=15min", "wal_compression=lz4",
};

int ct_localpg_server_argv(const ct_config *cfg, char ***argv_out, ct_error *err) {
    char bin[CT_CONFIG_PATH_MAX], exe[CT_CONFIG_PATH_MAX + 16], data[CT_CONFIG_PATH_MAX + 16];
    char port[16], sock[CT_CONFIG_PATH_MAX + 16];
    if (bindir(cfg, bin, sizeof bin, err) != 0) return -1;
    snprintf(exe, sizeof exe, "%s/postgres", bin);
    pgdir(cfg, "data", data, sizeof data);
    server_options(cfg, port, sizeof port, sock, sizeof sock);
    const char *args[] = {exe, "-D", data, "-p", port, "-k", sock};
    size_t nargs = sizeof args / sizeof args[0], nset = sizeof server_settings / sizeof server_settings[0];
    char **argv = calloc(nargs + 2 * nset + 1, sizeof *argv);
    if (!argv) goto oom;
    size_t n = 0;
    for (size_t i = 0; i < nargs; i++)
        if (!(argv[n++] = strdup(args[i]))) goto oom;
    for (size_t i = 0; i < nset; i++)
        if (!(argv[n++] = strdup("-c")) || !(argv[n++] = strdup(server_settings[i]))) goto oom;
    *argv_out = argv;
    return 0;
oom:
    ct_localpg_argv_free(argv);
    CT_ERR(err, CT_ERR_FATAL, "out of memory");
    return -1;
}

void ct_localpg_argv_free(char **argv) {
    if (!argv) return;
    for (char **p = argv; *p; p++) free(*p);
    free(argv);
}

pid_t ct_localpg_pid(const ct_config *cfg) {
    char path[CT_CONFIG_PATH_MAX + 32];
    pgdir(cfg, "data/postmaster.pid", path, sizeof path);
    return ct_proc_read_pidfile(path);
}

int ct_localpg_wait_ready(const ct_config *cfg, int timeout_ms, ct_error *err) {
    int64_t deadline = ct_clock_mono_ms() + timeout_ms;
    for (;;) {
        ct_error e = {0};
        if (ct_pg_create_database(cfg, CT_PG_LOCAL_DB, &e) == 0) return 0;
        if (ct_clock_mono_ms() >= deadline) {
            if (err) *err = e;
            return -1;
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int ct_localpg_start(const ct_config *cfg, ct_error *err) {
    if (ct_localpg_prepare(cfg, err) != 0) return -1;
    if (ct_localpg_pid(cfg) == 0) {
        char bin[CT_CONFIG_PATH_MAX], pgctl[CT_CONFIG_PATH_MAX + 16], data[CT_CONFIG_PATH_MAX + 16];
        char log[CT_CONFIG_PATH_MAX + 32], port[16], sock[CT_CONFIG_PATH_MAX + 16], opts[CT_CONFIG_PATH_MAX + 512];
        if (bindir(cfg, bin, sizeof bin, err) != 0) return -1;
        snprintf(pgctl, sizeof pgctl, "%s/pg_ctl", bin);
        pgdir(cfg, "data", data, sizeof data);
        pgdir(cfg, "log/postgres.log", log, sizeof log);
        server_options(cfg, port, sizeof port, sock, sizeof sock);
        /* pg_ctl splits -o like a shell would: quote the path. */
        int len = snprintf(opts, sizeof opts, "-p %s -k '%s'", port, sock);
        for (size_t i = 0; i < sizeof server_settings / sizeof server_settings[0]; i++)
            len += snprintf(opts + len, len < (int)sizeof opts ? sizeof opts - (size_t)len : 0, " -c %s",
                            server_settings[i]);
        const char *argv[] = {pgctl, "-D", data, "-l", log, "-w", "-t", "60", "-o", opts, "start", NULL};
        ct_proc_opts po = {.argv = argv, .run_as_user = ct_localpg_user(), .output_fd = -1, .null_stdin = true};
        CT_LOG_INFO("pg", "starting the local Postgres cluster port=%d", cfg->pg_port);
        /* pg_ctl prints to our stderr; the server logs to its file. */
        if (ct_proc_run(&po, PGCTL_TIMEOUT_MS, err) != 0) {
            ct_error_detail(err, "see %s", log);
            return -1;
        }
    }
    return ct_localpg_wait_ready(cfg, 30000, err);
}

int ct_localpg_stop(const ct_config *cfg, ct_error *err) {
    if (ct_localpg_pid(cfg) == 0) return 0;
    char bin[CT_CONFIG_PATH_MAX], pgctl[CT_CONFIG_PATH_MAX + 16], data[CT_CONFIG_PATH_MAX + 16];
    if (bindir(cfg, bin, sizeof bin, err) != 0) return -1;
    snprintf(pgctl, sizeof pgctl, "%s/pg_ctl", bin);
    pgdir(cfg, "data", data, sizeof data);
    const char *argv[] = {pgctl, "-D", data, "-m", "fast", "-w", "-t", "60", "stop", NULL};
    ct_proc_opts po = {.argv = argv, .run_as_user = ct_localpg_user(), .output_fd = -1, .null_stdin = true};
    return ct_proc_run(&po, PGCTL_TIMEOUT_MS, err);
}
