/* Key layout, value encodings, the reservation transition table, the
 * effects overlay and the in-memory port. */
#include <criterion/criterion.h>
#include <string.h>

#include "ct_effects_int.h"
#include "dom_harness.h"

TestSuite(state);

static int kcmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
    size_t n = an < bn ? an : bn;
    int r = memcmp(a, b, n);
    return r ? r : (an < bn ? -1 : an > bn);
}

Test(state, deadline_keys_sort_by_time_then_kind_then_id) {
    typedef struct {
        int64_t at;
        ct_deadline_kind kind;
        const char *id;
    } dl;
    const dl order[] = {
        {0, CT_DEADLINE_HOLD, "z"},
        {255, CT_DEADLINE_TOKEN, "a"},
        {256, CT_DEADLINE_HOLD, "a"},
        {256, CT_DEADLINE_HOLD, "b"},
        {256, CT_DEADLINE_TOKEN, "a"},
        {1700000000000, CT_DEADLINE_HOLD, "A"},
        {CT_TS_MS_MAX + CT_TTL_MS_MAX, CT_DEADLINE_HOLD, "a"},
    };
    for (size_t i = 0; i + 1 < sizeof order / sizeof order[0]; i++) {
        uint8_t a[CT_KEY_BYTES_MAX], b[CT_KEY_BYTES_MAX];
        ct_id ia = dom_id(order[i].id), ib = dom_id(order[i + 1].id);
        size_t an = ct_key_deadline(a, order[i].at, order[i].kind, &ia);
        size_t bn = ct_key_deadline(b, order[i + 1].at, order[i + 1].kind, &ib);
        cr_assert_lt(kcmp(a, an, b, bn), 0, "row %zu must sort before row %zu", i, i + 1);
        int64_t at;
        ct_deadline_kind kind;
        ct_id id;
        cr_assert_eq(ct_key_deadline_parse(a, an, &at, &kind, &id), 0);
        cr_assert_eq(at, order[i].at);
        cr_assert_eq(kind, order[i].kind);
        cr_assert_str_eq(id.s, order[i].id);
    }
    const uint8_t junk[] = "D/12345678/9/x";
    int64_t at;
    ct_deadline_kind kind;
    ct_id id;
    cr_assert_eq(ct_key_deadline_parse(junk, sizeof junk - 1, &at, &kind, &id), -1);
}

Test(state, waiting_and_seat_keys_sort_numerically_and_ids_do_not_collide) {
    ct_id c1 = dom_id("c1"), c10 = dom_id("c10"), s = dom_id("s");
    uint8_t a[CT_KEY_BYTES_MAX], b[CT_KEY_BYTES_MAX];
    size_t an = ct_key_waiting(a, &c1, 255), bn = ct_key_waiting(b, &c1, 256);
    cr_assert_lt(kcmp(a, an, b, bn), 0);
    an = ct_key_seat(a, &c1, &s, 9);
    bn = ct_key_seat(b, &c1, &s, 10);
    cr_assert_lt(kcmp(a, an, b, bn), 0);
    /* "Q/c1/" is not a prefix of "Q/c10/..." */
    an = ct_key_waiting(a, &c1, 1);
    bn = ct_key_waiting(b, &c10, 1);
    cr_assert_neq(memcmp(a, b, 5), 0);
    cr_assert_eq(memcmp(a, "Q/c1/", 5), 0);
}

