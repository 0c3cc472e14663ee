/*
 * ct_record: the typed records of the domain.
 *
 * Inputs are commands (ct_cmd): what the concert and wallet processors
 * consume. Outputs (ct_out) are events for the projector and the cross-role
 * commands one processor sends the other (DebitRequested, PaymentSettled,
 * RefundRequested). The core works on these structs only; ct_codec turns
 * JSON envelopes into ct_cmd and ct_out into JSON envelopes.
 *
 * Every struct here is plain data the caller owns (no pointers inside), so
 * it can be copied, zeroed and compared. Strings are fixed arrays,
 * NUL-terminated, with their length alongside.
 */
#ifndef CT_RECORD_H
#define CT_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ct_catalog.h"
#include "ct_domain_limits.h"
#include "ct_error.h"

/* An id of [A-Za-z0-9_-], 1..CT_ID_BYTES_MAX bytes (0 = absent). */
typedef struct ct_id {
    uint8_t len;
    char s[CT_ID_BYTES_MAX + 1];
} ct_id;

/* Sets *id from a C string; returns 0, or -1 if it is not a valid id. */
int ct_id_set(ct_id *id, const char *s);
/* Same from bytes. */
int ct_id_setn(ct_id *id, const char *s, size_t n);
bool ct_id_eq(const ct_id *a, const ct_id *b);
/* True if n bytes form a valid id (1..CT_ID_BYTES_MAX of [A-Za-z0-9_-]). */
bool ct_id_valid(const char *s, size_t n);
/* True if n bytes form a valid record id (1..CT_RECORD_ID_BYTES_MAX of
 * [A-Za-z0-9_:.-]). */
bool ct_record_id_valid(const char *s, size_t n);

/* Which processor a record is for. */
typedef enum ct_role {
    CT_ROLE_CONCERT = 1, /* concert.commands, key concert_id */
    CT_ROLE_WALLET = 2,  /* wallet.commands, key user_id */
} ct_role;

/* The command types: ct_catalog.h's CT_COMMANDS, in its order. */
typedef enum ct_cmd_type {
    CT_CMD_NONE = 0,
#define CT_X(type, member, name, role, key, from) CT_CMD_##type,
    CT_COMMANDS(CT_X)
#undef CT_X
        CT_CMD_TYPE_COUNT_
} ct_cmd_type;

/* Rejection reasons: a fixed set, in this order forever (the numeric value
 * is not on the wire, the name is). */
typedef enum ct_reason {
    CT_REASON_NONE = 0,
    CT_REASON_TOKEN_NOT_ACTIVE,
    CT_REASON_SEAT_TAKEN,
    CT_REASON_HOLD_EXPIRED,
    CT_REASON_INSUFFICIENT_BALANCE,
    CT_REASON_LIMIT_EXCEEDED,
    CT_REASON_UNKNOWN_SCHEDULE,
    CT_REASON_UNKNOWN_CONCERT,
    CT_REASON_UNKNOWN_TOKEN,
    CT_REASON_UNKNOWN_RESERVATION,
    CT_REASON_UNKNOWN_PAYMENT,
    CT_REASON_DUPLICATE,
    CT_REASON_INVALID_SEAT,
    CT_REASON_BALANCE_LIMIT,
    CT_REASON_TOKEN_MISMATCH,       /* the token belongs to another user or concert */
    CT_REASON_NOT_OWNER,            /* the reservation belongs to another user or token */
    CT_REASON_RESERVATION_NOT_HELD, /* already paying, paid or expired otherwise */
    CT_REASON_PAYMENT_NOT_PENDING,  /* a settlement for a payment already settled */
    CT_REASON_POISON,               /* the record could not be decoded or validated: dead-lettered */
    CT_REASON_HOLD_THROTTLED,       /* the token let CT_EXPIRED_HOLDS_PER_TOKEN_MAX holds expire */
    CT_REASON_COUNT_
} ct_reason;

typedef struct ct_schedule_spec {
    ct_id schedule_id;
    int64_t starts_at_ms;
    uint32_t seats;
    int64_t price_won;
} ct_schedule_spec;

