/*
 * ct_catalog: the one list of the record types the pipeline carries, as
 * X-macros. Everything that names, routes, decodes, validates or dispatches
 * a type is generated from these rows: the ct_cmd_type and ct_out_type
 * enums and their name tables (ct_record), each command's role and
 * partition key, who may send it, the decoder's field tables (ct_codec, both
 * decoders) and the validation of a typed command (ct_cmd_validate), the
 * fields a CommandRejected repeats, the projector's dispatch by event type
 * and the ingress's checks of a request body. tests/domain/
 * test_catalog.c checks the JSON Schemas in schemas/ against it.
 *
 * Adding a command (docs/decisions.md, "One catalogue of record types"):
 * its CT_COMMANDS row and CT_FIELDS_<TYPE> list, its payload struct in the
 * ct_cmd union (ct_record.h), its handler in the core (the switch over
 * ct_cmd_type has no default, so -Wswitch-enum names every place that must
 * say what to do with it), the ingress route and its case in
 * ct_api_build_command if clients send it (the body's checks come from the
 * IN column), its projection, its schema, tests.
 */
#ifndef CT_CATALOG_H
#define CT_CATALOG_H

/* Commands: what the processors consume.
 *   X(TYPE, member, "Name", ROLE, "key field" or NULL, FROM)
 * member: the payload's name in ct_cmd's union; ROLE: CONCERT or WALLET
 * (the topic is <role>.commands); key field: the data field that must equal
 * the record's key (its partition key; NULL: checked as an id only); FROM:
 * CLIENT (written by the ingress for an HTTP request: its rejections answer
 * the client), PROCESSOR (one role to the other), RELAY (the ticker). */
#define CT_COMMANDS(X)                                                                   \
    X(CREATE_CONCERT, create_concert, "CreateConcert", CONCERT, "concert_id", CLIENT)    \
    X(ISSUE_TOKEN, issue_token, "IssueToken", CONCERT, "concert_id", CLIENT)             \
    X(HOLD_SEAT, hold_seat, "HoldSeat", CONCERT, "concert_id", CLIENT)                   \
    X(REQUEST_PAYMENT, request_payment, "RequestPayment", CONCERT, "concert_id", CLIENT) \
    X(PAYMENT_SETTLED, payment_settled, "PaymentSettled", CONCERT, NULL, PROCESSOR)      \
    X(TICK, tick, "Tick", CONCERT, NULL, RELAY)                                          \
    X(CHARGE_BALANCE, charge_balance, "ChargeBalance", WALLET, "user_id", CLIENT)        \
    X(DEBIT_REQUESTED, debit_requested, "DebitRequested", WALLET, "user_id", PROCESSOR)  \
    X(REFUND_REQUESTED, refund_requested, "RefundRequested", WALLET, "user_id", PROCESSOR)

/* A command's data fields, in the order they are checked and repeated.
 *   F(m, KIND, json_name, member, REQ|OPT, lo, hi, default, IN)
 * m: the payload (passed through); KIND: ID (an id of [A-Za-z0-9_-]), I64,
 * U32 (integers in lo..hi, an OPT one takes default when absent), BOOL,
 * REASON (a rejection reason's name), TITLE, SCHEDULES (CreateConcert's).
 * IN: where a client's HTTP request carries it (ingress/ct_api makes its
 * body checks from these rows): BODY (in the JSON body, checked as KIND,
 * REQ/OPT and range say), CONCERT_ID or RESERVATION_ID (in the body, in the
 * form the ingress gives those ids: 24 lowercase hex characters, and
 * <concert id>_<token>), USER (the bearer token's user: optional in the
 * body, and then it must be that user; checked before the other body
 * fields), PATH, HEADER (X-Queue-Token), MADE (the ingress makes it: a new
 * id, or derived from another field), NONE (not a client's command). */
