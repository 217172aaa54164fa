/*
 * purge_thread: the purge thread and the decay by time, as a process sees
 * them (linked with hakmem).
 *   - a single-threaded process has no purge thread;
 *   - once a second thread allocates, one exists ("hakmem-purge"), unless
 *     HAKMEM_PURGE_THREAD=0 or the build says -Dpurge_thread=false;
 *   - 64 MiB of small blocks a thread freed go back to the OS within a
 *     second while that thread and the main one stay quiet; with a purge
 *     delay of 1.5 s or more (HAKMEM_PURGE_DELAY_MS) they are still there
 *     1.5 s later (a quiet owner gets help after two delays; between 0.25
 *     and 1.5 s, nothing is checked);
 *   - a fork child has no purge thread, allocates, frees and exits;
 *   - the process exits at once (meson's timeout catches a hang).
 * What is in force (the build's options and the run-time settings) is
 * read from hak_config_string().
 * Reads /proc with open/read only: no stdio, so no malloc while it measures.
 */
#include "hakmem.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

static void fail(const char *what)
{
  fprintf(stderr, "purge_thread: FAIL: %s\n", what);
  exit(1);
}

static long read_long_field(const char *path, int field)
{
  char buf[256];
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return -1;
  buf[n] = 0;
  char *p = buf;
  for (int i = 0; i < field; i++) {
    p = strchr(p, ' ');
    if (!p)
      return -1;
    p++;
  }
  return strtol(p, NULL, 10);
}

static long rss_kib(void) { return read_long_field("/proc/self/statm", 1) * (sysconf(_SC_PAGESIZE) / 1024); }

/* Threads of this process, and whether one of them is the purge thread. */
static int count_threads(int *purger)
{
  int n = 0;
  *purger = 0;
  DIR *d = opendir("/proc/self/task");
  if (!d)
    fail("opendir /proc/self/task");
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    n++;
    char path[300], comm[64] = {0};
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
      ssize_t r = read(fd, comm, sizeof comm - 1);
      close(fd);
      if (r > 0 && strncmp(comm, "hakmem-purge", 12) == 0)
        (*purger)++;
    }
  }
  closedir(d);
  return n;
}

static void sleep_ms(long ms)
{
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

enum { BLOCKS = 64 * 1024 * 1024 / 256 };
static void **blocks;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int phase; /* 1: the worker freed everything; 2: it may exit */

static void *worker(void *arg)
{
  (void)arg;
  for (long i = 0; i < BLOCKS; i++) {
    blocks[i] = malloc(16 + (size_t)(i % 31) * 16);
    if (!blocks[i])
      fail("malloc");
    memset(blocks[i], 1, 16);
  }
  for (long i = 0; i < BLOCKS; i++)
    free(blocks[i]);
  pthread_mutex_lock(&mu);
  phase = 1;
  pthread_cond_broadcast(&cv);
  while (phase != 2)
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  return NULL;
}

int main(int argc, char **argv)
{
  const char *cfg = hak_config_string();
  const int want = strstr(cfg, "purge_thread=1") != NULL;
  const char *d = strstr(cfg, "purge_delay_ms=");
  const long delay_ms = d ? strtol(d + strlen("purge_delay_ms="), NULL, 10) : -1;
  if (delay_ms < 0)
    fail("no purge_delay_ms in hak_config_string()");
  const int short_delay = delay_ms <= 250, long_delay = delay_ms >= 1500;

  for (int i = 0; i < 100000; i++)
    free(malloc((size_t)(i % 2000) + 1));
  int purger, n = count_threads(&purger);
  if (n != 1 || purger)
    fail("a single-threaded process has another thread");

  blocks = calloc(BLOCKS, sizeof(void *));
  if (!blocks)
    fail("calloc");
  long before = rss_kib();
  pthread_t t;
  if (pthread_create(&t, NULL, worker, NULL) != 0)
    fail("pthread_create");
  pthread_mutex_lock(&mu);
  while (phase != 1)
    pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
  long busy = rss_kib();
  /* Both threads quiet now: only the purge thread (or nobody) can act. */
  long idle = busy;
  for (int waited = 0; waited < 1500; waited += 50) {
    sleep_ms(50);
    idle = rss_kib();
    if (idle < before + 16 * 1024)
      break;
  }
  n = count_threads(&purger);
  fprintf(stderr, "purge_thread: %s, threads %d, purger %d, RSS KiB before %ld busy %ld idle %ld\n",
          cfg, n, purger, before, busy, idle);
  if (want) {
    if (purger != 1)
      fail("no purge thread once a second thread allocated");
    if (short_delay && idle > before + 16 * 1024)
      fail("64 MiB freed by a quiet thread still resident after 1.5 s");
    if (long_delay && idle < busy - 16 * 1024)
      fail("memory went back within 1.5 s though the purge delay is 1.5 s or more");
  } else if (purger) {
    fail("a purge thread though it is switched off");
  }

  pid_t pid = fork();
  if (pid < 0)
    fail("fork");
  if (pid == 0) {
    int p2, n2 = count_threads(&p2);
    if (n2 != 1 || p2)
      _exit(2);
    for (int i = 0; i < 10000; i++)
      free(malloc((size_t)(i % 5000) + 1));
    _exit(0);
  }
  int st;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail("the fork child saw another thread, or failed");

  pthread_mutex_lock(&mu);
  phase = 2;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  pthread_join(t, NULL);
  free(blocks);
  (void)argc, (void)argv;
  fprintf(stderr, "purge_thread: ok\n");
  return 0;
}
