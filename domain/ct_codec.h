/*
 * ct_codec: JSON envelopes <-> typed records (DESIGN.md section 3).
 *
 *   { "id", "type", "v", "ts", "command_id", "key", "data" }
 *
 * Decoding is strict: unknown type, missing or unknown field, wrong JSON
 * type, out-of-range value, duplicate key or trailing garbage each give a
 * PERMANENT error whose message names the field ("field data.seat_no: ...").
 * Nothing partial escapes: on error *out is unspecified and must not be
 * applied.
 *
 * Encoding is hand-built with a fixed key order, no whitespace and integers
 * only, so the same output always gives the same bytes. An output's record
 * id is "<input id>:<index>".
 *
 * Pure; thread-safe (no shared state).
 */
#ifndef CT_CODEC_H
#define CT_CODEC_H

#include <stddef.h>

#include "ct_effects.h"
#include "ct_error.h"
#include "ct_record.h"

/* Envelope format version this codec reads and writes. */
#define CT_CODEC_VERSION 1

/* Decodes one record value (len bytes, not NUL-terminated) into *out and
 * validates it (ct_cmd_validate). Returns 0, or -1 with a PERMANENT error. */
int ct_codec_decode(const char *json, size_t len, ct_cmd *out, ct_error *err);

/* What can be read of a record that does not decode: its envelope's id,
 * type (a known name), command_id and key when each is present and valid,
 * and ts (0 when absent or out of range); the data is not looked at.
 * Returns 0 when id, type, command_id and key were all read, else -1.
 * For answering a dead-lettered command (ct_domain_reject_poison). */
int ct_codec_decode_envelope(const char *json, size_t len, ct_cmd *out);

/* ct_codec_decode is these two: the fast path, which decodes the common
 * shape (a flat envelope of ASCII strings, integers and booleans) in place
 * and returns 1, or returns 0 for anything else without a message; then,
 * for what it declined, the general decoder (jansson). Both produce the
 * same ct_cmd for what the fast path accepts (without validation: the
 * caller runs ct_cmd_validate); exposed so tests can hold them equal. */
int ct_codec_decode_fast(const char *json, size_t len, ct_cmd *out);
int ct_codec_decode_general(const char *json, size_t len, ct_cmd *out, ct_error *err);

/* Encodes output o, produced by the input whose id is input_id, into buf
 * (cap bytes; CT_OUTPUT_RECORD_BYTES_MAX always suffices). Sets *len (no
 * NUL counted; a NUL is written when room allows). Returns 0, or -1 with a
 * FATAL error if buf is too small or o is not a valid output (a bug). */
int ct_codec_encode_out(const ct_out *o, const char *input_id, char *buf, size_t cap, size_t *len, ct_error *err);

/* Same for the i-th output of fx. */
int ct_codec_encode_effect(const ct_effects *fx, size_t i, char *buf, size_t cap, size_t *len, ct_error *err);

/* Writes output o's record id ("<input id>:<index>") into buf
 * (CT_OUTPUT_ID_BYTES_MAX + 1 bytes); returns its length. */
size_t ct_codec_output_id(const char *input_id, uint32_t index, char *buf);

#endif
