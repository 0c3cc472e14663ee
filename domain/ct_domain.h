/*
 * ct_domain: the pure reservation core.
 *
 * Given the state (read through a ct_kv_port) and one validated command, it
 * fills a ct_effects with the state mutations and the output records. It
 * never does I/O, reads no clock, draws no random numbers, logs nothing and
 * never exits: the same state and record always give byte-identical
 * effects.
 *
 * Time is data (DESIGN.md section 4): the partition's logical time is
 * max(stored clock, record ts). Before the command runs, every deadline at
 * or before that time is processed in (time, kind, id) order at its own
 * time: hold expiries, active-token expiries and the admissions they allow.
 *
 * Rejections (a seat taken, a token not active, ...) are not errors: they
 * are outputs (CommandRejected or a typed rejection) with a reason code,
 * and apply returns 0. apply returns -1 only for:
 *   - PERMANENT: the command is malformed (ct_cmd_validate) or for the
 *     other role; nothing was read or applied: dead-letter it.
 *   - the port's own error class (RETRIABLE / FATAL) when a read failed;
 *   - FATAL: the state is corrupt or a limit of ct_effects was reached.
 * On -1 the effects must be discarded.
 *
 * Locality: any thread, one call at a time per ct_effects.
 */
#ifndef CT_DOMAIN_H
#define CT_DOMAIN_H

#include "ct_effects.h"
#include "ct_error.h"
#include "ct_kv.h"
#include "ct_record.h"

/* Applies a concert.commands record (CreateConcert, IssueToken, HoldSeat,
 * RequestPayment, PaymentSettled, Tick). Returns 0 or -1 (see above). */
int ct_concert_apply(const ct_kv_port *port, const ct_cmd *cmd, ct_effects *fx, ct_error *err);

/* Applies a wallet.commands record (ChargeBalance, DebitRequested,
 * RefundRequested). Returns 0 or -1 (see above). */
int ct_wallet_apply(const ct_kv_port *port, const ct_cmd *cmd, ct_effects *fx, ct_error *err);

/* The terminal answer to a command the processor dead-letters (it does
 * not decode or validate, or is for the other role), so that it still ends
 * with exactly one outcome: CommandRejected with reason POISON on the
 * role's events topic. envelope holds what ct_codec_decode_envelope
 * salvaged (id, type, command_id, key, ts); only a command a client sends
 * (CreateConcert, IssueToken, HoldSeat, RequestPayment, ChargeBalance) is
 * answered. Reads no state. Returns 0, or -1 PERMANENT when there is no
 * client command to answer (the dead-letter alone stands). */
int ct_domain_reject_poison(ct_role role, const ct_cmd *envelope, ct_effects *fx, ct_error *err);

/* Dispatches on role. */
int ct_domain_apply(ct_role role, const ct_kv_port *port, const ct_cmd *cmd, ct_effects *fx, ct_error *err);

#endif