/* Payloads of the command types. */
typedef struct ct_create_concert {
    ct_id concert_id;
    uint16_t title_len;
    char title[CT_TITLE_BYTES_MAX + 1];
    uint32_t max_active;
    int64_t active_ttl_ms;
    int64_t hold_ttl_ms;
    uint32_t schedule_count;
    ct_schedule_spec schedules[CT_SCHEDULES_PER_CONCERT_MAX];
} ct_create_concert;

typedef struct ct_issue_token {
    ct_id token, user_id, concert_id;
} ct_issue_token;

typedef struct ct_hold_seat {
    ct_id reservation_id, token, user_id, concert_id, schedule_id;
    uint32_t seat_no;
} ct_hold_seat;

typedef struct ct_request_payment {
    ct_id payment_id, reservation_id, token, user_id, concert_id;
} ct_request_payment;

/* From the wallet. user_id and amount_won let the concert processor refund a
 * settlement it cannot honour even if it never saw the payment. */
typedef struct ct_payment_settled {
    ct_id payment_id, reservation_id, user_id;
    int64_t amount_won;
    bool ok;
    ct_reason reason; /* NONE iff ok */
} ct_payment_settled;

typedef struct ct_charge_balance {
    ct_id user_id;
    int64_t amount_won;
} ct_charge_balance;

typedef struct ct_debit_requested {
    ct_id payment_id, reservation_id, user_id, concert_id;
    int64_t amount_won;
} ct_debit_requested;

typedef struct ct_refund_requested {
    ct_id payment_id, user_id;
    int64_t amount_won;
    ct_reason reason; /* why the settlement was not honoured */
} ct_refund_requested;

/* A decoded, validated input record. For Tick, command_id and key may be
 * empty. Optional JSON fields are filled with their defaults by the
 * decoder, so the core sees no optionality. */
typedef struct ct_cmd {
    ct_cmd_type type;
    int64_t ts_ms;
    uint8_t id_len;
    char id[CT_RECORD_ID_BYTES_MAX + 1];
    ct_id command_id;
    ct_id key;
    union {
        ct_create_concert create_concert;
        ct_issue_token issue_token;
        ct_hold_seat hold_seat;
        ct_request_payment request_payment;
        ct_payment_settled payment_settled;
        ct_charge_balance charge_balance;
        ct_debit_requested debit_requested;
        ct_refund_requested refund_requested;
    } u;
} ct_cmd;

/* Output record types: ct_catalog.h's CT_OUTPUTS, in its order. */
typedef enum ct_out_type {
    CT_OUT_NONE = 0,
#define CT_X(type, name, topic, outcome) CT_OUT_##type,
    CT_OUTPUTS(CT_X)
#undef CT_X
        CT_OUT_TYPE_COUNT_
} ct_out_type;

typedef enum ct_topic {
    CT_TOPIC_ID_NONE = 0,
    CT_TOPIC_ID_CONCERT_EVENTS,
    CT_TOPIC_ID_WALLET_EVENTS,
    CT_TOPIC_ID_CONCERT_COMMANDS,
    CT_TOPIC_ID_WALLET_COMMANDS,
    CT_TOPIC_ID_COUNT_
} ct_topic;

typedef enum ct_token_status {
    CT_TOKEN_NONE = 0,
    CT_TOKEN_WAITING,
    CT_TOKEN_ACTIVE,
    CT_TOKEN_EXPIRED,
    CT_TOKEN_DONE,
} ct_token_status;

/* One output. Which payload fields are meaningful depends on the type (see
 * domain/README.md, "Outputs"); the others are zero. `index` is the output's
 * position among its input's outputs: its record id is "<input id>:<index>".
 * `terminal` marks the one outcome of the command named by command_id. */
typedef struct ct_out {
    ct_out_type type;
    ct_topic topic;
    bool terminal;
    uint32_t index;
    int64_t ts_ms;
    ct_id key;
    ct_id command_id;
    /* payload */
    ct_cmd_type rejected_type; /* CommandRejected: the command's type */
    ct_reason reason;
    ct_token_status token_status;
    bool ok;
    uint32_t seat_no;
    uint32_t seats;
    uint32_t max_active;
    uint32_t schedule_count;
    int64_t amount_won;
    int64_t balance_won;
    int64_t until_ms; /* active_until / hold_until */
    int64_t starts_at_ms;
    int64_t active_ttl_ms;
    int64_t hold_ttl_ms;
    uint64_t seq;
    uint64_t position;
    ct_id concert_id, schedule_id, token, user_id, reservation_id, payment_id;
    uint16_t title_len;
    char title[CT_TITLE_BYTES_MAX + 1]; /* ConcertCreated only */
} ct_out;

