/*
 * hak/link.h — how a free block stores the link to the next free block,
 * for every free list: a slab's (backend) and a thread's bins (unified
 * cache). One encoder, so that the two lists cannot drift apart.
 *
 * Plain builds store the next pointer as it is. Hardened builds store
 * next ^ secret ^ (address of the block >> 4), with a secret per list
 * owner (each slab, each thread's bins): a stray write or a leaked pointer
 * cannot forge a link that decodes to a chosen address, and the address
 * term makes one pointer encode differently in every block. The encoding
 * is its own inverse: the same call decodes.
 */
#ifndef HAK_LINK_H
#define HAK_LINK_H

#include "hak/common.h"
#include "hak/config.h"

HAK_INLINE void *hak_link_code(uintptr_t secret, const void *at, void *v)
{
#if HAK_HARDENED
  return (void *)((uintptr_t)v ^ secret ^ ((uintptr_t)at >> 4));
#else
  (void)secret;
  (void)at;
  return v;
#endif
}

#endif /* HAK_LINK_H */
