/*
 * hak/debug.h — run-time assertions of the -Ddebug_checks=true build.
 *
 * HAK_ASSERT(cond) aborts with the file, the line and the condition when
 * cond is false. In other builds it compiles to nothing and cond is never
 * evaluated, so a condition must not have side effects. HAK_DEBUG_ONLY(x)
 * keeps x (a statement or a declaration) in checking builds only.
 *
 * The checks: lock-held assertions in every *_locked function (hak/lock.h),
 * validators of a SuperSlab and of a slab (backend/slab.c: counts
 * agree with the free lists and the room mask), and the invariants the
 * code states in comments. They walk free lists, so a checking build is
 * much slower; CI runs the unit, stress and whole-program suites in it.
 */
#ifndef HAK_DEBUG_H
#define HAK_DEBUG_H

#include "hak/common.h"
#include "hak/config.h"

#if HAK_DEBUG_CHECKS
/* Writes "hakmem: assertion failed: FILE:LINE: COND" with write(2) only,
 * then abort()s (backend/os.c). */
__attribute__((noreturn, cold)) void hak_assert_fail(const char *file, int line, const char *cond) HAK_INTERNAL;
#define HAK_ASSERT(cond) (hak_likely(cond) ? (void)0 : hak_assert_fail(__FILE__, __LINE__, #cond))
#define HAK_DEBUG_ONLY(...) __VA_ARGS__
#else
#define HAK_ASSERT(cond) ((void)sizeof(!(cond)))
#define HAK_DEBUG_ONLY(...)
#endif

#endif /* HAK_DEBUG_H */
