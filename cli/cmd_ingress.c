/* `concert ingress`: the HTTP API until SIGINT/SIGTERM. */
#include <poll.h>
#include <stdio.h>

#include "commands.h"
#include "ct_ingress.h"
#include "ct_log.h"
#include "ct_signal.h"

int ct_cmd_ingress(const ct_config *cfg, int argc, char **argv) {
    ct_error err = {0};
    if (ct_signal_install(&err) != 0) return ct_cmd_fail("ingress", &err);
    ct_ingress *in = ct_ingress_start(cfg, &err);
    if (!in) return ct_cmd_fail("ingress", &err);
    CT_LOG_INFO("http", "listening addr=%s port=%d", cfg->http_addr, ct_ingress_port(in));
    while (!ct_signal_stop_requested()) {
        struct pollfd p = {.fd = ct_signal_fd(), .events = POLLIN};
        poll(&p, 1, 1000);
        ct_signal_drain();
    }
    CT_LOG_INFO("http", "stopping signal=%d", ct_signal_received());
    ct_ingress_stop(in);
    return CT_EXIT_OK;
}