#define CT_FIELDS_CREATE_CONCERT(F, m)                                                                         \
    F(m, ID, concert_id, concert_id, REQ, 0, 0, 0, MADE)                                                       \
    F(m, TITLE, title, title, REQ, 0, 0, 0, BODY)                                                              \
    F(m, SCHEDULES, schedules, schedules, REQ, 0, 0, 0, BODY)                                                  \
    F(m, U32, max_active, max_active, OPT, CT_MAX_ACTIVE_MIN, CT_MAX_ACTIVE_MAX, CT_MAX_ACTIVE_DEFAULT, BODY)  \
    F(m, I64, active_ttl_ms, active_ttl_ms, OPT, CT_TTL_MS_MIN, CT_TTL_MS_MAX, CT_ACTIVE_TTL_MS_DEFAULT, BODY) \
    F(m, I64, hold_ttl_ms, hold_ttl_ms, OPT, CT_TTL_MS_MIN, CT_TTL_MS_MAX, CT_HOLD_TTL_MS_DEFAULT, BODY)
#define CT_FIELDS_ISSUE_TOKEN(F, m)                \
    F(m, ID, token, token, REQ, 0, 0, 0, MADE)     \
    F(m, ID, user_id, user_id, REQ, 0, 0, 0, USER) \
    F(m, ID, concert_id, concert_id, REQ, 0, 0, 0, CONCERT_ID)
#define CT_FIELDS_HOLD_SEAT(F, m)                                \
    F(m, ID, reservation_id, reservation_id, REQ, 0, 0, 0, MADE) \
    F(m, ID, token, token, REQ, 0, 0, 0, HEADER)                 \
    F(m, ID, user_id, user_id, REQ, 0, 0, 0, USER)               \
    F(m, ID, concert_id, concert_id, REQ, 0, 0, 0, CONCERT_ID)   \
    F(m, ID, schedule_id, schedule_id, REQ, 0, 0, 0, BODY)       \
    F(m, U32, seat_no, seat_no, REQ, 1, CT_SEATS_PER_SCHEDULE_MAX, 0, BODY)
#define CT_FIELDS_REQUEST_PAYMENT(F, m)                                    \
    F(m, ID, payment_id, payment_id, REQ, 0, 0, 0, MADE)                   \
    F(m, ID, reservation_id, reservation_id, REQ, 0, 0, 0, RESERVATION_ID) \
    F(m, ID, token, token, REQ, 0, 0, 0, HEADER)                           \
    F(m, ID, user_id, user_id, REQ, 0, 0, 0, USER)                         \
    F(m, ID, concert_id, concert_id, REQ, 0, 0, 0, MADE)
#define CT_FIELDS_PAYMENT_SETTLED(F, m)                              \
    F(m, ID, payment_id, payment_id, REQ, 0, 0, 0, NONE)             \
    F(m, ID, reservation_id, reservation_id, REQ, 0, 0, 0, NONE)     \
    F(m, ID, user_id, user_id, REQ, 0, 0, 0, NONE)                   \
    F(m, I64, amount, amount_won, REQ, 0, CT_PRICE_WON_MAX, 0, NONE) \
    F(m, BOOL, ok, ok, REQ, 0, 0, 0, NONE)                           \
    F(m, REASON, reason, reason, OPT, 0, 0, 0, NONE)
#define CT_FIELDS_TICK(F, m)
#define CT_FIELDS_CHARGE_BALANCE(F, m)             \
    F(m, ID, user_id, user_id, REQ, 0, 0, 0, PATH) \
    F(m, I64, amount, amount_won, REQ, CT_CHARGE_WON_MIN, CT_CHARGE_WON_MAX, 0, BODY)
#define CT_FIELDS_DEBIT_REQUESTED(F, m)                          \
    F(m, ID, payment_id, payment_id, REQ, 0, 0, 0, NONE)         \
    F(m, ID, reservation_id, reservation_id, REQ, 0, 0, 0, NONE) \
    F(m, ID, user_id, user_id, REQ, 0, 0, 0, NONE)               \
    F(m, ID, concert_id, concert_id, REQ, 0, 0, 0, NONE)         \
    F(m, I64, amount, amount_won, REQ, 0, CT_PRICE_WON_MAX, 0, NONE)
