/* `concert relay [--instance NAME]`: the outbox relay until SIGINT/SIGTERM. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "ct_relay.h"
#include "ct_signal.h"

int ct_cmd_relay(const ct_config *cfg, int argc, char **argv) {
    char instance[64];
    snprintf(instance, sizeof instance, "%d", (int)getpid());
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--instance") == 0 && i + 1 < argc) {
            snprintf(instance, sizeof instance, "%s", argv[++i]);
        } else {
            fprintf(stderr, "usage: concert relay [--instance NAME]\n");
            return CT_EXIT_USAGE;
        }
    }
    ct_error err = {0};
    if (ct_signal_install(&err) != 0) return ct_cmd_fail("relay", &err);
    ct_relay *r = ct_relay_new(cfg, instance, &err);
    if (!r) return ct_cmd_fail("relay", &err);
    int rc = ct_relay_run(r, &err);
    ct_relay_destroy(r);
    return rc == 0 ? CT_EXIT_OK : ct_cmd_fail("relay", &err);
}