Test(state, values_round_trip_and_truncations_are_corrupt) {
    ct_st_reservation r = {.status = CT_RES_PAYMENT_PENDING,
                           .seat_no = 77,
                           .held_at_ms = 5,
                           .hold_until_ms = 6,
                           .price_won = CT_PRICE_WON_MAX};
    r.concert_id = dom_id("c1");
    r.schedule_id = dom_id("s1");
    r.user_id = dom_id("u1");
    r.token = dom_id("t1");
    r.command_id = dom_id("cmd");
    uint8_t v[CT_VALUE_BYTES_MAX];
    size_t n = ct_val_reservation_encode(v, &r);
    ct_st_reservation back;
    cr_assert_eq(ct_val_reservation_decode(v, n, &back), 0);
    cr_assert_eq(back.seat_no, 77);
    cr_assert_eq(back.price_won, CT_PRICE_WON_MAX);
    cr_assert_eq(back.payment_id.len, 0);
    cr_assert_str_eq(back.command_id.s, "cmd");
    for (size_t cut = 0; cut < n; cut++)
        cr_assert_eq(ct_val_reservation_decode(v, cut, &back), -1, "truncated at %zu", cut);
    v[n] = 0;
    cr_assert_eq(ct_val_reservation_decode(v, n + 1, &back), -1, "trailing byte");
    v[0] = CT_STATE_FORMAT + 1;
    cr_assert_eq(ct_val_reservation_decode(v, n, &back), -1, "unknown format");

    ct_st_token t = {.status = CT_TOKEN_ACTIVE, .seq = UINT64_MAX, .active_until_ms = CT_TS_MS_MAX};
    t.user_id = dom_id("u");
    t.concert_id = dom_id("c");
    t.command_id = dom_id("k");
    n = ct_val_token_encode(v, &t);
    ct_st_token tb;
    cr_assert_eq(ct_val_token_decode(v, n, &tb), 0);
    cr_assert_eq(tb.seq, UINT64_MAX);
    cr_assert_eq(tb.active_until_ms, CT_TS_MS_MAX);
}

