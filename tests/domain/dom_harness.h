/*
 * dom_harness: drives the domain core against two ct_memkv maps (one
 * concert partition, one wallet partition) for the domain tests.
 *
 * Commands are built with small helpers that give each record a fresh id
 * ("r<n>") and command id ("c<n>"). dom_apply runs the core, checks it
 * succeeded, applies the mutations to the right map and returns the
 * effects (valid until the next apply).
 */
#ifndef DOM_HARNESS_H
#define DOM_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "ct_codec.h"
#include "ct_domain.h"
#include "ct_memkv.h"
#include "ct_state.h"

typedef struct dom {
    ct_memkv *concert;
    ct_memkv *wallet;
    ct_effects *fx;
    ct_out outcome; /* the payment's outcome, the wallet's, kept by dom_route_saga */
    uint64_t next_rec;
    ct_error err;
} dom;

void dom_init(dom *d);
void dom_fini(dom *d);

/* Fills the envelope of *c (type, ts, fresh id and command id, key). */
void dom_envelope(dom *d, ct_cmd *c, ct_cmd_type t, int64_t ts, const char *key);
ct_id dom_id(const char *s);

/* Builders. */
ct_cmd dom_create(dom *d, int64_t ts, const char *concert, uint32_t schedules, uint32_t seats, int64_t price,
                  uint32_t max_active, int64_t active_ttl_ms, int64_t hold_ttl_ms);
ct_cmd dom_issue(dom *d, int64_t ts, const char *token, const char *user, const char *concert);
ct_cmd dom_hold(dom *d, int64_t ts, const char *res, const char *token, const char *user, const char *concert,
                const char *schedule, uint32_t seat);
ct_cmd dom_pay(dom *d, int64_t ts, const char *payment, const char *res, const char *token, const char *user,
               const char *concert);
ct_cmd dom_settled(dom *d, int64_t ts, const char *concert, const char *payment, const char *res, const char *user,
                   int64_t amount, bool ok, ct_reason reason);
ct_cmd dom_tick(dom *d, int64_t ts);
ct_cmd dom_charge(dom *d, int64_t ts, const char *user, int64_t amount);
ct_cmd dom_debit(dom *d, int64_t ts, const char *payment, const char *res, const char *user, const char *concert,
                 int64_t amount);
ct_cmd dom_refund(dom *d, int64_t ts, const char *payment, const char *user, int64_t amount);

/* Applies to the role's map; fails the test if the core returned -1. */
const ct_effects *dom_apply(dom *d, const ct_cmd *c);
/* Applies; returns the core's result without failing (for error tests). */
int dom_try(dom *d, const ct_cmd *c);

/* The one terminal output of the last apply (fails the test unless exactly
 * one). */
const ct_out *dom_terminal(dom *d);
/* The reason of the terminal if it is a CommandRejected, else NONE. */
ct_reason dom_rejection(dom *d);
/* The first output of type t in the last apply, or NULL; and a count. */
const ct_out *dom_find(dom *d, ct_out_type t);
size_t dom_count(dom *d, ct_out_type t);

/* State inspection (fails the test on a corrupt value). */
bool dom_token(dom *d, const char *token, ct_st_token *t);
bool dom_reservation(dom *d, const char *res, ct_st_reservation *r);
bool dom_seat(dom *d, const char *concert, const char *schedule, uint32_t seat, ct_st_seat *s);
bool dom_queue(dom *d, const char *concert, ct_st_queue *q);
int64_t dom_balance(dom *d, const char *user);
int64_t dom_clock(dom *d, ct_memkv *kv);

/* Runs the full saga for a pending payment: routes the DebitRequested of
 * the last apply to the wallet and the wallet's PaymentSettled back.
 * Returns the concert-side effects of the settlement. */
const ct_effects *dom_route_saga(dom *d);
/* The one terminal output of the saga's wallet step (dom_route_saga): the
 * payment's outcome. The settlement after it has none. */
const ct_out *dom_saga_outcome(dom *d);

#endif
