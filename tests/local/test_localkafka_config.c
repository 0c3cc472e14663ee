/* The local cluster's server.properties, as `concert kafka` renders it:
 * CONCERT_KAFKA_BROKER_CONF_* lines come after Kafka's own, so they win
 * (java.util.Properties keeps a key's last value). No cluster needed. */
#include <criterion/criterion.h>
#include <string.h>

#include "ct_localkafka.h"

static void load(ct_config *cfg, char **env) {
    ct_error err = {0};
    cr_assert_eq(ct_config_load(cfg, env, &err), 0, "%s", err.msg);
}

/* Node N's file under the configuration ENV, into body; its length. */
static int render(char **env, int node, char *body) {
    ct_config cfg;
    load(&cfg, env);
    ct_error err = {0};
    int len = ct_localkafka_node_config(&cfg, node, body, CT_LOCALKAFKA_NODE_CONFIG_BYTES, &err);
    cr_assert_gt(len, 0, "%s", err.msg);
    cr_assert_eq((size_t)len, strlen(body));
    return len;
}

Test(localkafka_config, broker_properties_follow_the_clusters_own_lines) {
    char *env[] = {"CONCERT_DATA_DIR=/tmp/ct-node-config", "CONCERT_KAFKA_BROKER_CONF_REPLICA_FETCH_WAIT_MAX_MS=5",
                   "CONCERT_KAFKA_BROKER_CONF_BACKGROUND_THREADS=4", NULL};
    static char body[CT_LOCALKAFKA_NODE_CONFIG_BYTES];
    int len = render(env, 2, body);
    cr_assert_not_null(strstr(body, "\nnode.id=2\n"));
    cr_assert_not_null(strstr(body, "\nlog.dirs=/tmp/ct-node-config/kafka/node-2/data\n"), "%s", body);
    const char *own = strstr(body, "\nbackground.threads=2\n");
    const char *fetch = strstr(body, "\nreplica.fetch.wait.max.ms=5\n");
    const char *threads = strstr(body, "\nbackground.threads=4\n");
    cr_assert(own && fetch && threads, "%s", body);
    cr_assert(own < threads, "the passed value comes last, so it wins");
    cr_assert_eq(body[len - 1], '\n');
}

Test(localkafka_config, without_broker_properties_nothing_is_added) {
    char *env[] = {"CONCERT_DATA_DIR=/tmp/ct-node-config", NULL};
    static char body[CT_LOCALKAFKA_NODE_CONFIG_BYTES];
    int len = render(env, 1, body);
    cr_assert_null(strstr(body, "replica.fetch"));
    const char *last = strstr(body, "background.threads=2\n");
    cr_assert_not_null(last);
    cr_assert_eq(last + strlen("background.threads=2\n"), body + len, "Kafka's own lines end the file");
}

Test(localkafka_config, a_body_that_does_not_fit_is_an_error) {
    char *env[] = {"CONCERT_DATA_DIR=/tmp/ct-node-config", "CONCERT_KAFKA_BROKER_CONF_LOG_RETENTION_MS=1000", NULL};
    ct_config cfg;
    load(&cfg, env);
    char small[256];
    ct_error err = {0};
    cr_assert_eq(ct_localkafka_node_config(&cfg, 1, small, sizeof small, &err), -1);
    cr_assert_not_null(strstr(err.msg, "does not fit"), "%s", err.msg);
}
