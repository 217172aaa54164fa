/*
 * hak/tsan.h — annotations that tell ThreadSanitizer about orderings it
 * cannot see (liburcu's grace periods). They compile to nothing unless the
 * build is instrumented with -fsanitize=thread.
 */
#ifndef HAK_TSAN_H
#define HAK_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define HAK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define HAK_TSAN 1
#endif
#endif

#ifdef HAK_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define HAK_TSAN_ACQUIRE(a) __tsan_acquire((void *)(a))
#define HAK_TSAN_RELEASE(a) __tsan_release((void *)(a))
#else
#define HAK_TSAN_ACQUIRE(a) ((void)0)
#define HAK_TSAN_RELEASE(a) ((void)0)
#endif

#endif /* HAK_TSAN_H */
