/*
 * concert: one binary, every component as a subcommand.
 * main() owns the exit code: configuration errors exit 2, failures 1.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "ct_log.h"
#include "ct_trace.h"

typedef struct command {
    const char *name;
    int (*run)(const ct_config *cfg, int argc, char **argv);
    const char *usage;
    const char *summary;
} command;

static const command commands[] = {
    {"up", ct_cmd_up, "up", "run the whole pipeline on this machine (local Kafka and Postgres unless configured)"},
    {"ingress", ct_cmd_ingress, "ingress", "run the HTTP API"},
    {"kafka", ct_cmd_kafka, "kafka start|stop|status", "manage the local 3-broker Kafka cluster (or ensure topics)"},
    {"pg", ct_cmd_pg, "pg start|stop|status|url", "manage the local Postgres cluster"},
    {"migrate", ct_cmd_migrate, "migrate", "apply the database migrations"},
    {"processor", ct_cmd_processor, "processor --role concert|wallet [--instance N]",
     "run an exactly-once processor of one role"},
    {"relay", ct_cmd_relay, "relay [--instance NAME]",
     "publish the outbox to Kafka and tick (one leader at a time; others stand by)"},
    {"projector", ct_cmd_projector, "projector [--instance NAME]",
     "materialise the read models from the event topics and deliver Slack notifications"},
    {"outbox", ct_cmd_outbox,
     "outbox list [--status S] [--after-id N] [--limit N] | retry ID|--all-failed | prune [--older-than S]",
     "inspect the outbox, re-drive FAILED rows, delete old SENT rows"},
    {"replay", ct_cmd_replay, "replay read-models --into DB [--compare] | --reset | processor --role R [--instance N]",
     "rebuild the read models (into a new database, compared with the live ones) or a processor's stores from the"
     " topics"},
    {"auth", ct_cmd_auth, "auth token USER [--ttl S]",
     "print a user's bearer token (HS256 JWT) signed with CONCERT_AUTH_KEY or the data directory's auth.key"},
    {"smoke", ct_cmd_smoke, "smoke [--timeout-ms N]", "produce test-message to test-topic and consume it back"},
};
#define COMMANDS_COUNT (sizeof commands / sizeof commands[0])

static void usage(FILE *out) {
    fprintf(out, "usage: concert <command> [args]\n\ncommands:\n");
    for (size_t i = 0; i < COMMANDS_COUNT; i++) fprintf(out, "  %-28s %s\n", commands[i].usage, commands[i].summary);
    fprintf(out, "  %-28s %s\n", "help [config]", "this list, or every configuration variable");
}

int ct_cmd_fail(const char *what, const ct_error *err) {
    fprintf(stderr, "error: %s: %s%s%s%s\n", what, err->msg, err->detail[0] ? " (" : "", err->detail,
            err->detail[0] ? ")" : "");
    return CT_EXIT_FAILURE;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (argc >= 3 && strcmp(argv[2], "config") == 0) {
            ct_config_print_help(stdout);
            return CT_EXIT_OK;
        }
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CT_EXIT_USAGE : CT_EXIT_OK;
    }
    const command *cmd = NULL;
    for (size_t i = 0; i < COMMANDS_COUNT; i++)
        if (strcmp(argv[1], commands[i].name) == 0) cmd = &commands[i];
    if (!cmd) {
        fprintf(stderr, "error: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return CT_EXIT_USAGE;
    }
    ct_config cfg;
    ct_error err = {0};
    if (ct_config_load_env(&cfg, &err) != 0) {
        fprintf(stderr, "error: configuration: %s%s%s%s\n", err.msg, err.detail[0] ? " (" : "", err.detail,
                err.detail[0] ? ")" : "");
        return CT_EXIT_USAGE;
    }
    ct_log_init(cmd->name, cfg.log_level);
    ct_trace_init(cfg.trace_sample);
    ct_config_log_effective(&cfg);
    return cmd->run(&cfg, argc - 1, argv + 1);
}
