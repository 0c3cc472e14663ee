/*
 * ct_memkv: an in-memory ordered key-value map implementing ct_kv_port.
 *
 * The domain's test double (tests, property simulation, benchmark (a)), not
 * a store: nothing is durable. A hash index serves point reads; order
 * (seek) is kept per key tag (first byte) in a skip list built on the
 * first seek within that tag. A seek must name a non-empty prefix and stay
 * within one tag, as every seek of the state layout does. Deterministic:
 * its shape depends only on the sequence of operations (fixed-seed skip
 * list levels), and it never influences the core's results anyway.
 *
 * Ownership: the map copies keys and values it is given. Not thread-safe.
 */
#ifndef CT_MEMKV_H
#define CT_MEMKV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ct_effects.h"
#include "ct_error.h"
#include "ct_kv.h"

typedef struct ct_memkv ct_memkv;

/* NULL when out of memory. */
ct_memkv *ct_memkv_new(void);
/* Accepts NULL. */
void ct_memkv_destroy(ct_memkv *kv);

/* 0, or -1 with a FATAL error when out of memory, for an empty key, or
 * beyond the key/value limits. */
int ct_memkv_put(ct_memkv *kv, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len, ct_error *err);
/* Removes key if present. */
void ct_memkv_del(ct_memkv *kv, const uint8_t *key, size_t key_len);
/* Applies every mutation of fx. 0 or -1 (as put). */
int ct_memkv_apply(ct_memkv *kv, const ct_effects *fx, ct_error *err);

/* The port reading this map; valid while kv lives. */
ct_kv_port ct_memkv_port(ct_memkv *kv);

size_t ct_memkv_count(const ct_memkv *kv);

/* Visits every pair in key order (sorting a snapshot: for tests, not hot
 * paths); stops when fn returns non-zero and returns that value; -1 when
 * out of memory. */
typedef int (*ct_memkv_visit_fn)(void *ud, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len);
int ct_memkv_foreach(const ct_memkv *kv, ct_memkv_visit_fn fn, void *ud);

/* True if both maps hold the same pairs, ignoring keys for which skip
 * returns true (skip may be NULL). */
bool ct_memkv_equal(const ct_memkv *a, const ct_memkv *b, bool (*skip)(const uint8_t *key, size_t key_len));

#endif
