/* ct_supervisor: see ct_supervisor.h. */
#include "ct_supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ct_log.h"
#include "ct_proc.h"
#include "ct_signal.h"

#define BACKOFF_MIN_MS 250
#define STABLE_AFTER_MS (60 * 1000) /* a child up this long gets its backoff reset */
#define LINE_MAX_BYTES 4096

typedef struct child {
    char name[32];
    char **argv;
    char *user;
    int stop_signal, stop_timeout_ms, tier;
    pid_t pid;  /* 0 while down */
    int out_fd; /* read end of the child's stdout+stderr, -1 when closed */
    char line[LINE_MAX_BYTES];
    size_t line_len;
    int64_t started_ms;
    int64_t restart_at_ms; /* 0: no restart pending */
    int backoff_ms;
    int restarts;
    int64_t window_start_ms;
    int window_restarts;
} child;

struct ct_supervisor {
    child children[CT_SUPERVISOR_CHILDREN_MAX];
    int count;
    int backoff_max_ms;
    bool stopping;
    ct_supervisor_crashloop_fn on_crashloop;
    void *on_crashloop_ctx;
};

void ct_supervisor_on_crashloop(ct_supervisor *sup, ct_supervisor_crashloop_fn fn, void *ctx) {
    sup->on_crashloop = fn;
    sup->on_crashloop_ctx = ctx;
}

ct_supervisor *ct_supervisor_new(int backoff_max_ms, ct_error *err) {
    ct_supervisor *sup = calloc(1, sizeof *sup);
    if (!sup) {
        CT_ERR(err, CT_ERR_FATAL, "out of memory");
        return NULL;
    }
    sup->backoff_max_ms = backoff_max_ms;
    return sup;
}

static void flush_line(child *c) {
    if (c->line_len == 0) return;
    /* Children's lines go out as-is behind the name, one write per line. */
    char buf[LINE_MAX_BYTES + 64];
    int n = snprintf(buf, sizeof buf, "%-10s| %.*s\n", c->name, (int)c->line_len, c->line);
    if (n > (int)sizeof buf) n = (int)sizeof buf;
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
    c->line_len = 0;
}

static void read_output(child *c) {
    char buf[8192];
    for (;;) {
        ssize_t n = read(c->out_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        if (n <= 0) { /* EOF: every writer closed */
            flush_line(c);
            close(c->out_fd);
            c->out_fd = -1;
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n')
                flush_line(c);
            else {
                if (c->line_len == sizeof c->line) flush_line(c);
                c->line[c->line_len++] = buf[i];
            }
        }
    }
}

static int start_child(child *c, ct_error *err) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        CT_ERR(err, CT_ERR_RETRIABLE, "pipe2 failed: %s", strerror(errno));
        return -1;
    }
    ct_proc_opts po = {.argv = (const char *const *)c->argv,
                       .run_as_user = c->user,
                       .output_fd = fds[1],
                       .die_with_parent = true,
                       .null_stdin = true};
    pid_t pid = ct_proc_spawn(&po, err);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return -1;
    }
    if (c->out_fd >= 0) { /* drain what the previous run left */
        read_output(c);
        if (c->out_fd >= 0) close(c->out_fd);
    }
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    c->out_fd = fds[0];
    c->pid = pid;
    c->started_ms = ct_clock_mono_ms();
    c->restart_at_ms = 0;
    CT_LOG_INFO("supervisor", "started component=%s pid=%d", c->name, (int)pid);
    return 0;
}

