/*
 * front/info.c — glibc's introspection functions answered with hakmem's
 * own figures: mallinfo2, mallinfo, malloc_stats and malloc_info, and
 * their hak_ names. This file owns what each figure means (below, and
 * doc/hakmem.3, "MEMORY FIGURES"); the counting is the backend's, done
 * when asked (backend_ss_census, large_info): nothing here or there runs
 * on a malloc or free path.
 *
 * The figures (struct mallinfo2; "SuperSlabs in use" are those cut for a
 * class, "empty" the other mapped ones):
 *   arena     bytes of SuperSlabs mapped: 1 MiB each, in use or empty (in
 *             a warm pool, the free tier, or waiting to be unmapped). The
 *             address space reserved for SuperSlabs not handed out yet is
 *             untouched and not counted.
 *   ordblks   free blocks on the SuperSlabs in use (carved or not), plus
 *             the mappings in the large cache.
 *   smblks, usmblks, fsmblks   0 (hakmem has no fastbins; glibc's
 *             usmblks is 0 too).
 *   hblks     live large blocks (above the largest class: a mapping each).
 *   hblkhd    their mappings' bytes that may be resident: from the
 *             mapping's start (a header page) to the block's end. The room
 *             reserved after a block for realloc is address space only.
 *   uordblks  bytes in blocks handed out: blocks out of the slabs times
 *             their class size, plus the live large blocks' usable bytes.
 *             A block cached in a thread's bins counts as in use (glibc
 *             counts its tcache so too). Unlike glibc's, the large blocks
 *             are included.
 *   fordblks  free bytes held: free blocks on the SuperSlabs in use times
 *             their class size, empty SuperSlabs whole, and the resident
 *             bytes of the large cache.
 *   keepcost  what malloc_trim gives back at least: the empty SuperSlabs
 *             in the free tier and the large cache's resident bytes (it
 *             may give back more: idle slabs, threads' caches and pools).
 * So arena = (uordblks less the large part) + (fordblks less the large
 * cache) + the bytes of SuperSlabs in use that no block fits in (slab
 * ends; the guard slab and page of hardened builds), which malloc_info
 * shows. hakmem's own metadata (SuperSlab headers, owners, the registry's
 * tables, the statistics) is in none of them. All figures are kept
 * whatever -Dstats says.
 *
 * Nothing here calls malloc or stdio while it formats: malloc_stats writes
 * a mapped buffer to stderr with write(2); malloc_info formats into one
 * too, then hands it to the caller's FILE.
 */
#include "hakmem.h"
#include "front/front.h"
#include "hak/config.h"
#include "backend/size_class.h"
#include "backend/superslab.h"
#include "backend/large.h"
#include "backend/os.h"
#include "hak/outbuf.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- The figures ------------------------------------------------------- */

typedef struct info {
  hak_ss_census_t ss;
  large_info_t large;
  uint64_t empty;        /* empty SuperSlabs */
  uint64_t small_used;   /* bytes of blocks out */
  uint64_t small_free;   /* bytes of free blocks, empty SuperSlabs included */
  uint64_t free_blocks;  /* on the SuperSlabs in use */
  uint64_t unusable;     /* bytes of SuperSlabs in use no block fits in */
  struct mallinfo2 mi;
} info_t;

/* Free blocks of class c on the SuperSlabs the census saw. */
static uint64_t class_free_blocks(const hak_ss_census_t *ss, unsigned c)
{
  uint64_t cap = ss->ss[c] * backend_ss_capacity(c);
  return cap > ss->used[c] ? cap - ss->used[c] : 0; /* a count read mid-change */
}

static void info_collect(info_t *in)
{
  memset(in, 0, sizeof *in);
  backend_ss_census(&in->ss);
  large_info(&in->large);
  in->empty = in->ss.mapped - in->ss.in_use;
  in->small_free = in->empty * HAK_SS_SIZE;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    if (!in->ss.ss[c])
      continue;
    const uint64_t size = hak_class_size(c), cap = backend_ss_capacity(c);
    const uint64_t free_blocks = class_free_blocks(&in->ss, c);
    in->small_used += in->ss.used[c] * size;
    in->small_free += free_blocks * size;
    in->free_blocks += free_blocks;
    in->unusable += in->ss.ss[c] * (HAK_SS_SIZE - cap * size);
  }
  const uint64_t trimmable = in->ss.free_tier < in->empty ? in->ss.free_tier : in->empty;
  struct mallinfo2 *m = &in->mi;
  m->arena = in->ss.mapped * HAK_SS_SIZE;
  m->ordblks = in->free_blocks + in->large.cached;
  m->hblks = in->large.live;
  m->hblkhd = in->large.live_bytes;
  m->uordblks = in->small_used + in->large.live_usable;
  m->fordblks = in->small_free + in->large.cached_bytes;
  m->keepcost = trimmable * HAK_SS_SIZE + in->large.cached_bytes;
}

