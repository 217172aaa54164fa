/*
 * front/purge.c — the purge thread: runs the backend's global decay pass
 * (backend_purge) and the large-block cache's age check (large_purge)
 * every purge delay, so that memory left unused by threads
 * that stopped calling the allocator still goes back to the OS within a
 * bounded time (about three delays, at most a second more while it backs
 * off). Threads that do call the allocator run their own passes from their
 * slow paths; this thread covers the quiet ones.
 *
 * Rules, because a thread inside a preloaded library is visible to the
 * program:
 *   - it starts only once a second thread has allocated: a single-threaded
 *     process never has it (unshare(CLONE_NEWUSER), setns and the like
 *     refuse a multi-threaded caller);
 *   - it leaves again once only one thread has been left allocating for a
 *     few passes with nothing to purge, and comes back when needed;
 *   - it is detached, blocks every signal, and holds no lock while it
 *     sleeps: exit() ends it like any thread, at no wait;
 *   - a fork child does not have it; the child starts its own the same way;
 *   - the purge_thread setting off (HAKMEM_PURGE_THREAD=0), or
 *     -Dpurge_thread=false, keeps it off: the threads' own slow paths then
 *     run the global pass when it is overdue.
 * The delay is the purge_delay_ms setting (hak/settings.h), handed to the
 * backend once at set-up.
 * It never calls malloc itself: the passes only take the allocator's locks
 * and make system calls.
 */
#include "front/front.h"
#include "backend/superslab.h"
#include "backend/os.h"
#include "backend/large.h"
#include "hak/config.h"
#include "hak/settings.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

enum { PURGE_OFF = 0, PURGE_STARTING = 1, PURGE_RUNNING = 2, PURGE_DISABLED = 3 };
static _Atomic int purge_state;

/* The longest sleep between two passes when there is nothing to purge. */
#define PURGE_SLEEP_MAX_MS 500u
/* Passes with one thread left and nothing pending before the thread leaves. */
#define PURGE_QUIET_PASSES 4u

static void sleep_ms(unsigned ms)
{
  struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

static void *purge_main(void *arg)
{
  (void)arg;
  int saved = errno;
  pthread_setname_np(pthread_self(), "hakmem-purge");
  errno = saved;
  const unsigned delay = backend_purge_delay() ? backend_purge_delay() : 1u;
  unsigned nap = delay, quiet = 0;
  for (;;) {
    sleep_ms(nap);
    uint32_t now = hak_clock_ms();
    bool pending = backend_purge(now);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    large_purge((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
    if (!pending && backend_live_owners() <= 1) {
      if (++quiet >= PURGE_QUIET_PASSES) {
        atomic_store(&purge_state, PURGE_OFF);
        return NULL;
      }
    } else {
      quiet = 0;
    }
    if (pending)
      nap = delay;
    else if (nap < PURGE_SLEEP_MAX_MS)
      nap = nap * 2 < PURGE_SLEEP_MAX_MS ? nap * 2 : PURGE_SLEEP_MAX_MS;
    if (nap < delay)
      nap = delay;
  }
}

void hak_purge_setup(void)
{
  backend_set_purge_delay((unsigned)hak_settings_get(HAK_SET_purge_delay_ms));
  if (!HAK_PURGE_THREAD || !hak_settings_get(HAK_SET_purge_thread))
    atomic_store(&purge_state, PURGE_DISABLED);
}

void hak_purge_thread_maybe_start(void)
{
  if (atomic_load_explicit(&purge_state, memory_order_relaxed) != PURGE_OFF || backend_live_owners() < 2)
    return;
  int expected = PURGE_OFF;
  if (!atomic_compare_exchange_strong(&purge_state, &expected, PURGE_STARTING))
    return;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64u * 1024u);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old); /* the new thread inherits it */
  pthread_t t;
  int saved = errno;
  int rc = pthread_create(&t, &attr, purge_main, NULL);
  errno = saved;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  atomic_store(&purge_state, rc == 0 ? PURGE_RUNNING : PURGE_OFF);
}

void hak_purge_fork_child(void)
{
  int st = atomic_load(&purge_state);
  if (st == PURGE_RUNNING || st == PURGE_STARTING)
    atomic_store(&purge_state, PURGE_OFF);
}

bool hak_purge_thread_running(void) { return atomic_load(&purge_state) == PURGE_RUNNING; }