int ct_supervisor_add(ct_supervisor *sup, const ct_child_spec *spec, ct_error *err) {
    if (sup->count >= CT_SUPERVISOR_CHILDREN_MAX) {
        CT_ERR(err, CT_ERR_FATAL, "more than %d supervised children", CT_SUPERVISOR_CHILDREN_MAX);
        return -1;
    }
    child *c = &sup->children[sup->count];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", spec->name);
    size_t n = 0;
    while (spec->argv[n]) n++;
    c->argv = calloc(n + 1, sizeof *c->argv);
    if (!c->argv) goto oom;
    for (size_t i = 0; i < n; i++)
        if (!(c->argv[i] = strdup(spec->argv[i]))) goto oom;
    if (spec->run_as_user && !(c->user = strdup(spec->run_as_user))) goto oom;
    c->stop_signal = spec->stop_signal ? spec->stop_signal : SIGTERM;
    c->stop_timeout_ms = spec->stop_timeout_ms > 0 ? spec->stop_timeout_ms : 10000;
    c->tier = spec->tier;
    c->out_fd = -1;
    c->backoff_ms = BACKOFF_MIN_MS;
    if (start_child(c, err) != 0) goto fail;
    sup->count++;
    return 0;
oom:
    CT_ERR(err, CT_ERR_FATAL, "out of memory");
fail:
    if (c->argv)
        for (size_t i = 0; c->argv[i]; i++) free(c->argv[i]);
    free(c->argv);
    free(c->user);
    memset(c, 0, sizeof *c);
    return -1;
}

static child *find_pid(ct_supervisor *sup, pid_t pid) {
    for (int i = 0; i < sup->count; i++)
        if (sup->children[i].pid == pid) return &sup->children[i];
    return NULL;
}

static void on_exit_status(ct_supervisor *sup, child *c, int status) {
    int64_t now = ct_clock_mono_ms();
    char how[64];
    if (WIFEXITED(status))
        snprintf(how, sizeof how, "exit=%d", WEXITSTATUS(status));
    else
        snprintf(how, sizeof how, "signal=%d", WTERMSIG(status));
    c->pid = 0;
    if (sup->stopping) {
        CT_LOG_INFO("supervisor", "stopped component=%s %s", c->name, how);
        return;
    }
    if (now - c->started_ms >= STABLE_AFTER_MS) c->backoff_ms = BACKOFF_MIN_MS;
    if (now - c->window_start_ms > CT_SUPERVISOR_CRASHLOOP_WINDOW_MS) {
        c->window_start_ms = now;
        c->window_restarts = 0;
    }
    c->window_restarts++;
    c->restarts++;
    c->restart_at_ms = now + c->backoff_ms;
    CT_LOG_WARN("supervisor", "component exited component=%s %s restart_in_ms=%d restarts=%d", c->name, how,
                c->backoff_ms, c->restarts);
    if (c->window_restarts == CT_SUPERVISOR_CRASHLOOP_RESTARTS) {
        CT_LOG_ERROR("supervisor", "component is crash-looping component=%s restarts=%d window_ms=%d", c->name,
                     c->window_restarts, CT_SUPERVISOR_CRASHLOOP_WINDOW_MS);
        if (sup->on_crashloop) sup->on_crashloop(c->name, c->window_restarts, how, sup->on_crashloop_ctx);
    }
    c->backoff_ms = c->backoff_ms * 2 > sup->backoff_max_ms ? sup->backoff_max_ms : c->backoff_ms * 2;
}

static void reap(ct_supervisor *sup) {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return;
        child *c = find_pid(sup, pid);
        if (c) on_exit_status(sup, c, status);
    }
}

void ct_supervisor_poll(ct_supervisor *sup, int timeout_ms) {
    int64_t now = ct_clock_mono_ms();
    for (int i = 0; i < sup->count && !sup->stopping; i++) {
        child *c = &sup->children[i];
        if (c->pid == 0 && c->restart_at_ms) {
            if (c->restart_at_ms <= now) {
                ct_error err = {0};
                if (start_child(c, &err) != 0) {
                    CT_LOG_ERROR("supervisor", "restart failed component=%s: %s", c->name, err.msg);
                    c->restart_at_ms = now + c->backoff_ms;
                }
            } else if (c->restart_at_ms - now < timeout_ms) {
                timeout_ms = (int)(c->restart_at_ms - now);
            }
        }
    }
    if (ct_signal_stop_requested()) timeout_ms = 0;
    struct pollfd pfd[CT_SUPERVISOR_CHILDREN_MAX + 1];
    child *owner[CT_SUPERVISOR_CHILDREN_MAX + 1];
    int n = 0;
    pfd[n].fd = ct_signal_fd(), pfd[n].events = POLLIN, owner[n++] = NULL;
    for (int i = 0; i < sup->count; i++) {
        if (sup->children[i].out_fd < 0) continue;
        pfd[n].fd = sup->children[i].out_fd, pfd[n].events = POLLIN, owner[n++] = &sup->children[i];
    }
    int r = poll(pfd, (nfds_t)n, timeout_ms);
    if (r > 0) {
        for (int i = 0; i < n; i++) {
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            if (owner[i])
                read_output(owner[i]);
            else
                ct_signal_drain();
        }
    }
    reap(sup);
}

