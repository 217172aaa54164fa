/* hakmem-ab-exec: runs one command for hakmem-ab and reports its peak RSS.
 *
 * Why it exists: Linux keeps in ru_maxrss the high-water mark of the memory a
 * process had before execve (exec_mmap folds the old mm's peak into the
 * signal struct), so a command forked straight from the Python tool reports at
 * least the tool's own ~20 MiB. This helper is a small C program: the command
 * it forks starts from the helper's few hundred KiB, and ru_maxrss is then the
 * command's own peak (and that of the descendants it waited for).
 *
 * Usage: hakmem-ab-exec FD PRELOAD COMMAND [ARGS...]
 *   Forks; the child sets LD_PRELOAD=PRELOAD (or removes LD_PRELOAD when
 *   PRELOAD is empty) and runs COMMAND (PATH search; exit status 127 with a
 *   message if it cannot). The library is thus loaded into the command only,
 *   never into the helper. The helper waits with wait4() and writes one line to FD:
 *     status=S maxrss_kib=K wall_ns=N
 *   S is the raw wait status, K the child's ru_maxrss, N the time from fork to
 *   the end of wait4 on CLOCK_MONOTONIC. Then the helper exits with the
 *   command's exit status, or with 128+N if a signal N ended it. FD is closed
 *   in the command (close-on-exec). Signals: the helper leaves them at their
 *   defaults; hakmem-ab stops a run by signalling the whole process group.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* wait4, setenv */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: hakmem-ab-exec FD PRELOAD COMMAND [ARGS...]\n");
        return 2;
    }
    char *end;
    errno = 0;
    long fd = strtol(argv[1], &end, 10);
    if (errno || *end || end == argv[1] || fd < 0 || fcntl((int)fd, F_GETFD) < 0) {
        fprintf(stderr, "hakmem-ab-exec: %s is not an open file descriptor\n", argv[1]);
        return 2;
    }
    if (fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0) {
        perror("hakmem-ab-exec: fcntl");
        return 2;
    }

    long long t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        perror("hakmem-ab-exec: fork");
        return 2;
    }
    if (pid == 0) {
        if (argv[2][0] != '\0')
            setenv("LD_PRELOAD", argv[2], 1);
        else
            unsetenv("LD_PRELOAD");
        execvp(argv[3], argv + 3);
        fprintf(stderr, "hakmem-ab-exec: cannot run %s: %s\n", argv[3], strerror(errno));
        _exit(127);
    }

    int status;
    struct rusage ru;
    pid_t got;
    do {
        got = wait4(pid, &status, 0, &ru);
    } while (got < 0 && errno == EINTR);
    long long wall = now_ns() - t0;
    if (got < 0) {
        perror("hakmem-ab-exec: wait4");
        return 2;
    }

    char line[128];
    int n = snprintf(line, sizeof line, "status=%d maxrss_kib=%ld wall_ns=%lld\n",
                     status, ru.ru_maxrss, wall);
    if (write((int)fd, line, (size_t)n) != n)
        perror("hakmem-ab-exec: write");
    close((int)fd);

    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 2;
}
