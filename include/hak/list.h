/*
 * hak/list.h — the intrusive doubly linked list every list of the
 * allocator uses: a node (next, prev) embedded in the object, a list that
 * is a pointer to its first node. Zeroed storage is an empty list and an
 * unlinked node, so lists in static storage work before any constructor.
 * O(1) push at the front and removal; no allocation, no lock (the owner of
 * each list says which lock guards it).
 */
#ifndef HAK_LIST_H
#define HAK_LIST_H

#include "hak/common.h"

typedef struct hak_list_node {
  struct hak_list_node *next, *prev;
} hak_list_node_t;

HAK_INLINE void hak_list_push(hak_list_node_t **head, hak_list_node_t *n)
{
  n->prev = NULL;
  n->next = *head;
  if (*head)
    (*head)->prev = n;
  *head = n;
}

/* n must be on the list at *head. Leaves n unlinked (both links NULL). */
HAK_INLINE void hak_list_remove(hak_list_node_t **head, hak_list_node_t *n)
{
  if (n->prev)
    n->prev->next = n->next;
  else
    *head = n->next;
  if (n->next)
    n->next->prev = n->prev;
  n->next = n->prev = NULL;
}

/* Is n on the list at *head? (Pushed and not removed since.) */
HAK_INLINE bool hak_list_linked(hak_list_node_t *const *head, const hak_list_node_t *n)
{
  return n->prev != NULL || *head == n;
}

/* The object a node is embedded in (member: the node's field), or NULL for
 * a NULL node; node is evaluated once. */
#define hak_list_entry(node, type, member) ((type *)hak_list_object_((node), offsetof(type, member)))
HAK_INLINE void *hak_list_object_(const hak_list_node_t *n, size_t offset)
{
  return n ? (void *)((char *)(uintptr_t)n - offset) : NULL;
}

/* The object after obj on its list (member: the list's node field). */
#define hak_list_next(obj, member) hak_list_entry((obj)->member.next, __typeof__(*(obj)), member)

/* for (each object pos on the list at head, linked through member); pos is
 * declared by the caller. Removing pos inside the loop is not allowed:
 * read hak_list_next(pos, member) first and walk by hand. */
#define hak_list_for_each(pos, head, member)                                  \
  for ((pos) = hak_list_entry((head), __typeof__(*(pos)), member); (pos); \
       (pos) = hak_list_next((pos), member))

#endif /* HAK_LIST_H */
