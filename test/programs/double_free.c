/*
 * test/programs/double_free.c — the double-free check of a default build
 * (no -Dhardened), seen from a program linked with hakmem.
 *
 * Each case runs in a child process with stderr on a pipe. A double free
 * must end the child with SIGABRT and one line naming free and the block's
 * address; the cases that are not double frees must end normally:
 *   - a small block freed again after another block of its class (in the
 *     bin, not on top of it), for sizes from 1 byte to the medium classes;
 *   - the same after the bin was flushed onto the slab (malloc_trim, and a
 *     flood of frees);
 *   - the only block of a SuperSlab freed again after malloc_trim gave the
 *     SuperSlab back: refused as an invalid pointer (its memory is gone);
 *   - a block freed by another thread: twice by that thread, or once by it
 *     (it then exits, which sends the block back to its owner) and again
 *     by the owner;
 *   - a large block freed again after another large block;
 *   - blocks whose user data hold the check word (read from a freed block)
 *     freed by their thread and by another: no abort, and the allocator
 *     hands out distinct, intact blocks afterwards.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* The compiler must not see through the frees below. */
static void *(*volatile do_malloc)(size_t) = malloc;
static void (*volatile do_free)(void *) = free;

typedef void *(*scenario_fn)(size_t size);

struct outcome {
  int status;
  char err[4096];
  void *addr; /* the block the child freed twice (it reports it) */
};

static int report_fd = -1;

/* The child tells the parent which address the message must name. */
static void report(void *p)
{
  if (write(report_fd, &p, sizeof p) != (ssize_t)sizeof p)
    _exit(90);
}

static void run(scenario_fn fn, size_t size, struct outcome *o)
{
  int err_pipe[2], addr_pipe[2];
  ck_assert_int_eq(pipe(err_pipe), 0);
  ck_assert_int_eq(pipe(addr_pipe), 0);
  fflush(NULL);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    close(err_pipe[0]);
    close(addr_pipe[0]);
    dup2(err_pipe[1], STDERR_FILENO);
    report_fd = addr_pipe[1];
    fn(size);
    _exit(0);
  }
  close(err_pipe[1]);
  close(addr_pipe[1]);
  o->addr = NULL;
  if (read(addr_pipe[0], &o->addr, sizeof o->addr) != (ssize_t)sizeof o->addr)
    o->addr = NULL;
  close(addr_pipe[0]);
  size_t len = 0;
  ssize_t n;
  while ((n = read(err_pipe[0], o->err + len, sizeof o->err - 1 - len)) > 0 ||
         (n < 0 && errno == EINTR))
    if (n > 0)
      len += (size_t)n;
  o->err[len] = '\0';
  close(err_pipe[0]);
  while (waitpid(pid, &o->status, 0) < 0 && errno == EINTR) {
  }
}

/* The child must abort with a line "hakmem: free(): <what> at 0x<addr>",
 * addr the block it reported; message NULL takes any <what>. */
static void expect_abort(scenario_fn fn, size_t size, const char *what, const char *message)
{
  static struct outcome o;
  run(fn, size, &o);
  ck_assert_msg(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT,
                "%s (%zu bytes): no abort (status 0x%x); stderr: %.300s", what, size, o.status, o.err);
  ck_assert_msg(o.addr != NULL, "%s (%zu bytes): the child reported no address", what, size);
  char line[128], at[40];
  snprintf(line, sizeof line, "hakmem: free(): %s", message ? message : "");
  snprintf(at, sizeof at, " at 0x%" PRIxPTR, (uintptr_t)o.addr);
  if (message)
    strcat(line, at);
  ck_assert_msg(strstr(o.err, line) != NULL && strstr(o.err, at) != NULL,
                "%s (%zu bytes): stderr lacks \"%s\" or \"%s\": %.300s", what, size, line, at, o.err);
}

static void expect_double_free(scenario_fn fn, size_t size, const char *what)
{
  expect_abort(fn, size, what, "double free detected");
}

static void expect_no_abort(scenario_fn fn, size_t size, const char *what)
{
  static struct outcome o;
  run(fn, size, &o);
  ck_assert_msg(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0, "%s (%zu bytes): status 0x%x; stderr: %.300s",
                what, size, o.status, o.err);
}

/* ---- Scenarios (in the child) --------------------------------------------- */

/* In the scenarios below, a block allocated first and never freed keeps
 * the SuperSlab in use: a SuperSlab that empties goes back whole, and a
 * free into it is then refused as an invalid pointer (see gone_back). */
static void *keeper(size_t size) { return do_malloc(size); }

/* p, q of one class; free p, q, p. */
static void *nonadjacent(size_t size)
{
  (void)keeper(size);
  char *p = do_malloc(size), *q = do_malloc(size);
  memset(p, 0x5a, size);
  memset(q, 0x5a, size);
  report(p);
  do_free(p);
  do_free(q);
  do_free(p);
  return NULL;
}

/* free p; malloc_trim flushes the bins onto the slabs; free p again. A
 * block allocated before p and kept keeps their SuperSlab in use. */
static void *after_trim(size_t size)
{
  (void)keeper(size);
  char *p = do_malloc(size);
  report(p);
  do_free(p);
  malloc_trim(0);
  do_free(p);
  return NULL;
}

/* free p, then many more blocks of its class, so the bin flushes (the
 * blocks freed first go to their slab); free p again. */
static void *after_flood(size_t size)
{
  enum { N = 4096 };
  static void *v[N];
  (void)keeper(size);
  char *p = do_malloc(size); /* beside the keeper */
  for (int i = 0; i < N; i++)
    v[i] = do_malloc(size);
  report(p);
  do_free(p);
  for (int i = 0; i < N; i++)
    do_free(v[i]);
  do_free(p);
  return NULL;
}

