/*
 * ct_domain_limits: every bound of the domain core, in one place.
 *
 * Each constant names its unit in its suffix and says why it has its value.
 * Relations between them are checked at compile time at the bottom, so a
 * change that would let arithmetic overflow, a key outgrow its buffer or a
 * value outgrow the state record fails the build instead of the program.
 */
#ifndef CT_DOMAIN_LIMITS_H
#define CT_DOMAIN_LIMITS_H

#include <stdint.h>

/* ---- identifiers ---------------------------------------------------- */

/* Ids of concerts, schedules, tokens, reservations, payments, users and
 * command ids: 1..64 bytes of [A-Za-z0-9_-]. 64 holds a UUID (36) with room
 * for a prefix; the charset keeps ids free of the '/' key separator and of
 * anything that would need JSON escaping. */
#define CT_ID_BYTES_MAX 64

/* Record ids (envelope "id"): 1..128 bytes of [A-Za-z0-9_:.-]. Inputs come
 * from the relay ("outbox-<bigserial>") or from a processor output
 * ("<input_id>:<n>"), so ':' and '.' are allowed. */
#define CT_RECORD_ID_BYTES_MAX 128

/* Digits of an output index n in "<input_id>:<n>" (uint32). */
#define CT_OUTPUT_INDEX_DIGITS_MAX 10

/* An output record id: the input's id, ':', the index. */
#define CT_OUTPUT_ID_BYTES_MAX (CT_RECORD_ID_BYTES_MAX + 1 + CT_OUTPUT_INDEX_DIGITS_MAX)

/* Concert title: 1..200 bytes of UTF-8 (a line on a ticket). */
#define CT_TITLE_BYTES_MAX 200

/* ---- catalog -------------------------------------------------------- */

/* Schedules (dates) per concert: a tour leg, not a season; keeps one
 * CreateConcert record well under CT_INPUT_RECORD_BYTES_MAX. */
#define CT_SCHEDULES_PER_CONCERT_MAX 32

/* Seats per schedule, numbered 1..seats: a stadium is ~100,000. */
#define CT_SEATS_PER_SCHEDULE_MAX 100000

/* Price of one seat, won: 0 (free) .. 1,000,000,000. */
#define CT_PRICE_WON_MAX INT64_C(1000000000)

/* ---- waiting queue and holds (defaults from DESIGN.md section 5) ------ */

#define CT_MAX_ACTIVE_DEFAULT 100u /* active tokens per concert */
#define CT_MAX_ACTIVE_MIN 1u
#define CT_MAX_ACTIVE_MAX 100000u /* no more than a stadium at once */

#define CT_ACTIVE_TTL_MS_DEFAULT INT64_C(600000) /* 10 min to choose and pay */
#define CT_HOLD_TTL_MS_DEFAULT INT64_C(300000)   /* 5 min to pay for a hold */
/* Both TTLs: 1 s .. 1 day. Shorter than a tick is meaningless; longer than a
 * day would let one token or hold block a seat for a whole sale. */
#define CT_TTL_MS_MIN INT64_C(1000)
#define CT_TTL_MS_MAX INT64_C(86400000)

/* Seats one user may hold or own per schedule (DESIGN.md section 5). */
#define CT_SEATS_PER_USER_PER_SCHEDULE_MAX 4u
/* Holds a queue token may let expire; its next holds are refused
 * (HOLD_THROTTLED): to hold more, the fan queues again once it ends. */
#define CT_EXPIRED_HOLDS_PER_TOKEN_MAX 2

/* ---- wallet (DESIGN.md section 5) ----------------------------------- */

#define CT_CHARGE_WON_MIN INT64_C(1)
#define CT_CHARGE_WON_MAX INT64_C(1000000000)
#define CT_BALANCE_WON_MAX INT64_C(1000000000000000) /* 10^15 */

/* ---- time ----------------------------------------------------------- */

/* Logical time, ms since the Unix epoch: 0 .. 9999-12-31T23:59:59.999Z.
 * Bounded so that time + TTL can never overflow int64. */
#define CT_TS_MS_MAX INT64_C(253402300799999)

/* ---- records -------------------------------------------------------- */

/* An input record's JSON bytes. The ingress caps bodies at 16 KiB; the
 * envelope adds little, and a full CreateConcert is ~4 KiB. */