const char *ct_cmd_type_name(ct_cmd_type t);      /* "HoldSeat"; NULL if invalid */
ct_cmd_type ct_cmd_type_from_name(const char *s); /* CT_CMD_NONE if unknown */
ct_role ct_cmd_type_role(ct_cmd_type t);          /* 0 if invalid */
ct_topic ct_cmd_type_topic(ct_cmd_type t);        /* its role's commands topic; NONE if invalid */
const char *ct_reason_name(ct_reason r);          /* "SEAT_TAKEN"; NULL if invalid/NONE */
ct_reason ct_reason_from_name(const char *s);     /* CT_REASON_NONE if unknown */
const char *ct_out_type_name(ct_out_type t);      /* "SeatHeld"; NULL if invalid */
const char *ct_topic_name(ct_topic t);            /* "concert.events"; NULL if invalid */
const char *ct_token_status_name(ct_token_status s);

/* ---- the catalogue (ct_catalog.h), as data --------------------------- */

ct_out_type ct_out_type_from_name(const char *s); /* CT_OUT_NONE if unknown */
/* Who writes a command: CT_FROM_CLIENT ones answer an HTTP request. */
typedef enum ct_cmd_from { CT_FROM_NONE = 0, CT_FROM_CLIENT, CT_FROM_PROCESSOR, CT_FROM_RELAY } ct_cmd_from;
ct_cmd_from ct_cmd_type_from(ct_cmd_type t);
/* The data field a command's key must equal (its partition key); NULL when
 * there is none (PaymentSettled's key is the concert, Tick has none). */
const char *ct_cmd_type_key_field(ct_cmd_type t);
/* Whether an output is always the one outcome of its command, and which. */
typedef enum ct_outcome { CT_OUTCOME_NONE = 0, CT_OUTCOME_SUCCEEDED, CT_OUTCOME_REJECTED } ct_outcome;
ct_outcome ct_out_type_outcome(ct_out_type t);
/* Where an output goes; CT_TOPIC_ID_NONE for CommandRejected (the events
 * topic of the role that rejects). */
ct_topic ct_out_type_topic(ct_out_type t);

/* A command's data fields, in catalogue order. */
typedef enum ct_field_kind {
    CT_FIELD_ID,
    CT_FIELD_I64,
    CT_FIELD_U32,
    CT_FIELD_BOOL,
    CT_FIELD_REASON,
    CT_FIELD_TITLE,
    CT_FIELD_SCHEDULES,
} ct_field_kind;
typedef struct ct_field {
    const char *name; /* JSON name in the record's data; NULL ends a list */
    ct_field_kind kind;
    size_t off; /* within ct_cmd */
    bool required;
    int64_t lo, hi, dflt; /* integers: range, and the default when optional */
} ct_field;
/* The fields of t's data, ended by one with a NULL name (an empty list for
 * Tick and for an invalid t). */
const ct_field *ct_cmd_fields(ct_cmd_type t);
/* Where a CommandRejected keeps a field of the rejected command (its ids,
 * seat_no, amount: the ct_out member of that name and kind), as an offset
 * into ct_out; -1 for a field it does not repeat. */
ptrdiff_t ct_out_rejected_slot(const ct_field *f);

/* Checks every field of a typed command against the rules of the wire
 * format and the limits (ids, ranges, required fields, key = the
 * partition id). Returns 0, or -1 with a PERMANENT error naming the field.
 * The decoder calls it; the core calls it again, so a typed command built
 * in C is held to the same rules. */
int ct_cmd_validate(const ct_cmd *cmd, ct_error *err);
/* Time is the commands' own (DESIGN.md section 4), but no host's clock may
 * run it ahead: a ts more than skew_ms past logged_ms (when the brokers
 * logged the record, a time the replay sees again) is lowered to
 * logged_ms + skew_ms. true when it was. logged_ms <= 0: unknown, kept. */
bool ct_cmd_bound_ts(ct_cmd *cmd, int64_t logged_ms, int64_t skew_ms);

#endif