static void *free_twice_thread(void *arg)
{
  char *p = arg, *q = do_malloc(64);
  do_free(p);
  do_free(q);
  do_free(p);
  return NULL;
}

/* Another thread frees the main thread's block, another, and it again. */
static void *other_thread_twice(size_t size)
{
  (void)keeper(size);
  char *p = do_malloc(size);
  report(p);
  pthread_t t;
  pthread_create(&t, NULL, free_twice_thread, p);
  pthread_join(t, NULL);
  return NULL;
}

static void *free_once_thread(void *arg)
{
  do_free(arg);
  return NULL; /* its exit gives the block back to the main thread */
}

/* Another thread frees the block and exits; the owner frees it again. */
static void *other_thread_then_owner(size_t size)
{
  (void)keeper(size);
  char *p = do_malloc(size);
  report(p);
  pthread_t t;
  pthread_create(&t, NULL, free_once_thread, p);
  pthread_join(t, NULL);
  do_free(p);
  return NULL;
}

/* The only block of its SuperSlab, freed and trimmed: its memory went
 * back, and the second free is refused all the same. */
static void *gone_back(size_t size)
{
  char *p = do_malloc(size);
  report(p);
  do_free(p);
  malloc_trim(0);
  do_free(p);
  return NULL;
}

/* ---- Blocks whose data hold the check word --------------------------------- */

/* The check word, read from a block just freed (the second word). */
static uintptr_t check_word(size_t size)
{
  uintptr_t *p = do_malloc(size), *q = do_malloc(size);
  do_free(p);
  uintptr_t w = ((volatile uintptr_t *)p)[1];
  do_free(q);
  return w;
}

enum { LOOKALIKES = 2000 };

static void *free_lookalikes_thread(void *arg)
{
  void **v = arg;
  for (int i = 0; i < LOOKALIKES; i++)
    do_free(v[i]);
  return NULL;
}

/* Blocks of `size` bytes whose second word holds the check word, freed
 * here and by another thread: nothing aborts, and the blocks handed out
 * afterwards are distinct and keep what is written in them. */
static void *lookalikes(size_t size)
{
  const uintptr_t w = check_word(size);
  if (w == 0)
    _exit(91); /* the freed block held no check word: nothing to test */
  static void *v[LOOKALIKES];
  for (int round = 0; round < 2; round++) {
    for (int i = 0; i < LOOKALIKES; i++) {
      uintptr_t *p = do_malloc(size);
      memset(p, 0, size);
      p[1] = w;
      v[i] = p;
    }
    if (round == 0) {
      for (int i = 0; i < LOOKALIKES; i++)
        do_free(v[i]);
    } else {
      pthread_t t;
      pthread_create(&t, NULL, free_lookalikes_thread, v);
      pthread_join(t, NULL);
    }
  }
  for (int i = 0; i < LOOKALIKES; i++) {
    unsigned char *p = do_malloc(size);
    memset(p, i & 0xff, size);
    v[i] = p;
  }
  for (int i = 0; i < LOOKALIKES; i++) {
    const unsigned char *p = v[i];
    if (p[0] != (i & 0xff) || p[size - 1] != (i & 0xff))
      _exit(92); /* a block was handed out twice */
  }
  for (int i = 0; i < LOOKALIKES; i++)
    do_free(v[i]);
  return NULL;
}

/* ---- Tests ------------------------------------------------------------------ */

/* Small and medium classes: the table's, the larger small ones, medium
 * (in a build with -Dmedium=false, 100000 bytes is a large block, which
 * the large-block test covers). */
static const size_t sizes[] = {1, 16, 48, 1000, 2048, 20000,
#if DOUBLE_FREE_MEDIUM
                               100000
#endif
};
#define N_SIZES (sizeof sizes / sizeof sizes[0])

START_TEST(double_free_in_bin)
{
  expect_double_free(nonadjacent, sizes[_i], "free(p); free(q); free(p)");
}
END_TEST

START_TEST(double_free_after_flush)
{
  expect_double_free(after_trim, sizes[_i], "free(p); malloc_trim(0); free(p)");
  if (sizes[_i] <= 2048)
    expect_double_free(after_flood, sizes[_i], "free(p), 4096 frees, free(p)");
}
END_TEST

START_TEST(double_free_other_thread)
{
  expect_double_free(other_thread_twice, sizes[_i], "another thread frees p, q, p");
  expect_double_free(other_thread_then_owner, sizes[_i], "another thread frees p; its owner frees p");
}
END_TEST

START_TEST(double_free_large)
{
  expect_double_free(nonadjacent, (size_t)4 << 20, "free(p); free(q); free(p), large");
}
END_TEST

START_TEST(double_free_after_give_back)
{
  expect_abort(gone_back, sizes[_i], "free(p); malloc_trim(0); free(p), SuperSlab gone", NULL);
}
END_TEST

START_TEST(check_word_in_user_data)
{
  expect_no_abort(lookalikes, sizes[_i], "the check word in user data");
}
END_TEST

int main(void)
{
  Suite *s = suite_create("double_free");
  TCase *tc = tcase_create("default build");
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, double_free_in_bin, 0, N_SIZES);
  tcase_add_loop_test(tc, double_free_after_flush, 0, N_SIZES);
  tcase_add_loop_test(tc, double_free_other_thread, 0, N_SIZES);
  tcase_add_test(tc, double_free_large);
  tcase_add_loop_test(tc, double_free_after_give_back, 0, N_SIZES);
  tcase_add_loop_test(tc, check_word_in_user_data, 0, N_SIZES);
  suite_add_tcase(s, tc);
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_NORMAL);
  int failed = srunner_ntests_failed(r);
  srunner_free(r);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
