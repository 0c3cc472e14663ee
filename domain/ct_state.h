/*
 * ct_state: the key layout and value encodings of the domain's state.
 *
 * This header is the contract between the core and any store (the RocksDB
 * task store, ct_memkv) and the tests that inspect state. The layout is
 * described in domain/README.md; in short, every key is
 * "<tag>/<component>/..." where ids are [A-Za-z0-9_-] (never '/') and
 * integers are big-endian so byte order is numeric order.
 *
 * Values start with a format byte (CT_STATE_FORMAT) followed by fixed
 * fields, big-endian, and ids as one length byte plus bytes. Decoders check
 * every length; a value that does not decode is corrupt state (FATAL for
 * the caller).
 */
#ifndef CT_STATE_H
#define CT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ct_domain_limits.h"
#include "ct_record.h"

#define CT_STATE_FORMAT 1

/* Deadline kinds, in the order they fire at the same millisecond. */
typedef enum ct_deadline_kind {
    CT_DEADLINE_HOLD = 1,  /* id = reservation id: the hold expires */
    CT_DEADLINE_TOKEN = 2, /* id = token: the active token expires */
} ct_deadline_kind;

typedef enum ct_seat_status {
    CT_SEAT_AVAILABLE = 0, /* no key */
    CT_SEAT_HELD = 1,
    CT_SEAT_PAYMENT_PENDING = 2,
    CT_SEAT_SOLD = 3,
} ct_seat_status;

/* Reservation states; transitions in ct_reservation_transition_valid. */
typedef enum ct_res_status {
    CT_RES_HELD = 1,
    CT_RES_PAYMENT_PENDING = 2,
    CT_RES_CONFIRMED = 3,
    CT_RES_EXPIRED = 4,
} ct_res_status;

typedef enum ct_pay_status {
    CT_PAY_PENDING = 1,
    CT_PAY_SUCCEEDED = 2,
    CT_PAY_FAILED = 3,
} ct_pay_status;

/* True if a reservation may go from `from` to `to`:
 * HELD -> PAYMENT_PENDING | EXPIRED; PAYMENT_PENDING -> CONFIRMED | HELD.
 * Anything else is a bug in the core. */
bool ct_reservation_transition_valid(ct_res_status from, ct_res_status to);

/* C/<concert> */
typedef struct ct_st_concert {
    uint32_t max_active;
    int64_t active_ttl_ms;
    int64_t hold_ttl_ms;
    uint16_t schedule_count;
    uint16_t title_len;
    char title[CT_TITLE_BYTES_MAX + 1];
} ct_st_concert;

/* A/<concert>: the waiting queue's counters. Waiting tokens are exactly the
 * sequences last_admitted_seq+1 .. next_seq-1 (admission is FIFO and a
 * waiting token leaves the queue only by admission). */
typedef struct ct_st_queue {
    uint64_t next_seq;          /* the next token's sequence, from 1 */
    uint64_t last_admitted_seq; /* 0 before the first admission */
    uint32_t active_count;      /* tokens ACTIVE now */
} ct_st_queue;

/* S/<concert>/<schedule> */
typedef struct ct_st_schedule {
    int64_t starts_at_ms;
    uint32_t seats;
    int64_t price_won;
} ct_st_schedule;

/* E/<concert>/<schedule>/<seat be32>; absent = AVAILABLE */
typedef struct ct_st_seat {
    uint8_t status; /* ct_seat_status */
    ct_id reservation_id;
    ct_id user_id;
} ct_st_seat;

/* T/<token> */
typedef struct ct_st_token {
    uint8_t status; /* ct_token_status */
    uint64_t seq;
    int64_t issued_at_ms;
    int64_t activated_at_ms; /* 0 until ACTIVE */
    int64_t active_until_ms; /* 0 until ACTIVE */
    int64_t ended_at_ms;     /* when it became EXPIRED or DONE, else 0 */
    ct_id user_id;
    ct_id concert_id;
    ct_id command_id; /* the IssueToken's */
} ct_st_token;

/* R/<reservation> */
typedef struct ct_st_reservation {
    uint8_t status; /* ct_res_status */
    uint32_t seat_no;
    int64_t held_at_ms;
    int64_t hold_until_ms; /* kept while PAYMENT_PENDING: restored on failure */
    int64_t price_won;
    ct_id concert_id, schedule_id, user_id, token;
    ct_id payment_id; /* empty until RequestPayment */
    ct_id command_id; /* the HoldSeat's */
} ct_st_reservation;

