/* The catalogue (domain/ct_catalog.h) against the JSON Schemas of
 * schemas/: every command's data schema names exactly the catalogue's
 * fields, requires exactly its required ones, and gives integers the
 * catalogue's range and default; the command types each schema lists are
 * the catalogue's; the catalogue's own tables agree with each other. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "ct_record.h"

static json_t *load(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/schemas/%s", CT_SOURCE_DIR, name);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    cr_assert(j, "%s: %s", path, je.text);
    return j;
}

/* The data schema the schema's allOf gives for type, or NULL. */
static json_t *data_schema(json_t *schema, const char *type) {
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(schema, "allOf"), i, a) {
        json_t *t = json_object_get(json_object_get(json_object_get(a, "if"), "properties"), "type");
        const char *c = json_string_value(json_object_get(t, "const"));
        if (c && strcmp(c, type) == 0)
            return json_object_get(json_object_get(json_object_get(a, "then"), "properties"), "data");
    }
    return NULL;
}

static bool listed(json_t *arr, const char *name) {
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), name) == 0) return true;
    }
    return false;
}

static const char *kind_type(ct_field_kind k) {
    switch (k) {
    case CT_FIELD_I64:
    case CT_FIELD_U32: return "integer";
    case CT_FIELD_BOOL: return "boolean";
    case CT_FIELD_TITLE: return "string";
    case CT_FIELD_SCHEDULES: return "array";
    case CT_FIELD_ID:
    case CT_FIELD_REASON: return NULL; /* $ref to an id pattern / the reason codes */
    }
    return NULL;
}

/* One command's data schema against its catalogue fields. `strict`: the
 * schema of what clients send states every integer's range. */
static void check_command(ct_cmd_type t, json_t *data, bool strict) {
    const char *name = ct_cmd_type_name(t);
    cr_assert(data, "%s has no data schema", name);
    json_t *props = json_object_get(data, "properties"), *req = json_object_get(data, "required");
    cr_assert(json_is_false(json_object_get(data, "additionalProperties")) || t == CT_CMD_TICK,
              "%s: the schema allows fields the decoder refuses", name);
    size_t fields = 0, required = 0;
    for (const ct_field *f = ct_cmd_fields(t); f->name; f++) {
        fields++;
        required += f->required;
        json_t *p = json_object_get(props, f->name);
        cr_assert(p, "%s.%s is in the catalogue, not in the schema", name, f->name);
        cr_assert_eq(listed(req, f->name), f->required, "%s.%s: required in one, not the other", name, f->name);
        const char *want = kind_type(f->kind);
        if (want)
            cr_assert_str_eq(json_string_value(json_object_get(p, "type")), want, "%s.%s's type", name, f->name);
        else
            cr_assert(json_object_get(p, "$ref") || f->kind == CT_FIELD_REASON, "%s.%s: no id pattern", name, f->name);
        if (f->kind != CT_FIELD_I64 && f->kind != CT_FIELD_U32) continue;
        json_t *lo = json_object_get(p, "minimum"), *hi = json_object_get(p, "maximum");
        json_t *dflt = json_object_get(p, "default");
        cr_assert(lo, "%s.%s: no minimum", name, f->name);
        cr_assert_eq(json_integer_value(lo), f->lo, "%s.%s minimum", name, f->name);
        if (strict || hi) {
            cr_assert(hi, "%s.%s: no maximum", name, f->name);
            cr_assert_eq(json_integer_value(hi), f->hi, "%s.%s maximum", name, f->name);
        }
        if (!f->required) {
            cr_assert(dflt, "%s.%s: optional without its default", name, f->name);
            cr_assert_eq(json_integer_value(dflt), f->dflt, "%s.%s default", name, f->name);
        }
    }
    cr_assert_eq(json_object_size(props), fields, "%s: the schema has %zu fields, the catalogue %zu", name,
                 json_object_size(props), fields);
    cr_assert_eq(json_array_size(req), required, "%s: required lists differ", name);
}

