/*
 * ct_hidx: the one open-addressing hash index of the code base, and the one
 * hash function for tables keyed by bytes (ct_hidx_hash).
 *
 * Slots of {hash, item pointer}, linear probing, capacity a power of two,
 * backward-shift removal (no tombstones). The index holds pointers to the
 * caller's items and never looks inside one: the caller's eq compares keys,
 * and a probe calls it only when the stored hash matches. The caller also
 * decides when to grow (each map keeps its own load limit: ct_memkv half
 * full, ct_kvmap three quarters) and owns the items (ct_hidx_fini and
 * ct_hidx_clear free none).
 *
 * Pure (no I/O, no clock, no randomness), so the domain's test double
 * (domain/ct_memkv) and the task store's maps (state/ct_kvmap) share it; it
 * lives in the ct_error library, the one runtime library the domain links.
 * The struct is public and the probe is inline so it compiles into each
 * map's own code with its eq inlined: it is the hot path of every state
 * read. Not thread-safe.
 */
#ifndef CT_HIDX_H
#define CT_HIDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct ct_hidx_slot {
    uint64_t hash;
    void *item; /* NULL: the slot is empty */
} ct_hidx_slot;

typedef struct ct_hidx {
    ct_hidx_slot *slots;
    size_t cap;   /* a power of two */
    size_t count; /* slots in use */
} ct_hidx;

/* An empty index of cap slots (a power of two). 0, or -1 when out of
 * memory. */
int ct_hidx_init(ct_hidx *ix, size_t cap);
/* Releases the slots (not the items). Accepts a zeroed index. */
void ct_hidx_fini(ct_hidx *ix);
/* Empties every slot (the items stay the caller's). */
void ct_hidx_clear(ct_hidx *ix);
/* Doubles the capacity, every item kept. 0, or -1 when out of memory (the
 * index is unchanged). */
int ct_hidx_grow(ct_hidx *ix);
/* Empties slot i (in use) and shifts back the probe chain behind it, so no
 * tombstone is needed. Slot indexes found before are stale afterwards. */
void ct_hidx_remove(ct_hidx *ix, size_t i);

/* Whether item has the key (key, key_len). */
typedef bool (*ct_hidx_eq_fn)(const void *item, const void *key, size_t key_len);

/* The slot holding the item of hash h that eq accepts for the key, or else
 * the empty slot where it would go (slots[i].item == NULL). The index must
 * never be full (the caller's load limit). */
static inline size_t ct_hidx_find(const ct_hidx *ix, uint64_t h, ct_hidx_eq_fn eq, const void *key, size_t key_len) {
    size_t mask = ix->cap - 1, i = h & mask;
    for (;;) {
        const ct_hidx_slot *s = &ix->slots[i];
        if (!s->item || (s->hash == h && eq(s->item, key, key_len))) return i;
        i = (i + 1) & mask;
    }
}

/* Puts item of hash h in slot i (from ct_hidx_find for h), replacing what
 * was there (the caller's to release). */
static inline void ct_hidx_set(ct_hidx *ix, size_t i, uint64_t h, void *item) {
    if (!ix->slots[i].item) ix->count++;
    ix->slots[i] = (ct_hidx_slot){.hash = h, .item = item};
}

/* The table hash: eight bytes at a time (keys are ids and state keys of
 * 10..200 bytes), then a final mix so the low bits, which pick the slot,
 * depend on every byte. Not stable across versions and not for anything
 * stored (that is ct_hash64), nor for keys an attacker may choose to
 * collide. */
static inline uint64_t ct_hidx_hash(const void *key, size_t n) {
    const uint8_t *k = key;
    uint64_t h = 0x243f6a8885a308d3ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, k + i, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    memcpy(&w, k + i, n - i);
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

#endif
