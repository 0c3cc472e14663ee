/* The codec's fast path against its general decoder: for every input, the
 * combined decoder (fast path, then jansson for what it declines) must give
 * exactly what the general decoder alone gives — the same return, the same
 * ct_cmd bytes, the same error message — and the fast path must take the
 * records the pipeline really carries. A seeded mutation fuzzer explores
 * the boundary; its seed (CT_CODEC_FUZZ_SEED) is printed on failure. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ct_codec.h"

TestSuite(codec_fast);

#define ENV(type, key, data)                                                                                       \
    "{\"id\":\"o-1:0\",\"type\":\"" type "\",\"v\":1,\"ts\":1700000000123,\"command_id\":\"cmd-1\",\"key\":\"" key \
    "\",\"data\":" data "}"

/* What the processors read: every command type but CreateConcert. */
static const char *const common[] = {
    ENV("IssueToken", "c1", "{\"token\":\"tok_A-9\",\"user_id\":\"u1\",\"concert_id\":\"c1\"}"),
    ENV("HoldSeat", "c1",
        "{\"reservation_id\":\"c1_r1\",\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\",\"schedule_id\":\"1\","
        "\"seat_no\":50}"),
    ENV("RequestPayment", "c1",
        "{\"payment_id\":\"p1\",\"reservation_id\":\"c1_r1\",\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\"}"),
    ENV("PaymentSettled", "c1",
        "{\"payment_id\":\"p1\",\"reservation_id\":\"c1_r1\",\"user_id\":\"u1\",\"amount\":5000,\"ok\":true}"),
    ENV("PaymentSettled", "c1",
        "{\"payment_id\":\"p1\",\"reservation_id\":\"c1_r1\",\"user_id\":\"u1\",\"amount\":5000,\"ok\":false,"
        "\"reason\":\"INSUFFICIENT_BALANCE\"}"),
    "{\"id\":\"tick:3:1700000000999\",\"type\":\"Tick\",\"v\":1,\"ts\":1700000000999,\"command_id\":\"\",\"key\":\"\","
    "\"data\":{}}",
    ENV("ChargeBalance", "u1", "{\"user_id\":\"u1\",\"amount\":1000000000}"),
    ENV("DebitRequested", "u1",
        "{\"payment_id\":\"p1\",\"reservation_id\":\"c1_r1\",\"user_id\":\"u1\",\"concert_id\":\"c1\",\"amount\":0}"),
    ENV("RefundRequested", "u1", "{\"payment_id\":\"p1\",\"user_id\":\"u1\",\"amount\":7,\"reason\":\"HOLD_EXPIRED\"}"),
    /* the same shapes with whitespace and another key order */
    " {\n\t\"data\" : { \"amount\" : 12 , \"user_id\" : \"u1\" } , \"key\":\"u1\", \"type\":\"ChargeBalance\",\"v\":1,"
    "\"ts\":0,\"command_id\":\"c\",\"id\":\"x\" }\r\n",
};

/* Inputs at or over the fast path's edge: each must decode (or fail) as the
 * general decoder says. */