/* P/<payment> (concert side) */
typedef struct ct_st_payment {
    uint8_t status; /* ct_pay_status */
    int64_t amount_won;
    ct_id reservation_id, user_id, concert_id;
    ct_id command_id; /* the RequestPayment's: the saga's terminal carries it */
} ct_st_payment;

/* X/<payment> (wallet side): a debit already decided */
typedef struct ct_st_debit {
    uint8_t ok;
    int64_t amount_won;
    ct_id user_id;
} ct_st_debit;

/* ---- keys: each writes into k (CT_KEY_BYTES_MAX) and returns the length -- */
size_t ct_key_clock(uint8_t *k);                                                               /* M/clock */
size_t ct_key_concert(uint8_t *k, const ct_id *concert);                                       /* C/<c> */
size_t ct_key_queue(uint8_t *k, const ct_id *concert);                                         /* A/<c> */
size_t ct_key_schedule(uint8_t *k, const ct_id *concert, const ct_id *schedule);               /* S/<c>/<s> */
size_t ct_key_seat(uint8_t *k, const ct_id *concert, const ct_id *schedule, uint32_t seat_no); /* E/<c>/<s>/<be32> */
size_t ct_key_token(uint8_t *k, const ct_id *token);                                           /* T/<t> */
size_t ct_key_waiting(uint8_t *k, const ct_id *concert, uint64_t seq);                         /* Q/<c>/<be64> */
size_t ct_key_deadline(uint8_t *k, int64_t at_ms, ct_deadline_kind kind, const ct_id *id); /* D/<be64>/<kind>/<id> */
size_t ct_key_deadline_prefix(uint8_t *k);                                                 /* D/ */
size_t ct_key_reservation(uint8_t *k, const ct_id *reservation);                           /* R/<r> */
size_t ct_key_user_seats(uint8_t *k, const ct_id *concert, const ct_id *schedule,
                         const ct_id *user);                                   /* U/<c>/<s>/<u> */
size_t ct_key_user_token(uint8_t *k, const ct_id *concert, const ct_id *user); /* V/<c>/<u>: their latest token */
size_t ct_key_expired_holds(uint8_t *k, const ct_id *token);                   /* H/<t>: holds it let expire (u8) */
size_t ct_key_payment(uint8_t *k, const ct_id *payment);                       /* P/<p> */
size_t ct_key_wallet(uint8_t *k, const ct_id *user);                           /* W/<u> */
size_t ct_key_debit(uint8_t *k, const ct_id *payment);                         /* X/<p> */
size_t ct_key_refund(uint8_t *k, const ct_id *payment);                        /* F/<p> */

/* Parses a deadline key. Returns 0, or -1 if it is not one. */
int ct_key_deadline_parse(const uint8_t *k, size_t n, int64_t *at_ms, ct_deadline_kind *kind, ct_id *id);

/* ---- values: encode writes into v (CT_VALUE_BYTES_MAX) and returns the
 * length; decode returns 0, or -1 if the bytes are not such a value. ---- */
size_t ct_val_i64_encode(uint8_t *v, int64_t x); /* clock, wallet balance, refund amount */
int ct_val_i64_decode(const uint8_t *v, size_t n, int64_t *x);
size_t ct_val_u8_encode(uint8_t *v, uint8_t x); /* user seat count */
int ct_val_u8_decode(const uint8_t *v, size_t n, uint8_t *x);
size_t ct_val_id_encode(uint8_t *v, const ct_id *id); /* waiting entry: the token */
int ct_val_id_decode(const uint8_t *v, size_t n, ct_id *id);
size_t ct_val_empty_encode(uint8_t *v); /* deadline entry */

#define CT_STATE_CODEC(name)                                          \
    size_t ct_val_##name##_encode(uint8_t *v, const ct_st_##name *x); \
    int ct_val_##name##_decode(const uint8_t *v, size_t n, ct_st_##name *x);
CT_STATE_CODEC(concert)
CT_STATE_CODEC(queue)
CT_STATE_CODEC(schedule)
CT_STATE_CODEC(seat)
CT_STATE_CODEC(token)
CT_STATE_CODEC(reservation)
CT_STATE_CODEC(payment)
CT_STATE_CODEC(debit)
#undef CT_STATE_CODEC

#endif