HAK_EXPORT struct mallinfo2 hak_mallinfo2(void)
{
  info_t in;
  info_collect(&in);
  return in.mi;
}

static int saturate(size_t v) { return v > (size_t)INT_MAX ? INT_MAX : (int)v; }

struct mallinfo hak_mallinfo_saturate(const struct mallinfo2 *m)
{
  struct mallinfo r;
  r.arena = saturate(m->arena);
  r.ordblks = saturate(m->ordblks);
  r.smblks = saturate(m->smblks);
  r.hblks = saturate(m->hblks);
  r.hblkhd = saturate(m->hblkhd);
  r.usmblks = saturate(m->usmblks);
  r.fsmblks = saturate(m->fsmblks);
  r.uordblks = saturate(m->uordblks);
  r.fordblks = saturate(m->fordblks);
  r.keepcost = saturate(m->keepcost);
  return r;
}

HAK_EXPORT struct mallinfo hak_mallinfo(void)
{
  struct mallinfo2 m = hak_mallinfo2();
  return hak_mallinfo_saturate(&m);
}

/* ---- Text into a mapped buffer ------------------------------------------ */

#define INFO_BUF_SIZE (64u * 1024u) /* 97 classes of 150 bytes, and the rest */

static bool out_open(hak_out_t *o)
{
  void *m = mmap(NULL, INFO_BUF_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  o->p = m == MAP_FAILED ? NULL : m;
  o->len = 0;
  o->cap = INFO_BUF_SIZE;
  return o->p != NULL;
}

static void out_close(hak_out_t *o) { munmap(o->p, o->cap); }

/* ---- malloc_stats ------------------------------------------------------- */

static void stats_line(hak_out_t *o, const char *name, unsigned long long v)
{
  hak_out_str(o, name);
  hak_out_u64_right(o, v, 12);
  hak_out_str(o, "\n");
}

static void format_stats(hak_out_t *o, const info_t *in)
{
  const struct mallinfo2 *m = &in->mi;
  hak_out_str(o, "hakmem " HAK_VERSION " (variant " HAK_VARIANT ")\n");
  hak_out_str(o, "SuperSlabs (small and medium blocks):\n");
  stats_line(o, "system bytes     = ", m->arena);
  stats_line(o, "in use bytes     = ", in->small_used);
  stats_line(o, "free bytes       = ", in->small_free);
  stats_line(o, "superslabs       = ", in->ss.mapped);
  stats_line(o, "  in use         = ", in->ss.in_use);
  stats_line(o, "  empty          = ", in->empty);
  bool head = false;
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    if (!in->ss.ss[c])
      continue;
    if (!head) {
      hak_out_str(o, "class    size  superslabs      in use        free\n");
      head = true;
    }
    hak_out_u64_right(o, c, 5);
    hak_out_u64_right(o, hak_class_size(c), 8);
    hak_out_u64_right(o, in->ss.ss[c], 12);
    hak_out_u64_right(o, in->ss.used[c], 12);
    hak_out_u64_right(o, class_free_blocks(&in->ss, c), 12);
    hak_out_str(o, "\n");
  }
  hak_out_str(o, "Large blocks (a mapping each):\n");
  stats_line(o, "blocks           = ", m->hblks);
  stats_line(o, "system bytes     = ", m->hblkhd);
  stats_line(o, "in use bytes     = ", in->large.live_usable);
  stats_line(o, "cached mappings  = ", in->large.cached);
  stats_line(o, "cached bytes     = ", in->large.cached_bytes);
  hak_out_str(o, "Total (incl. large blocks):\n");
  stats_line(o, "system bytes     = ", m->arena + m->hblkhd);
  stats_line(o, "in use bytes     = ", m->uordblks);
  stats_line(o, "free bytes       = ", m->fordblks);
  stats_line(o, "trimmable bytes  = ", m->keepcost);
}

