/* ct_signal: see ct_signal.h. */
#include "ct_signal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop_signal, g_user1;
static int g_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    int saved = errno;
    if (sig == SIGUSR1)
        g_user1 = 1;
    else if (sig != SIGCHLD)
        g_stop_signal = sig;
    if (g_pipe[1] >= 0) {
        char c = (char)sig;
        ssize_t w = write(g_pipe[1], &c, 1);
        (void)w; /* pipe full means a wakeup is pending already */
    }
    errno = saved;
}

int ct_signal_install(ct_error *err) {
    if (g_pipe[0] < 0 && pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        CT_ERR(err, CT_ERR_FATAL, "pipe2 failed: %s", strerror(errno));
        return -1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGCHLD, &sa, NULL) != 0 ||
        sigaction(SIGUSR1, &sa, NULL) != 0) {
        CT_ERR(err, CT_ERR_FATAL, "sigaction failed: %s", strerror(errno));
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

bool ct_signal_stop_requested(void) { return g_stop_signal != 0; }
int ct_signal_received(void) { return (int)g_stop_signal; }
int ct_signal_fd(void) { return g_pipe[0]; }

bool ct_signal_take_user1(void) {
    if (!g_user1) return false;
    g_user1 = 0;
    return true;
}

void ct_signal_drain(void) {
    char buf[64];
    while (g_pipe[0] >= 0 && read(g_pipe[0], buf, sizeof buf) > 0) {}
}

void ct_signal_request_stop(void) { on_signal(SIGTERM); }
