/*
 * ct_memkv: an in-memory ordered key-value map implementing ct_kv_port.
 *
 * The domain's test double (tests, property simulation, benchmark (a)), not
 * a store: nothing is durable. A skip list gives the order (seek), a hash
 * index the point reads. Deterministic: its shape depends only on the
 * sequence of operations (the skip list's levels come from a fixed-seed
 * generator), and it never influences the core's results anyway.
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

/* 0, or -1 with a FATAL error when out of memory or beyond the key/value
 * limits. */
int ct_memkv_put(ct_memkv *kv, const uint8_t *key, size_t key_len, const uint8_t *val, size_t val_len,
                 ct_error *err);
/* Removes key if present. */
void ct_memkv_del(ct_memkv *kv, const uint8_t *key, size_t key_len);
/* Applies every mutation of fx. 0 or -1 (as put). */
int ct_memkv_apply(ct_memkv *kv, const ct_effects *fx, ct_error *err);

/* The port reading this map; valid while kv lives. */
ct_kv_port ct_memkv_port(ct_memkv *kv);

size_t ct_memkv_count(const ct_memkv *kv);

/* Visits every pair in key order; stops when fn returns non-zero and
 * returns that value. */
typedef int (*ct_memkv_visit_fn)(void *ud, const uint8_t *key, size_t key_len, const uint8_t *val,
                                 size_t val_len);
int ct_memkv_foreach(const ct_memkv *kv, ct_memkv_visit_fn fn, void *ud);

/* True if both maps hold the same pairs, ignoring keys for which skip
 * returns true (skip may be NULL). */
bool ct_memkv_equal(const ct_memkv *a, const ct_memkv *b, bool (*skip)(const uint8_t *key, size_t key_len));

#endif
