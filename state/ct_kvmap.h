/*
 * ct_kvmap: a byte-string hash map (open addressing) whose values may be
 * tombstones, used by ct_store for the pending batch overlay and for the
 * cache of committed values. Entries are owned by the map; pointers it
 * returns are valid until the next put of the same key, clear or destroy.
 * Not thread-safe.
 */
#ifndef CT_KVMAP_H
#define CT_KVMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ct_kvmap ct_kvmap;

ct_kvmap *ct_kvmap_new(void);
void ct_kvmap_destroy(ct_kvmap *m); /* NULL ok */
void ct_kvmap_clear(ct_kvmap *m);

/* 1 when the key is in the map (*tomb says whether as a tombstone), else 0. */
int ct_kvmap_get(const ct_kvmap *m, const uint8_t *k, size_t kn, const uint8_t **v, size_t *vn, bool *tomb);
/* Inserts or replaces; 0, or -1 when out of memory (the map is unchanged). */
int ct_kvmap_put(ct_kvmap *m, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn, bool tomb);

/* Moves every entry of src into dst (replacing dst's entries of the same
 * keys) without copying them, and leaves src empty; 0, or -1 when out of
 * memory (then dst holds part of src and src is empty: dst is a cache). */
int ct_kvmap_move_all(ct_kvmap *dst, ct_kvmap *src);

size_t ct_kvmap_count(const ct_kvmap *m);
/* Bytes of keys and values held (for bounding a cache). */
size_t ct_kvmap_bytes(const ct_kvmap *m);

/* Iteration in no particular order: for (i = 0; i < ct_kvmap_capacity(m); i++)
 * if (ct_kvmap_at(m, i, ...)) ... */
size_t ct_kvmap_capacity(const ct_kvmap *m);
bool ct_kvmap_at(const ct_kvmap *m, size_t i, const uint8_t **k, size_t *kn, const uint8_t **v, size_t *vn, bool *tomb);

#endif