static const char *const edges[] = {
    ENV("IssueToken", "c1", "{\"token\":\"t\\u0031\",\"user_id\":\"u1\",\"concert_id\":\"c1\"}"),
    ENV("IssueToken", "c1", "{\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\",\"token\":\"t2\"}"),
    ENV("IssueToken", "c1", "{\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\",\"x\":1}"),
    ENV("IssueToken", "c1", "{\"token\":\"t1\",\"user_id\":\"u1\"}"),
    ENV("IssueToken", "c1", "{\"token\":\"t1\",\"user_id\":null,\"concert_id\":\"c1\"}"),
    ENV("IssueToken", "c1", "{\"token\":\"t1\",\"user_id\":[\"u1\"],\"concert_id\":\"c1\"}"),
    ENV("IssueToken", "c1", "{\"token\":\"t1\",\"user_id\":{},\"concert_id\":\"c1\"}"),
    ENV("IssueToken", "c2", "{\"token\":\"t1\",\"user_id\":\"u1\",\"concert_id\":\"c1\"}"),
    ENV("IssueToken", "c1", "{\"token\":\"t 1\",\"user_id\":\"u1\",\"concert_id\":\"c1\"}"),
    ENV("IssueToken", "c1", "{\"token\":\"t\xc3\xa9\",\"user_id\":\"u1\",\"concert_id\":\"c1\"}"),
    ENV("HoldSeat", "c1",
        "{\"reservation_id\":\"r\",\"token\":\"t\",\"user_id\":\"u\",\"concert_id\":\"c1\",\"schedule_id\":\"1\","
        "\"seat_no\":050}"),
    ENV("HoldSeat", "c1",
        "{\"reservation_id\":\"r\",\"token\":\"t\",\"user_id\":\"u\",\"concert_id\":\"c1\",\"schedule_id\":\"1\","
        "\"seat_no\":5.0}"),
    ENV("HoldSeat", "c1",
        "{\"reservation_id\":\"r\",\"token\":\"t\",\"user_id\":\"u\",\"concert_id\":\"c1\",\"schedule_id\":\"1\","
        "\"seat_no\":5e1}"),
    ENV("HoldSeat", "c1",
        "{\"reservation_id\":\"r\",\"token\":\"t\",\"user_id\":\"u\",\"concert_id\":\"c1\",\"schedule_id\":\"1\","
        "\"seat_no\":-0}"),
    ENV("HoldSeat", "c1",
        "{\"reservation_id\":\"r\",\"token\":\"t\",\"user_id\":\"u\",\"concert_id\":\"c1\",\"schedule_id\":\"1\","
        "\"seat_no\":100001}"),
    ENV("ChargeBalance", "u1", "{\"user_id\":\"u1\",\"amount\":999999999999999999}"),
    ENV("ChargeBalance", "u1", "{\"user_id\":\"u1\",\"amount\":9999999999999999999}"),
    ENV("ChargeBalance", "u1", "{\"user_id\":\"u1\",\"amount\":-}"),
    ENV("ChargeBalance", "u1", "{\"user_id\":\"u1\",\"amount\":true}"),
    ENV("PaymentSettled", "c1",
        "{\"payment_id\":\"p1\",\"reservation_id\":\"r\",\"user_id\":\"u1\",\"amount\":5,\"ok\":false}"),
    ENV("PaymentSettled", "c1",
        "{\"payment_id\":\"p1\",\"reservation_id\":\"r\",\"user_id\":\"u1\",\"amount\":5,\"ok\":tru}"),
    ENV("PaymentSettled", "c1",
        "{\"payment_id\":\"p1\",\"reservation_id\":\"r\",\"user_id\":\"u1\",\"amount\":5,\"ok\":false,"
        "\"reason\":\"NOPE\"}"),
    ENV("CreateConcert", "c1",
        "{\"concert_id\":\"c1\",\"title\":\"T\",\"schedules\":[{\"schedule_id\":\"1\",\"starts_at\":1,\"seats\":1,"
        "\"price\":1}]}"),
    "{\"id\":\"o\",\"type\":\"Tick\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{}} x",
    "{\"id\":\"o\",\"type\":\"Tick\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{},}",
    "{\"id\":\"o\",\"type\":\"Tick\",\"v\":2,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{}}",
    "{\"id\":\"o\",\"type\":\"Tick\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{},\"id\":\"p\"}",
    "{\"id\":\"o\",\"type\":\"Tock\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{}}",
    "{\"id\":\"\",\"type\":\"Tick\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{}}",
    "{\"type\":\"Tick\",\"v\":1,\"ts\":1,\"command_id\":\"\",\"key\":\"\",\"data\":{}}",
    "{}",
    "[]",
    "",
};

