/* `concert processor --role concert|wallet [--instance NAME]`. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "ct_log.h"
#include "ct_processor.h"
#include "ct_signal.h"

int ct_cmd_processor(const ct_config *cfg, int argc, char **argv) {
    const char *role_name = NULL, *instance = "0";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--role") == 0 && i + 1 < argc)
            role_name = argv[++i];
        else if (strcmp(argv[i], "--instance") == 0 && i + 1 < argc)
            instance = argv[++i];
        else
            role_name = NULL, i = argc;
    }
    ct_role role = 0;
    if (role_name && strcmp(role_name, "concert") == 0) role = CT_ROLE_CONCERT;
    if (role_name && strcmp(role_name, "wallet") == 0) role = CT_ROLE_WALLET;
    if (!role) {
        fprintf(stderr, "usage: concert processor --role concert|wallet [--instance NAME]\n");
        return CT_EXIT_USAGE;
    }
    ct_error err = {0};
    if (ct_signal_install(&err) != 0) return ct_cmd_fail("processor", &err);
    ct_processor *p = ct_processor_new(cfg, role, instance, &err);
    if (!p)
        return err.klass == CT_ERR_PERMANENT ? (ct_cmd_fail("processor", &err), CT_EXIT_USAGE)
                                             : ct_cmd_fail("processor", &err);
    int rc = ct_processor_run(p, &err);
    ct_processor_destroy(p);
    if (rc != 0) return ct_cmd_fail("processor", &err);
    CT_LOG_INFO("processor", "stopped signal=%d", ct_signal_received());
    return CT_EXIT_OK;
}
