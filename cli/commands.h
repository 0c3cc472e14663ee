/*
 * The `concert` subcommands. Each gets the loaded configuration and its own
 * arguments (argv[0] is the subcommand) and returns the process exit code:
 * 0 success, 1 failure, 2 usage or configuration error.
 */
#ifndef CT_COMMANDS_H
#define CT_COMMANDS_H

#include "ct_config.h"

#define CT_EXIT_OK 0
#define CT_EXIT_FAILURE 1
#define CT_EXIT_USAGE 2

int ct_cmd_up(const ct_config *cfg, int argc, char **argv);
int ct_cmd_ingress(const ct_config *cfg, int argc, char **argv);
int ct_cmd_kafka(const ct_config *cfg, int argc, char **argv);
int ct_cmd_pg(const ct_config *cfg, int argc, char **argv);
int ct_cmd_migrate(const ct_config *cfg, int argc, char **argv);
int ct_cmd_smoke(const ct_config *cfg, int argc, char **argv);
int ct_cmd_processor(const ct_config *cfg, int argc, char **argv);
int ct_cmd_relay(const ct_config *cfg, int argc, char **argv);
int ct_cmd_projector(const ct_config *cfg, int argc, char **argv);
int ct_cmd_outbox(const ct_config *cfg, int argc, char **argv);
int ct_cmd_replay(const ct_config *cfg, int argc, char **argv);
int ct_cmd_auth(const ct_config *cfg, int argc, char **argv);

/* Prints "error: <msg> (<detail>)" to stderr and returns CT_EXIT_FAILURE. */
int ct_cmd_fail(const char *what, const ct_error *err);

#endif
