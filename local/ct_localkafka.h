/*
 * ct_localkafka: the local Apache Kafka cluster, three KRaft nodes (each
 * broker + controller, a 3-voter quorum) on 127.0.0.1, run from the broker's
 * jars on Maven Central with Debian's JDK.
 *
 * Layout under <data dir>/kafka/:
 *   pom.xml, libs/           the broker's classpath (fetched once with Maven)
 *   cluster.id               generated once; all nodes are formatted with it
 *   node-N/server.properties rewritten at every start from the configuration
 *   node-N/data/             the node's log dir (formatted once, then reused)
 *   node-N/logs/server.log   the broker's own log (log4j, rolled)
 *   node-N/pid               pid of a node started as a daemon
 *
 * Ports: broker N (1..3) on CONCERT_KAFKA_BASE_PORT+N-1, its controller on
 * base+10+N-1. All functions are for the main thread.
 */
#ifndef CT_LOCALKAFKA_H
#define CT_LOCALKAFKA_H

#include <stdbool.h>
#include <sys/types.h>

#include "ct_config.h"
#include "ct_error.h"

#define CT_LOCALKAFKA_NODES 3

/* Fetches the jars if missing, writes every node's configuration and
 * formats storage the first time. Idempotent. */
int ct_localkafka_prepare(const ct_config *cfg, ct_error *err);
/* Node N's server.properties, as `concert kafka` writes it at every start:
 * the cluster's layout, the CONCERT_KAFKA_* sizing, then each
 * CONCERT_KAFKA_BROKER_CONF_* property. Returns its length, -1 when it
 * does not fit. */
#define CT_LOCALKAFKA_NODE_CONFIG_BYTES 24576
int ct_localkafka_node_config(const ct_config *cfg, int node, char *out, size_t out_bytes, ct_error *err);

/* The command line that runs node `node` (1..3) in the foreground;
 * *argv_out is NULL-terminated, free it with ct_localkafka_argv_free(). */
int ct_localkafka_node_argv(const ct_config *cfg, int node, char ***argv_out, ct_error *err);
void ct_localkafka_argv_free(char **argv);

/* Path of node N's own log (for the supervisor's output). */
void ct_localkafka_node_log(const ct_config *cfg, int node, char *out, size_t out_bytes);

/* Starts the nodes that are not running as detached daemons (pid files),
 * waits until all three answer metadata requests and ensures the topics.
 * Nodes already running are left as they are. */
int ct_localkafka_start(const ct_config *cfg, ct_error *err);
/* SIGTERM to every running node (controlled shutdown), SIGKILL after a grace
 * period. */
int ct_localkafka_stop(const ct_config *cfg, ct_error *err);
/* pid of node N when it runs as a daemon started by ct_localkafka_start,
 * else 0. */
pid_t ct_localkafka_node_pid(const ct_config *cfg, int node);
/* Number of nodes with a live pid. */
int ct_localkafka_running(const ct_config *cfg);

#endif