bool ct_supervisor_running(const ct_supervisor *sup, const char *name) {
    for (int i = 0; i < sup->count; i++)
        if (strcmp(sup->children[i].name, name) == 0) return sup->children[i].pid > 0;
    return false;
}

int ct_supervisor_restarts(const ct_supervisor *sup, const char *name) {
    for (int i = 0; i < sup->count; i++)
        if (strcmp(sup->children[i].name, name) == 0) return sup->children[i].restarts;
    return -1;
}

void ct_supervisor_stop_all(ct_supervisor *sup) {
    sup->stopping = true;
    int top = -1;
    for (int i = 0; i < sup->count; i++)
        if (sup->children[i].tier > top) top = sup->children[i].tier;
    for (int tier = top; tier >= 0; tier--) {
        int64_t deadline = 0;
        for (int i = 0; i < sup->count; i++) {
            child *c = &sup->children[i];
            c->restart_at_ms = 0;
            if (c->tier != tier || c->pid == 0) continue;
            CT_LOG_INFO("supervisor", "stopping component=%s pid=%d", c->name, (int)c->pid);
            kill(c->pid, c->stop_signal);
            /* One deadline per tier: the longest grace of its children. */
            int64_t d = ct_clock_mono_ms() + c->stop_timeout_ms;
            if (d > deadline) deadline = d;
        }
        for (;;) {
            bool alive = false;
            for (int i = 0; i < sup->count; i++) {
                child *c = &sup->children[i];
                if (c->tier != tier || c->pid == 0) continue;
                alive = true;
            }
            if (!alive) break;
            if (ct_clock_mono_ms() >= deadline) {
                for (int i = 0; i < sup->count; i++) {
                    child *c = &sup->children[i];
                    if (c->tier != tier || c->pid == 0) continue;
                    CT_LOG_WARN("supervisor", "killing component=%s pid=%d after grace period", c->name, (int)c->pid);
                    kill(c->pid, SIGKILL);
                }
                deadline = ct_clock_mono_ms() + 5000;
            }
            /* Keep draining output so a child blocked on a full pipe can exit. */
            struct pollfd pfd[CT_SUPERVISOR_CHILDREN_MAX];
            child *owner[CT_SUPERVISOR_CHILDREN_MAX];
            int n = 0;
            for (int i = 0; i < sup->count; i++)
                if (sup->children[i].out_fd >= 0)
                    pfd[n].fd = sup->children[i].out_fd, pfd[n].events = POLLIN, owner[n++] = &sup->children[i];
            if (poll(pfd, (nfds_t)n, 50) > 0)
                for (int i = 0; i < n; i++)
                    if (pfd[i].revents) read_output(owner[i]);
            reap(sup);
        }
    }
    for (int i = 0; i < sup->count; i++)
        if (sup->children[i].out_fd >= 0) read_output(&sup->children[i]);
}

void ct_supervisor_destroy(ct_supervisor *sup) {
    if (!sup) return;
    if (!sup->stopping) ct_supervisor_stop_all(sup);
    for (int i = 0; i < sup->count; i++) {
        child *c = &sup->children[i];
        if (c->out_fd >= 0) close(c->out_fd);
        for (size_t k = 0; c->argv && c->argv[k]; k++) free(c->argv[k]);
        free(c->argv);
        free(c->user);
    }
    free(sup);
}
