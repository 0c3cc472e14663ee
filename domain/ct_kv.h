/*
 * ct_kv: the state port of the domain core.
 *
 * The core never does I/O. It reads state through this read-only interface
 * and returns its writes as effects (ct_effects.h); the caller applies them.
 * Implemented by ct_memkv (the in-memory test double) and, later, by the
 * RocksDB task store (a WriteBatchWithIndex, so reads see the batch's
 * pending writes of earlier records).
 *
 * Reads of the record being applied see that record's own earlier writes:
 * the core keeps them in an overlay inside ct_effects and consults it
 * before the port. The port therefore only has to show what was applied
 * before this record.
 *
 * Keys and values are byte strings (layout in domain/README.md); keys
 * compare as unsigned bytes, shorter first on a common prefix (memcmp
 * order, RocksDB's default comparator).
 */
#ifndef CT_KV_H
#define CT_KV_H

#include <stddef.h>
#include <stdint.h>

#include "ct_error.h"

typedef struct ct_kv_port {
    void *ud;
    /* Point read. Copies the value into val (val_cap bytes) and sets
     * *val_len. Returns 1 found, 0 not found, -1 error (err set; a value
     * longer than val_cap is a FATAL error: the state is not ours). */
    int (*get)(void *ud, const uint8_t *key, size_t key_len, uint8_t *val, size_t val_cap, size_t *val_len,
               ct_error *err);
    /* Ordered read: the first key k with k >= from and k starting with
     * prefix (from itself starts with prefix). Copies key and value.
     * Returns 1 found, 0 none, -1 error. */
    int (*seek)(void *ud, const uint8_t *prefix, size_t prefix_len, const uint8_t *from, size_t from_len, uint8_t *key,
                size_t key_cap, size_t *key_len, uint8_t *val, size_t val_cap, size_t *val_len, ct_error *err);
} ct_kv_port;

#endif
