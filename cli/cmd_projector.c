/* `concert projector [--instance NAME]`: events -> read models and Slack,
 * until SIGINT/SIGTERM. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "ct_projector.h"
#include "ct_signal.h"

int ct_cmd_projector(const ct_config *cfg, int argc, char **argv) {
    const char *instance = "0";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--instance") == 0 && i + 1 < argc && strlen(argv[i + 1]) <= 64) {
            instance = argv[++i];
        } else {
            fprintf(stderr, "usage: concert projector [--instance NAME]\n");
            return CT_EXIT_USAGE;
        }
    }
    ct_error err = {0};
    if (ct_signal_install(&err) != 0) return ct_cmd_fail("projector", &err);
    ct_projector *p = ct_projector_new(cfg, instance, &err);
    if (!p) return ct_cmd_fail("projector", &err);
    int rc = ct_projector_run(p, &err);
    ct_projector_destroy(p);
    return rc == 0 ? CT_EXIT_OK : ct_cmd_fail("projector", &err);
}