Test(catalog, every_command_schema_is_the_catalogue) {
    json_t *commands = load("commands.json"), *events = load("events.json");
    json_t *enum_ = json_object_get(json_object_get(json_object_get(commands, "properties"), "type"), "enum");
    size_t in_commands = 0;
    for (int t = 1; t < CT_CMD_TYPE_COUNT_; t++) {
        ct_cmd_from from = ct_cmd_type_from((ct_cmd_type)t);
        const char *name = ct_cmd_type_name((ct_cmd_type)t);
        /* What the ingress and the ticker write is in commands.json; what
         * one processor sends the other, with the events. */
        bool outside = from == CT_FROM_PROCESSOR;
        cr_assert_eq(listed(enum_, name), !outside, "commands.json's types and %s", name);
        in_commands += !outside;
        check_command((ct_cmd_type)t, data_schema(outside ? events : commands, name), from == CT_FROM_CLIENT);
    }
    cr_assert_eq(json_array_size(enum_), in_commands, "commands.json lists types the catalogue does not have");
    json_decref(commands);
    json_decref(events);
}

Test(catalog, the_tables_agree) {
    for (int t = 1; t < CT_CMD_TYPE_COUNT_; t++) {
        ct_cmd_type c = (ct_cmd_type)t;
        cr_assert_eq(ct_cmd_type_from_name(ct_cmd_type_name(c)), c);
        cr_assert(ct_cmd_type_role(c) == CT_ROLE_CONCERT || ct_cmd_type_role(c) == CT_ROLE_WALLET);
        cr_assert_str_eq(ct_topic_name(ct_cmd_type_topic(c)),
                         ct_cmd_type_role(c) == CT_ROLE_WALLET ? "wallet.commands" : "concert.commands");
        /* A key field is an id field of the command. */
        const char *key = ct_cmd_type_key_field(c);
        bool found = key == NULL;
        for (const ct_field *f = ct_cmd_fields(c); key && f->name; f++)
            found |= strcmp(f->name, key) == 0 && f->kind == CT_FIELD_ID;
        cr_assert(found, "%s's key field %s is not one of its ids", ct_cmd_type_name(c), key);
        /* A client's command can be rejected: its ids fit a CommandRejected. */
        if (ct_cmd_type_from(c) == CT_FROM_CLIENT) {
            size_t kept = 0;
            for (const ct_field *f = ct_cmd_fields(c); f->name; f++) kept += ct_out_rejected_slot(f) >= 0;
            cr_assert_gt(kept, 0, "a CommandRejected of %s would name none of its ids", ct_cmd_type_name(c));
        }
    }
    cr_assert_eq(ct_cmd_type_from_name("NoSuchType"), CT_CMD_NONE);
    for (int o = 1; o < CT_OUT_TYPE_COUNT_; o++) {
        ct_out_type t = (ct_out_type)o;
        cr_assert_eq(ct_out_type_from_name(ct_out_type_name(t)), t);
        /* Records for the other processor are commands of the same name. */
        ct_topic topic = ct_out_type_topic(t);
        if (topic == CT_TOPIC_ID_CONCERT_COMMANDS || topic == CT_TOPIC_ID_WALLET_COMMANDS) {
            ct_cmd_type c = ct_cmd_type_from_name(ct_out_type_name(t));
            cr_assert_neq(c, CT_CMD_NONE, "%s goes to a command topic but is no command", ct_out_type_name(t));
            cr_assert_eq(ct_cmd_type_topic(c), topic, "%s", ct_out_type_name(t));
            cr_assert_eq(ct_out_type_outcome(t), CT_OUTCOME_NONE);
        }
    }
    cr_assert_eq(ct_out_type_outcome(CT_OUT_COMMAND_REJECTED), CT_OUTCOME_REJECTED);
    cr_assert_eq(ct_out_type_from_name("NoSuchEvent"), CT_OUT_NONE);
}