static uint64_t rng_state;
static uint64_t rng(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Returns whether the fast path took the input. */
static bool check_same(const char *buf, size_t len, uint64_t seed) {
    static ct_cmd a, b, f;
    ct_error ea = {0}, eb = {0};
    int ra = ct_codec_decode(buf, len, &a, &ea);
    int rb = ct_codec_decode_general(buf, len, &b, &eb);
    bool fast = ct_codec_decode_fast(buf, len, &f) == 1;
    cr_assert_eq(ra, rb, "seed=%llu: combined %d, general %d for [%.*s] (%s / %s)", (unsigned long long)seed, ra, rb,
                 (int)len, buf, ea.msg, eb.msg);
    if (ra == 0)
        cr_assert(memcmp(&a, &b, sizeof a) == 0, "seed=%llu: decoders differ for [%.*s]", (unsigned long long)seed,
                  (int)len, buf);
    else
        cr_assert_str_eq(ea.msg, eb.msg, "seed=%llu: messages differ for [%.*s]", (unsigned long long)seed, (int)len,
                         buf);
    return fast;
}

Test(codec_fast, takes_every_common_record_and_decodes_it_as_the_general_decoder) {
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
        ct_error err = {0};
        static ct_cmd c;
        cr_assert_eq(ct_codec_decode_general(common[i], strlen(common[i]), &c, &err), 0, "%s: %s", common[i], err.msg);
        cr_assert(check_same(common[i], strlen(common[i]), 0), "the fast path declined %s", common[i]);
    }
}

Test(codec_fast, declines_or_agrees_at_its_edges) {
    size_t fast = 0;
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) fast += check_same(edges[i], strlen(edges[i]), 0);
    /* -0, the 18-digit amount, the out-of-range seat and key mismatch are
     * read by the fast path (and fail validation or range as before). */
    cr_assert_gt(fast, 0);
    cr_assert_lt(fast, sizeof edges / sizeof edges[0]);
}

Test(codec_fast, mutated_records_decode_the_same_either_way) {
    const char *env = getenv("CT_CODEC_FUZZ_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : 20261202;
    long rounds = getenv("CT_CODEC_FUZZ_ROUNDS") ? atol(getenv("CT_CODEC_FUZZ_ROUNDS")) : 200000;
    static const char alphabet[] = "{}[]:,\" \\0123456789-+.eEtrufalsn\x01\x7f\xc3\xa9uU_aZ";
    rng_state = seed;
    size_t taken = 0, ok = 0;
    char buf[1024];
    for (long r = 0; r < rounds; r++) {
        const char *src = common[rng() % (sizeof common / sizeof common[0])];
        size_t len = strlen(src);
        memcpy(buf, src, len);
        int edits = 1 + (int)(rng() % 3);
        for (int e = 0; e < edits && len > 0 && len < sizeof buf - 8; e++) {
            size_t at = rng() % len;
            char ch = alphabet[rng() % (sizeof alphabet - 1)];
            switch (rng() % 4) {
            case 0: buf[at] = ch; break;                                                   /* replace */
            case 1: memmove(buf + at, buf + at + 1, len - at - 1), len--; break;           /* delete */
            case 2: memmove(buf + at + 1, buf + at, len - at), buf[at] = ch, len++; break; /* insert */
            default: {                                                                     /* copy a span */
                size_t from = rng() % len, n = 1 + rng() % 8;
                if (from + n > len) n = len - from;
                if (len + n >= sizeof buf) break;
                memmove(buf + at + n, buf + at, len - at);
                memmove(buf + at, buf + (from >= at ? from + n : from), n);
                len += n;
            }
            }
        }
        static ct_cmd c;
        ct_error err = {0};
        ok += ct_codec_decode(buf, len, &c, &err) == 0;
        taken += check_same(buf, len, seed);
    }
    fprintf(stderr, "codec fuzz: seed=%llu rounds=%ld fast path took %zu, %zu decoded\n", (unsigned long long)seed,
            rounds, taken, ok);
    /* Both sides of the edge were explored. */
    cr_assert_gt(taken, (size_t)rounds / 100);
    cr_assert_lt(taken, (size_t)rounds);
}
