/* ct_hidx: the shared open-addressing index keeps every item findable
 * through inserts, backward-shift removals (also of chains that wrap
 * around the end of the table) and growth, checked against a plain list
 * with a seeded sequence of operations; ct_hidx_hash spreads keys that
 * differ in one byte or in length; ct_hash64 keeps its values (migration
 * checksums and trace sampling depend on them). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ct_hash.h"
#include "ct_hidx.h"

typedef struct item {
    char key[16];
    bool live;
} item;

static bool item_has_key(const void *it, const void *k, size_t n) {
    const item *x = it;
    return strlen(x->key) == n && memcmp(x->key, k, n) == 0;
}

/* Seven distinct hashes, whose home slots are the table's last seven
 * whatever its size: chains are long, collide and wrap around. */
static uint64_t crowded_hash(const char *k) { return UINT64_MAX - ct_hidx_hash(k, strlen(k)) % 7; }

#define ITEMS 200

Test(hidx, finds_every_item_through_inserts_removals_and_growth) {
    static item items[ITEMS];
    ct_hidx ix;
    cr_assert_eq(ct_hidx_init(&ix, 16), 0);
    uint64_t rng = 42; /* seeded: a failure replays */
    for (int step = 0; step < 20000; step++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((rng >> 33) % ITEMS);
        item *it = &items[k];
        snprintf(it->key, sizeof it->key, "key-%d", k);
        uint64_t h = crowded_hash(it->key);
        size_t at = ct_hidx_find(&ix, h, item_has_key, it->key, strlen(it->key));
        cr_assert_eq(ix.slots[at].item != NULL, it->live, "step %d: %s found=%d live=%d", step, it->key,
                     ix.slots[at].item != NULL, it->live);
        if (it->live) {
            ct_hidx_remove(&ix, at);
            it->live = false;
        } else {
            if ((ix.count + 1) * 2 > ix.cap) {
                cr_assert_eq(ct_hidx_grow(&ix), 0);
                at = ct_hidx_find(&ix, h, item_has_key, it->key, strlen(it->key));
            }
            ct_hidx_set(&ix, at, h, it);
            it->live = true;
        }
        size_t live = 0;
        for (int i = 0; i < ITEMS; i++) live += items[i].live;
        cr_assert_eq(ix.count, live, "step %d", step);
    }
    for (int i = 0; i < ITEMS; i++) {
        if (!items[i].key[0]) continue;
        size_t at = ct_hidx_find(&ix, crowded_hash(items[i].key), item_has_key, items[i].key, strlen(items[i].key));
        cr_expect_eq(ix.slots[at].item == &items[i], items[i].live, "%s", items[i].key);
    }
    ct_hidx_clear(&ix);
    cr_expect_eq(ix.count, 0);
    for (size_t i = 0; i < ix.cap; i++) cr_expect_null(ix.slots[i].item);
    ct_hidx_fini(&ix);
}

Test(hidx, set_on_a_used_slot_replaces_without_counting) {
    item a = {"a", true}, b = {"a", true};
    ct_hidx ix;
    cr_assert_eq(ct_hidx_init(&ix, 8), 0);
    uint64_t h = ct_hidx_hash("a", 1);
    ct_hidx_set(&ix, ct_hidx_find(&ix, h, item_has_key, "a", 1), h, &a);
    ct_hidx_set(&ix, ct_hidx_find(&ix, h, item_has_key, "a", 1), h, &b);
    cr_expect_eq(ix.count, 1);
    cr_expect_eq(ix.slots[ct_hidx_find(&ix, h, item_has_key, "a", 1)].item, &b);
    ct_hidx_fini(&ix);
}

Test(hidx, table_hash_tells_apart_one_byte_and_length) {
    const char k[] = "T/0123456789abcdef0123/user-17";
    size_t n = sizeof k - 1;
    uint64_t h = ct_hidx_hash(k, n);
    for (size_t i = 0; i < n; i++) {
        char m[sizeof k];
        memcpy(m, k, sizeof k);
        m[i] ^= 1;
        cr_expect_neq(ct_hidx_hash(m, n), h, "byte %zu", i);
    }
    cr_expect_neq(ct_hidx_hash(k, n - 1), h);
    cr_expect_neq(ct_hidx_hash("", 0), ct_hidx_hash("\0", 1), "the length is hashed");
}

/* The values ct_hash64 has always had. Its offset basis is
 * 1469598103934665603, not FNV's published 14695981039346656037 (a digit
 * short), so these are not the published FNV-1a test vectors; recorded
 * migration checksums were made with it, so it stays. */
Test(hash, fnv1a_values_never_change) {
    cr_expect_eq(ct_hash64("", 0), 0x14650fb0739d0383ull);
    cr_expect_eq(ct_hash64("a", 1), 0x44bd8ad473cd9906ull);
    cr_expect_eq(ct_hash64("foobar", 6), 0x88fad7c0a8ff07f2ull);
    cr_expect_eq(ct_hash64_str("foobar"), 0x88fad7c0a8ff07f2ull);
}
