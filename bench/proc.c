// Child processes and the files beside the binary (proc.h).
#include "proc.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int fb_self_exe(const char *prog, char *buf, size_t size) {
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0 || (size_t)n >= size - 1) {
        fprintf(stderr, "%s: cannot resolve /proc/self/exe: %s\n", prog, strerror(errno));
        return -1;
    }
    buf[n] = '\0';
    return 0;
}

void fb_plot_script(const char *exe, const char *script, char *buf, size_t size) {
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", exe);
    snprintf(buf, size, "%s/../plots/%s", dirname(copy), script);
    char real[PATH_MAX];
    if (realpath(buf, real)) snprintf(buf, size, "%s", real);
}

const char *fb_python(void) { return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3"; }

int fb_run_child(char *const argv[], const fb_child_io *io) {
    int pipefd[2] = { -1, -1 };
    if (io->capture && pipe(pipefd) != 0) return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        for (const char *const *e = io->env; e && *e; e++) putenv((char *)*e);
        int out = io->capture ? pipefd[1] : io->log ? open(io->log, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
        int err = io->quiet ? open("/dev/null", O_WRONLY) : io->log && !io->capture ? out : -1;
        if (io->log && out < 0) {
            fprintf(stderr, "cannot write %s: %s\n", io->log, strerror(errno));
            _exit(127);
        }
        if (out >= 0) dup2(out, STDOUT_FILENO);
        if (err >= 0) dup2(err, STDERR_FILENO);
        if (io->capture) close(pipefd[0]);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (io->capture) { // read all of it (the child must not block on a full pipe), keep what fits
        close(pipefd[1]);
        size_t used = 0;
        char chunk[4096];
        ssize_t n;
        while ((n = read(pipefd[0], chunk, sizeof chunk)) != 0) {
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) break;
            const size_t room = io->capture_size - 1 - used, keep = (size_t)n < room ? (size_t)n : room;
            memcpy(io->capture + used, chunk, keep);
            used += keep;
        }
        io->capture[used] = '\0';
        close(pipefd[0]);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

void fb_print_tail(const char *path, int lines) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char ring[8][512];
    int n = 0;
    if (lines > 8) lines = 8;
    if (lines < 1) lines = 1;
    while (fgets(ring[n % lines], sizeof ring[0], f)) n++;
    fclose(f);
    for (int i = n > lines ? n - lines : 0; i < n; i++) {
        char *line = ring[i % lines];
        printf("      %s%s", line, strchr(line, '\n') ? "" : "\n");
    }
}
