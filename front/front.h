/*
 * front/front.h — what the front's files share: thread set-up and the
 * library's global state. Nothing below the front includes this.
 */
#ifndef HAK_FRONT_H
#define HAK_FRONT_H

#include "hak/common.h"

enum { HAK_THREAD_NEW = 0, HAK_THREAD_LIVE = 1, HAK_THREAD_GONE = 2 };
extern __thread uint8_t hak_thread_state HAK_INTERNAL;

/* Make the calling thread ready to allocate (every box set up, exit hook
 * armed). Cheap to call again. */
void hak_thread_setup(void) HAK_INTERNAL;

/* The purge thread (front/purge.c). setup: once per process, before any
 * thread could start it; maybe_start: from a thread's set-up, no lock held. */
void hak_purge_setup(void) HAK_INTERNAL;
void hak_purge_thread_maybe_start(void) HAK_INTERNAL;
void hak_purge_fork_child(void) HAK_INTERNAL;
bool hak_purge_thread_running(void) HAK_INTERNAL;

/* Statistics (front/stats.c): the output at exit, as HAKMEM_STATS asks;
 * describe_variant tells the writers below what this variant is. */
void hak_stats_at_start(void) HAK_INTERNAL;
void hak_stats_at_exit(void) HAK_INTERNAL;
void hak_stats_describe_variant(void) HAK_INTERNAL;

/* mallinfo from mallinfo2 (front/info.c): every field saturates at
 * INT_MAX instead of wrapping. */
struct mallinfo;
struct mallinfo2;
struct mallinfo hak_mallinfo_saturate(const struct mallinfo2 *m) HAK_INTERNAL;

/* The standard name `name` for the hak_ function `target` (front/alloc.c,
 * front/info.c): the same code, exported under both names. */
#define HAK_ALIAS(name, target) \
  extern __typeof__(target) name __attribute__((alias(#target), visibility("default")));

#endif /* HAK_FRONT_H */