HAK_EXPORT void hak_malloc_stats(void)
{
  hak_out_t o;
  if (!out_open(&o))
    return;
  info_t in;
  info_collect(&in);
  format_stats(&o, &in);
  int saved_errno = errno;
  for (size_t done = 0; done < o.len;) {
    ssize_t w = write(STDERR_FILENO, o.p + done, o.len - done);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    done += (size_t)w;
  }
  errno = saved_errno;
  out_close(&o);
}

/* ---- malloc_info -------------------------------------------------------- */

static void xml_attr(hak_out_t *o, const char *name, unsigned long long v)
{
  hak_out_str(o, " ");
  hak_out_str(o, name);
  hak_out_str(o, "=\"");
  hak_out_u64(o, v);
  hak_out_str(o, "\"");
}

static void xml_total(hak_out_t *o, const char *type, unsigned long long size)
{
  hak_out_str(o, "<total type=\"");
  hak_out_str(o, type);
  hak_out_str(o, "\"");
  xml_attr(o, "size", size);
  hak_out_str(o, "/>\n");
}

static void format_xml(hak_out_t *o, const info_t *in)
{
  const struct mallinfo2 *m = &in->mi;
  hak_out_str(o, "<malloc version=\"hakmem-1\">\n");
  hak_out_str(o, "<allocator name=\"hakmem\" release=\"" HAK_VERSION "\" variant=\"" HAK_VARIANT "\"/>\n");
  hak_out_str(o, "<mallinfo2");
  xml_attr(o, "arena", m->arena);
  xml_attr(o, "ordblks", m->ordblks);
  xml_attr(o, "smblks", m->smblks);
  xml_attr(o, "hblks", m->hblks);
  xml_attr(o, "hblkhd", m->hblkhd);
  xml_attr(o, "usmblks", m->usmblks);
  xml_attr(o, "fsmblks", m->fsmblks);
  xml_attr(o, "uordblks", m->uordblks);
  xml_attr(o, "fordblks", m->fordblks);
  xml_attr(o, "keepcost", m->keepcost);
  hak_out_str(o, "/>\n<superslabs");
  xml_attr(o, "size", HAK_SS_SIZE);
  xml_attr(o, "mapped", in->ss.mapped);
  xml_attr(o, "inuse", in->ss.in_use);
  xml_attr(o, "empty", in->empty);
  xml_attr(o, "freetier", in->ss.free_tier);
  hak_out_str(o, ">\n");
  for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
    if (!in->ss.ss[c])
      continue;
    hak_out_str(o, "<class");
    xml_attr(o, "number", c);
    xml_attr(o, "size", hak_class_size(c));
    xml_attr(o, "superslabs", in->ss.ss[c]);
    xml_attr(o, "inuse", in->ss.used[c]);
    xml_attr(o, "free", class_free_blocks(&in->ss, c));
    hak_out_str(o, "/>\n");
  }
  hak_out_str(o, "</superslabs>\n<large");
  xml_attr(o, "blocks", m->hblks);
  xml_attr(o, "usable", in->large.live_usable);
  xml_attr(o, "mapped", m->hblkhd);
  xml_attr(o, "cached", in->large.cached);
  xml_attr(o, "cachedbytes", in->large.cached_bytes);
  hak_out_str(o, "/>\n");
  xml_total(o, "system", m->arena + m->hblkhd);
  xml_total(o, "inuse", m->uordblks);
  xml_total(o, "free", m->fordblks);
  xml_total(o, "unusable", in->unusable);
  xml_total(o, "trimmable", m->keepcost);
  hak_out_str(o, "</malloc>\n");
}

HAK_EXPORT int hak_malloc_info(int options, FILE *fp)
{
  if (options != 0) {
    errno = EINVAL;
    return -1;
  }
  hak_out_t o;
  if (!out_open(&o)) {
    errno = ENOMEM;
    return -1;
  }
  info_t in;
  info_collect(&in);
  format_xml(&o, &in);
  int r = fwrite(o.p, 1, o.len, fp) == o.len ? 0 : -1;
  out_close(&o);
  return r;
}

/* ---- The standard names (see front/alloc.c) --------------------------- */

#ifndef HAK_NO_STD_NAMES
HAK_ALIAS(mallinfo2, hak_mallinfo2)
HAK_ALIAS(mallinfo, hak_mallinfo)
HAK_ALIAS(malloc_stats, hak_malloc_stats)
HAK_ALIAS(malloc_info, hak_malloc_info)
#endif
