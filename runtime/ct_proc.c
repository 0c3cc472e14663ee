/* ct_proc: see ct_proc.h. */
#include "ct_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ct_log.h"

/* Everything the child needs is resolved before fork(): between fork and
 * exec only async-signal-safe calls are allowed. */
pid_t ct_proc_spawn(const ct_proc_opts *opts, ct_error *err) {
    uid_t uid = 0;
    gid_t gid = 0;
    bool switch_user = false;
    if (opts->run_as_user && geteuid() == 0) {
        struct passwd *pw = getpwnam(opts->run_as_user);
        if (!pw) {
            CT_ERR(err, CT_ERR_FATAL, "user '%s' does not exist", opts->run_as_user);
            return -1;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid;
        switch_user = true;
    }
    int out_fd = opts->output_fd;
    int opened_fd = -1;
    if (opts->output_path) {
        opened_fd = open(opts->output_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (opened_fd < 0) {
            CT_ERR(err, CT_ERR_FATAL, "cannot open %s: %s", opts->output_path, strerror(errno));
            return -1;
        }
        if (switch_user && fchown(opened_fd, uid, gid) != 0) { /* best effort: it is a log file */
        }
        out_fd = opened_fd;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        CT_ERR(err, CT_ERR_RETRIABLE, "fork failed: %s", strerror(errno));
        if (opened_fd >= 0) close(opened_fd);
        return -1;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        if (opts->new_session) setsid();
        if (opts->null_stdin) {
            int nfd = open("/dev/null", O_RDONLY);
            if (nfd >= 0) {
                dup2(nfd, STDIN_FILENO);
                close(nfd);
            }
        }
        if (out_fd >= 0) {
            dup2(out_fd, STDOUT_FILENO);
            dup2(out_fd, STDERR_FILENO);
        }
        if (switch_user) {
            if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) _exit(126);
        }
        /* After setuid: a credential change clears the parent-death signal. */
        if (opts->die_with_parent) {
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() != parent) _exit(125); /* parent already gone */
        }
        if (opts->cwd && chdir(opts->cwd) != 0) _exit(126);
        execvp(opts->argv[0], (char *const *)opts->argv);
        _exit(127);
    }
    if (opened_fd >= 0) close(opened_fd);
    return pid;
}

int ct_proc_wait(pid_t pid, int timeout_ms, int *status) {
    int64_t deadline = ct_clock_mono_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) return 1;
        if (r < 0 && errno == ECHILD) return 1;
        if (ct_clock_mono_ms() >= deadline) return 0;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int ct_proc_run(const ct_proc_opts *opts, int timeout_ms, ct_error *err) {
    pid_t pid = ct_proc_spawn(opts, err);
    if (pid < 0) return -1;
    int status = 0;
    if (!ct_proc_wait(pid, timeout_ms, &status)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        CT_ERR(err, CT_ERR_RETRIABLE, "%s did not finish within %d ms", opts->argv[0], timeout_ms);
        return -1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        CT_ERR(err, CT_ERR_FATAL, "%s exited with code %d%s", opts->argv[0], code,
               code == 127 ? " (not found in PATH)" : "");
    } else {
        CT_ERR(err, CT_ERR_FATAL, "%s killed by signal %d", opts->argv[0], WTERMSIG(status));
    }
    return -1;
}

int ct_proc_stop(pid_t pid, int sig, int timeout_ms) {
    int status;
    if (kill(pid, sig) != 0 && errno == ESRCH) {
        waitpid(pid, &status, WNOHANG);
        return 0;
    }
    if (ct_proc_wait(pid, timeout_ms, &status)) return 0;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return 0;
}

bool ct_proc_alive(pid_t pid) {
    if (pid <= 0) return false;
    if (kill(pid, 0) != 0 && errno == ESRCH) return false;
    /* A zombie still answers kill(0); it is not alive for our purposes. */
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *rp = strrchr(buf, ')');
    return !(rp && rp[1] == ' ' && rp[2] == 'Z');
}

pid_t ct_proc_read_pidfile(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    long pid = 0;
    int ok = fscanf(f, "%ld", &pid);
    fclose(f);
    if (ok != 1 || pid <= 0 || pid > INT_MAX) return 0;
    return ct_proc_alive((pid_t)pid) ? (pid_t)pid : 0;
}

int ct_proc_write_pidfile(const char *path, pid_t pid, ct_error *err) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)pid);
    return ct_fs_write_file(path, buf, (size_t)n, err);
}

int ct_proc_self_exe(char *out, size_t out_bytes, ct_error *err) {
    ssize_t n = readlink("/proc/self/exe", out, out_bytes - 1);
    if (n < 0 || (size_t)n >= out_bytes - 1) {
        CT_ERR(err, CT_ERR_FATAL, "cannot resolve own executable: %s", strerror(errno));
        return -1;
    }
    out[n] = '\0';
    return 0;
}

int ct_fs_mkdirs(const char *path, unsigned mode, ct_error *err) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        CT_ERR(err, CT_ERR_PERMANENT, "path too long: %s", path);
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, mode) != 0 && errno != EEXIST) {
                CT_ERR(err, CT_ERR_FATAL, "cannot create directory %s: %s", buf, strerror(errno));
                return -1;
            }
            *p = c;
            if (c == '\0') break;
        }
    }
    return 0;
}

int ct_fs_write_file(const char *path, const char *data, size_t len, ct_error *err) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        CT_ERR(err, CT_ERR_FATAL, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            CT_ERR(err, CT_ERR_FATAL, "cannot write %s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        CT_ERR(err, CT_ERR_FATAL, "cannot replace %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

bool ct_fs_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}