#define CT_INPUT_RECORD_BYTES_MAX 65536

/* An output record's JSON bytes: the largest is ConcertCreated with a
 * 200-byte title escaped at worst 6 bytes per byte (\u00XX). */
#define CT_OUTPUT_RECORD_BYTES_MAX 4096

/* ---- state ---------------------------------------------------------- */

/* A state key: the longest is U/<concert>/<schedule>/<user> (196 bytes). */
#define CT_KEY_BYTES_MAX 256
/* A state value: the longest is a reservation (~420 bytes). */
#define CT_VALUE_BYTES_MAX 512

/* Effects of one record. Time advancement may expire every hold and every
 * active token of the partition at once after a long gap, so these are
 * sized for the largest partition, not for a typical record; going past
 * them is a FATAL error (state beyond what the design sizes for). */
#define CT_EFFECTS_OUTPUTS_MAX (1u << 20)
#define CT_EFFECTS_MUTATIONS_MAX (1u << 22)

/* ---- compile-time relations ------------------------------------------ */

_Static_assert(CT_ID_BYTES_MAX <= 255, "ids are length-prefixed with one byte in state values");
_Static_assert(CT_TITLE_BYTES_MAX <= 255, "the title is length-prefixed with one byte in state values");
_Static_assert(CT_OUTPUT_ID_BYTES_MAX == CT_RECORD_ID_BYTES_MAX + 11, "':' plus up to 10 digits of a uint32");
_Static_assert(CT_TS_MS_MAX + CT_TTL_MS_MAX < INT64_MAX, "deadline = time + ttl cannot overflow");
_Static_assert(CT_BALANCE_WON_MAX <= INT64_MAX - CT_CHARGE_WON_MAX, "balance + one charge cannot overflow");
_Static_assert(CT_BALANCE_WON_MAX <= INT64_MAX - CT_PRICE_WON_MAX, "balance + one refund cannot overflow");
_Static_assert(CT_PRICE_WON_MAX <= CT_BALANCE_WON_MAX, "a seat must be affordable");
_Static_assert(CT_CHARGE_WON_MIN >= 1 && CT_CHARGE_WON_MIN <= CT_CHARGE_WON_MAX, "charge range");
_Static_assert(CT_MAX_ACTIVE_MIN <= CT_MAX_ACTIVE_DEFAULT && CT_MAX_ACTIVE_DEFAULT <= CT_MAX_ACTIVE_MAX,
               "max_active default in range");
_Static_assert(CT_TTL_MS_MIN <= CT_HOLD_TTL_MS_DEFAULT && CT_HOLD_TTL_MS_DEFAULT <= CT_TTL_MS_MAX,
               "hold_ttl default in range");
_Static_assert(CT_TTL_MS_MIN <= CT_ACTIVE_TTL_MS_DEFAULT && CT_ACTIVE_TTL_MS_DEFAULT <= CT_TTL_MS_MAX,
               "active_ttl default in range");
_Static_assert(CT_SEATS_PER_SCHEDULE_MAX <= UINT32_MAX, "seat numbers are big-endian uint32 in keys");
_Static_assert(CT_SEATS_PER_USER_PER_SCHEDULE_MAX <= 255, "per-user seat count is one byte in state");
_Static_assert(2 + 3 * CT_ID_BYTES_MAX + 2 <= CT_KEY_BYTES_MAX, "U/<concert>/<schedule>/<user> fits a key");
_Static_assert(2 + 8 + 1 + 1 + 1 + CT_ID_BYTES_MAX <= CT_KEY_BYTES_MAX, "D/<time>/<kind>/<id> fits a key");
_Static_assert(1 + 1 + 4 + 3 * 8 + 6 * (1 + CT_ID_BYTES_MAX) <= CT_VALUE_BYTES_MAX, "a reservation fits a value");
_Static_assert(1 + 4 + 8 + 8 + 2 + 1 + CT_TITLE_BYTES_MAX <= CT_VALUE_BYTES_MAX, "a concert fits a value");
_Static_assert(CT_TITLE_BYTES_MAX * 6 + 1024 <= CT_OUTPUT_RECORD_BYTES_MAX, "an escaped title fits an output record");

#endif