Test(state, reservation_transitions_follow_the_table) {
    const struct {
        ct_res_status from, to;
        bool ok;
    } rows[] = {
        {CT_RES_HELD, CT_RES_PAYMENT_PENDING, true},
        {CT_RES_HELD, CT_RES_EXPIRED, true},
        {CT_RES_PAYMENT_PENDING, CT_RES_CONFIRMED, true},
        {CT_RES_PAYMENT_PENDING, CT_RES_HELD, true},
        {CT_RES_HELD, CT_RES_CONFIRMED, false},
        {CT_RES_PAYMENT_PENDING, CT_RES_EXPIRED, false},
        {CT_RES_CONFIRMED, CT_RES_HELD, false},
        {CT_RES_EXPIRED, CT_RES_HELD, false},
        {CT_RES_HELD, CT_RES_HELD, false},
        {(ct_res_status)0, CT_RES_HELD, false},
        {CT_RES_HELD, (ct_res_status)9, false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        cr_assert_eq(ct_reservation_transition_valid(rows[i].from, rows[i].to), rows[i].ok, "row %zu", i);
}

Test(state, overlay_keeps_one_sorted_entry_per_key_last_write_wins) {
    ct_effects *fx = ct_effects_new();
    ct_error err = {0};
    ct_fx_reset(fx, "in-1");
    cr_assert_eq(ct_fx_put(fx, (const uint8_t *)"b", 1, (const uint8_t *)"1", 1, &err), 0);
    cr_assert_eq(ct_fx_put(fx, (const uint8_t *)"a", 1, (const uint8_t *)"2", 1, &err), 0);
    cr_assert_eq(ct_fx_put(fx, (const uint8_t *)"b", 1, (const uint8_t *)"33", 2, &err), 0);
    cr_assert_eq(ct_fx_del(fx, (const uint8_t *)"c", 1, &err), 0);
    cr_assert_eq(ct_effects_mutation_count(fx), 3);
    ct_mutation m;
    ct_effects_mutation_at(fx, 0, &m);
    cr_assert_eq(m.key[0], 'a');
    ct_effects_mutation_at(fx, 1, &m);
    cr_assert_eq(m.key[0], 'b');
    cr_assert_eq(m.val_len, 2);
    cr_assert_eq(memcmp(m.val, "33", 2), 0);
    ct_effects_mutation_at(fx, 2, &m);
    cr_assert(m.is_delete);
    const uint8_t *v;
    size_t vn;
    cr_assert_eq(ct_fx_lookup(fx, (const uint8_t *)"c", 1, &v, &vn), 0);
    cr_assert_eq(ct_fx_lookup(fx, (const uint8_t *)"d", 1, &v, &vn), -1);
    cr_assert_str_eq(ct_effects_input_id(fx), "in-1");
    uint8_t big[CT_KEY_BYTES_MAX + 1] = {0};
    cr_assert_eq(ct_fx_put(fx, big, sizeof big, big, 1, &err), -1);
    cr_assert_eq(err.klass, CT_ERR_FATAL);
    ct_effects_destroy(fx);
    ct_effects_destroy(NULL);
}

Test(state, memkv_get_seek_delete_and_equality) {
    ct_memkv *kv = ct_memkv_new(), *other = ct_memkv_new();
    ct_error err = {0};
    /* enough keys to grow the hash index and use several skip-list levels */
    for (int i = 0; i < 5000; i++) {
        uint8_t k[8] = {'D', '/', 0, 0, (uint8_t)(i >> 8), (uint8_t)i};
        cr_assert_eq(ct_memkv_put(kv, k, 6, k, 6, &err), 0);
        cr_assert_eq(ct_memkv_put(other, k, 6, k, 6, &err), 0);
    }
    cr_assert_eq(ct_memkv_put(kv, (const uint8_t *)"E/x", 3, (const uint8_t *)"v", 1, &err), 0);
    cr_assert_eq(ct_memkv_count(kv), 5001);
    ct_kv_port p = ct_memkv_port(kv);
    uint8_t k[CT_KEY_BYTES_MAX], v[CT_VALUE_BYTES_MAX];
    size_t kn, vn;
    for (int i = 0; i < 5000; i += 2)
        ct_memkv_del(kv, (const uint8_t[]){'D', '/', 0, 0, (uint8_t)(i >> 8), (uint8_t)i}, 6);
    cr_assert_eq(ct_memkv_count(kv), 2501);
    for (int i = 0; i < 5000; i++) {
        uint8_t q[6] = {'D', '/', 0, 0, (uint8_t)(i >> 8), (uint8_t)i};
        cr_assert_eq(p.get(p.ud, q, 6, v, sizeof v, &vn, &err), i % 2, "key %d", i);
    }
    /* seek: first key >= from within the prefix */
    const uint8_t from[] = {'D', '/', 0, 0, 0, 10};
    cr_assert_eq(p.seek(p.ud, (const uint8_t *)"D/", 2, from, 6, k, sizeof k, &kn, v, sizeof v, &vn, &err), 1);
    cr_assert_eq(k[5], 11);
    const uint8_t last[] = {'D', '/', 0, 0, 0x13, 0x88}; /* past 4999 */
    cr_assert_eq(p.seek(p.ud, (const uint8_t *)"D/", 2, last, 6, k, sizeof k, &kn, v, sizeof v, &vn, &err), 0,
                 "E/x is outside the prefix");
    cr_assert_eq(
        p.seek(p.ud, (const uint8_t *)"E/", 2, (const uint8_t *)"E/", 2, k, sizeof k, &kn, v, sizeof v, &vn, &err), 1);
    cr_assert_eq(kn, 3);
    /* a value larger than the caller's buffer is an error, not a truncation */
    cr_assert_eq(p.get(p.ud, (const uint8_t *)"E/x", 3, v, 0, &vn, &err), -1);
    cr_assert_not(ct_memkv_equal(kv, other, NULL));
    for (int i = 0; i < 5000; i += 2)
        ct_memkv_del(other, (const uint8_t[]){'D', '/', 0, 0, (uint8_t)(i >> 8), (uint8_t)i}, 6);
    cr_assert_not(ct_memkv_equal(kv, other, NULL));
    cr_assert_eq(ct_memkv_put(other, (const uint8_t *)"E/x", 3, (const uint8_t *)"v", 1, &err), 0);
    cr_assert(ct_memkv_equal(kv, other, NULL));
    ct_memkv_destroy(kv);
    ct_memkv_destroy(other);
    ct_memkv_destroy(NULL);
}

Test(state, record_names_round_trip) {
    for (int t = 1; t < CT_CMD_TYPE_COUNT_; t++)
        cr_assert_eq(ct_cmd_type_from_name(ct_cmd_type_name((ct_cmd_type)t)), t);
    for (int r = 1; r < CT_REASON_COUNT_; r++) cr_assert_eq(ct_reason_from_name(ct_reason_name((ct_reason)r)), r);
    for (int o = 1; o < CT_OUT_TYPE_COUNT_; o++) cr_assert_not_null(ct_out_type_name((ct_out_type)o));
    cr_assert_null(ct_cmd_type_name(CT_CMD_TYPE_COUNT_));
    cr_assert_eq(ct_reason_from_name("NOPE"), CT_REASON_NONE);
}
