/*
 * hak/outbuf.h — text into a buffer the caller owns: the one way the
 * library formats its own output (the statistics, malloc_stats and
 * malloc_info, the settings table and its warnings). No malloc and no
 * stdio, so it works inside the allocator and before main.
 *
 * Invariant: len never passes cap; what does not fit is dropped, never
 * written past the end. Nothing is NUL-terminated: the caller writes
 * p[0..len) where it goes.
 */
#ifndef HAK_OUTBUF_H
#define HAK_OUTBUF_H

#include "hak/common.h"

#include <string.h>

typedef struct hak_out {
  char *p;
  size_t len, cap;
} hak_out_t;

static inline void hak_out_mem(hak_out_t *o, const char *s, size_t n)
{
  for (size_t i = 0; i < n && o->len < o->cap; i++)
    o->p[o->len++] = s[i];
}

static inline void hak_out_str(hak_out_t *o, const char *s) { hak_out_mem(o, s, strlen(s)); }

/* Spaces until the text since offset from is width bytes long (a field
 * written left-aligned). */
static inline void hak_out_pad(hak_out_t *o, size_t from, size_t width)
{
  while (o->len - from < width && o->len < o->cap)
    o->p[o->len++] = ' ';
}

/* s right-aligned in width columns. */
static inline void hak_out_str_right(hak_out_t *o, const char *s, size_t width)
{
  for (size_t n = strlen(s); n < width && o->len < o->cap; n++)
    o->p[o->len++] = ' ';
  hak_out_str(o, s);
}

/* The decimal digits of v at the end of b[24]; returns where they start. */
static inline char *hak_out_digits(char b[24], unsigned long long v)
{
  char *d = b + 23;
  *d = '\0';
  do
    *--d = (char)('0' + v % 10);
  while (v /= 10);
  return d;
}

static inline void hak_out_u64(hak_out_t *o, unsigned long long v)
{
  char b[24];
  hak_out_str(o, hak_out_digits(b, v));
}

static inline void hak_out_i64(hak_out_t *o, long long v)
{
  if (v < 0)
    hak_out_str(o, "-");
  hak_out_u64(o, v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v);
}

/* v right-aligned in width columns. */
static inline void hak_out_u64_right(hak_out_t *o, unsigned long long v, size_t width)
{
  char b[24];
  hak_out_str_right(o, hak_out_digits(b, v), width);
}

#endif /* HAK_OUTBUF_H */