#define CT_FIELDS_REFUND_REQUESTED(F, m)                             \
    F(m, ID, payment_id, payment_id, REQ, 0, 0, 0, NONE)             \
    F(m, ID, user_id, user_id, REQ, 0, 0, 0, NONE)                   \
    F(m, I64, amount, amount_won, REQ, 0, CT_PRICE_WON_MAX, 0, NONE) \
    F(m, REASON, reason, reason, REQ, 0, 0, 0, NONE)

/* Outputs: events for the projector, and the commands one processor sends
 * the other.
 *   X(TYPE, "Name", TOPIC, OUTCOME)
 * TOPIC: CONCERT_EVENTS, WALLET_EVENTS, CONCERT_COMMANDS, WALLET_COMMANDS,
 * or EVENTS (either events topic: the role that emits it decides);
 * OUTCOME: SUCCEEDED or REJECTED (it is always the one outcome of the
 * command it names, and says so), NONE (progress, or a record for the
 * other processor: never an outcome).
 * A payment's outcome is the wallet's decision (BalanceDebited or
 * DebitRejected), not the settlement that follows it: once the concert
 * side has sent DebitRequested the reservation is PAYMENT_PENDING, exempt
 * from expiry, and its settlement confirms it if and only if the debit
 * succeeded, so the answer need not wait for that third hop. (A
 * DebitRejected for a DUPLICATE request follows the first decision and is
 * not terminal: the core clears the flag.) */
#define CT_OUTPUTS(X)                                                      \
    X(CONCERT_CREATED, "ConcertCreated", CONCERT_EVENTS, SUCCEEDED)        \
    X(SCHEDULE_CREATED, "ScheduleCreated", CONCERT_EVENTS, NONE)           \
    X(TOKEN_ISSUED, "TokenIssued", CONCERT_EVENTS, SUCCEEDED)              \
    X(TOKEN_ACTIVATED, "TokenActivated", CONCERT_EVENTS, NONE)             \
    X(TOKEN_EXPIRED, "TokenExpired", CONCERT_EVENTS, NONE)                 \
    X(TOKEN_DONE, "TokenDone", CONCERT_EVENTS, NONE)                       \
    X(SEAT_HELD, "SeatHeld", CONCERT_EVENTS, SUCCEEDED)                    \
    X(SEAT_HOLD_EXPIRED, "SeatHoldExpired", CONCERT_EVENTS, NONE)          \
    X(PAYMENT_REQUESTED, "PaymentRequested", CONCERT_EVENTS, NONE)         \
    X(SEAT_SOLD, "SeatSold", CONCERT_EVENTS, NONE)                         \
    X(RESERVATION_CONFIRMED, "ReservationConfirmed", CONCERT_EVENTS, NONE) \
    X(PAYMENT_FAILED, "PaymentFailed", CONCERT_EVENTS, NONE)               \
    X(SETTLEMENT_REJECTED, "SettlementRejected", CONCERT_EVENTS, NONE)     \
    X(COMMAND_REJECTED, "CommandRejected", EVENTS, REJECTED)               \
    X(BALANCE_CHARGED, "BalanceCharged", WALLET_EVENTS, SUCCEEDED)         \
    X(BALANCE_DEBITED, "BalanceDebited", WALLET_EVENTS, SUCCEEDED)         \
    X(DEBIT_REJECTED, "DebitRejected", WALLET_EVENTS, REJECTED)            \
    X(BALANCE_REFUNDED, "BalanceRefunded", WALLET_EVENTS, NONE)            \
    X(REFUND_REJECTED, "RefundRejected", WALLET_EVENTS, NONE)              \
    X(DEBIT_REQUESTED, "DebitRequested", WALLET_COMMANDS, NONE)            \
    X(PAYMENT_SETTLED, "PaymentSettled", CONCERT_COMMANDS, NONE)           \
    X(REFUND_REQUESTED, "RefundRequested", WALLET_COMMANDS, NONE)

#endif
