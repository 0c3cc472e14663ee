/* ct_catalog: ct_catalog.h's rows as the tables ct_record.h declares. */
#include <stddef.h>
#include <string.h>

#include "ct_record.h"

typedef struct cmd_row {
    const char *name;
    ct_role role;
    const char *key_field;
    ct_cmd_from from;
    const ct_field *fields;
} cmd_row;

#define CT_FIELD_REQ true
#define CT_FIELD_OPT false
#define FIELD_ROW(m, kind, json, member, req, lo, hi, dflt, in) \
    {#json, CT_FIELD_##kind, offsetof(ct_cmd, u.m.member), CT_FIELD_##req, lo, hi, dflt},
#define FIELD_END \
    { NULL, CT_FIELD_ID, 0, false, 0, 0, 0 }
#define CT_X(type, member, name, role, key, from) \
    static const ct_field fields_##member[] = {CT_FIELDS_##type(FIELD_ROW, member) FIELD_END};
CT_COMMANDS(CT_X)
#undef CT_X

static const ct_field no_fields[] = {FIELD_END};

static const cmd_row commands[CT_CMD_TYPE_COUNT_] = {
#define CT_X(type, member, name, role, key, from) \
    [CT_CMD_##type] = {name, CT_ROLE_##role, key, CT_FROM_##from, fields_##member},
    CT_COMMANDS(CT_X)
#undef CT_X
};

typedef struct out_row {
    const char *name;
    ct_topic topic;
    ct_outcome outcome;
} out_row;

#define CT_TOPIC_ID_EVENTS CT_TOPIC_ID_NONE
static const out_row outputs[CT_OUT_TYPE_COUNT_] = {
#define CT_X(type, name, topic, outcome) [CT_OUT_##type] = {name, CT_TOPIC_ID_##topic, CT_OUTCOME_##outcome},
    CT_OUTPUTS(CT_X)
#undef CT_X
};

static bool cmd_valid(ct_cmd_type t) { return (int)t > 0 && t < CT_CMD_TYPE_COUNT_; }
static bool out_valid(ct_out_type t) { return (int)t > 0 && t < CT_OUT_TYPE_COUNT_; }

const char *ct_cmd_type_name(ct_cmd_type t) { return cmd_valid(t) ? commands[t].name : NULL; }

ct_cmd_type ct_cmd_type_from_name(const char *s) {
    for (int t = 1; t < CT_CMD_TYPE_COUNT_; t++)
        if (strcmp(commands[t].name, s) == 0) return (ct_cmd_type)t;
    return CT_CMD_NONE;
}

ct_role ct_cmd_type_role(ct_cmd_type t) { return cmd_valid(t) ? commands[t].role : (ct_role)0; }
ct_topic ct_cmd_type_topic(ct_cmd_type t) {
    if (!cmd_valid(t)) return CT_TOPIC_ID_NONE;
    return commands[t].role == CT_ROLE_WALLET ? CT_TOPIC_ID_WALLET_COMMANDS : CT_TOPIC_ID_CONCERT_COMMANDS;
}

ct_cmd_from ct_cmd_type_from(ct_cmd_type t) { return cmd_valid(t) ? commands[t].from : CT_FROM_NONE; }
const char *ct_cmd_type_key_field(ct_cmd_type t) { return cmd_valid(t) ? commands[t].key_field : NULL; }
const ct_field *ct_cmd_fields(ct_cmd_type t) { return cmd_valid(t) ? commands[t].fields : no_fields; }

const char *ct_out_type_name(ct_out_type t) { return out_valid(t) ? outputs[t].name : NULL; }

ct_out_type ct_out_type_from_name(const char *s) {
    for (int t = 1; t < CT_OUT_TYPE_COUNT_; t++)
        if (strcmp(outputs[t].name, s) == 0) return (ct_out_type)t;
    return CT_OUT_NONE;
}

ct_outcome ct_out_type_outcome(ct_out_type t) { return out_valid(t) ? outputs[t].outcome : CT_OUTCOME_NONE; }
ct_topic ct_out_type_topic(ct_out_type t) { return out_valid(t) ? outputs[t].topic : CT_TOPIC_ID_NONE; }

static const struct {
    const char *name;
    ct_field_kind kind;
    size_t off;
} rejected_slots[] = {
    {"concert_id", CT_FIELD_ID, offsetof(ct_out, concert_id)},
    {"schedule_id", CT_FIELD_ID, offsetof(ct_out, schedule_id)},
    {"token", CT_FIELD_ID, offsetof(ct_out, token)},
    {"user_id", CT_FIELD_ID, offsetof(ct_out, user_id)},
    {"reservation_id", CT_FIELD_ID, offsetof(ct_out, reservation_id)},
    {"payment_id", CT_FIELD_ID, offsetof(ct_out, payment_id)},
    {"seat_no", CT_FIELD_U32, offsetof(ct_out, seat_no)},
    {"amount", CT_FIELD_I64, offsetof(ct_out, amount_won)},
};

ptrdiff_t ct_out_rejected_slot(const ct_field *f) {
    for (size_t i = 0; i < sizeof rejected_slots / sizeof rejected_slots[0]; i++)
        if (f->kind == rejected_slots[i].kind && strcmp(f->name, rejected_slots[i].name) == 0)
            return (ptrdiff_t)rejected_slots[i].off;
    return -1;
}
