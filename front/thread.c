/*
 * front/thread.c — thread life cycle and process-wide set-up.
 *
 * A thread is set up on its first slow path (a cache miss, or a first free
 * that overflows the empty sentinel cache): the boxes' per-thread state, its
 * statistics, and a pthread key whose destructor gives everything back when
 * the thread exits. free keeps working after that (glibc frees thread
 * resources late): the cache then passes every block straight on. A thread
 * that allocates again after its teardown is set up again.
 *
 * Process set-up (the run-time settings, the key, fork handlers) happens
 * once, in the first thread's set-up or in the library constructor,
 * whichever comes first; it may itself call malloc (pthread_atfork does),
 * which works because the calling thread's boxes are set up before it.
 * The settings are loaded first, from environ as it is then (no getenv:
 * this may run inside the dynamic loader's first malloc), so that the
 * set-up's own mallocs already see them; other threads wait for the
 * set-up to finish before they read any.
 *
 * Fork: the prepare handler takes liburcu's locks and then the
 * allocator's mutexes in the order backend/superslab.c states ("Locks");
 * the parent releases them, the child re-initialises them (and has no
 * purge thread until it starts one of its own). SuperSlabs owned by
 * threads that do not exist in the child stay with those owners (their
 * memory is not reused in the child).
 */
#include "front/front.h"
#include "boxes/unified_cache/unified_cache.h"
#include "boxes/warm_pool/warm_pool.h"
#include "backend/superslab.h"
#include "backend/large.h"
#include "registry/registry.h"
#include "hak/settings.h"
#include "hak/stats.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

__thread uint8_t hak_thread_state;

static pthread_key_t thread_key;
static _Atomic int global_state; /* 0 none, 1 in progress, 2 done */

static void fork_prepare(void)
{
  hak_stats_output_fork_prepare();
  urcu_bp_before_fork();
  backend_fork_prepare_owners();
  registry_fork_prepare_index();
  backend_fork_prepare();
  large_fork_prepare();
  registry_fork_prepare_map();
  hak_stats_fork_prepare();
}

static void fork_parent(void)
{
  hak_stats_fork_parent();
  large_fork_parent();
  backend_fork_parent();
  registry_fork_parent();
  urcu_bp_after_fork_parent();
  hak_stats_output_fork_parent();
}

static void fork_child(void)
{
  hak_stats_output_fork_child();
  hak_purge_fork_child();
  hak_stats_fork_child();
  large_fork_child();
  backend_fork_child();
  registry_fork_child();
  urcu_bp_after_fork_child();
}

static void thread_teardown(void *arg)
{
  (void)arg;
  if (hak_thread_state != HAK_THREAD_LIVE)
    return;
  uc_thread_exit();
  warm_pool_thread_exit();
  if (HAK_STATS)
    hak_stats_thread_fold();
  hak_thread_state = HAK_THREAD_GONE;
}

static void global_setup(void)
{
  int expected = 0;
  if (atomic_compare_exchange_strong(&global_state, &expected, 1)) {
    hak_settings_load(__environ, NULL, NULL);
    hak_stats_describe_variant();
    hak_purge_setup();
    pthread_key_create(&thread_key, thread_teardown);
    uc_set_thread_setup(hak_thread_setup);
    pthread_atfork(fork_prepare, fork_parent, fork_child); /* may malloc */
    atomic_store(&global_state, 2);
    return;
  }
  /* Another thread is setting up (this one cannot be: its re-entrant calls
   * find it LIVE and never get here). */
  while (atomic_load(&global_state) != 2)
    sched_yield();
}

void hak_thread_setup(void)
{
  if (hak_thread_state == HAK_THREAD_LIVE)
    return;
  hak_thread_state = HAK_THREAD_LIVE;
  if (HAK_STATS)
    hak_stats_thread_start();
  uc_thread_init();
  global_setup();
  pthread_setspecific(thread_key, (void *)1);
  hak_purge_thread_maybe_start(); /* a second thread: see front/purge.c */
}

__attribute__((constructor)) static void hakmem_constructor(void)
{
  hak_thread_setup();
  hak_stats_at_start();
}

__attribute__((destructor)) static void hakmem_destructor(void)
{
  hak_stats_at_exit();
}
