/* libFuzzer harness: the projector's event decoder (ct_projector_check_event)
 * on arbitrary bytes: an event either would be applied or is skipped with
 * a reason, never read out of bounds; an event that would be applied has
 * an id, a type and a command id. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "ct_projector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *bad = ct_projector_check_event(data, size);
    if (!bad) {
        json_t *root = json_loadb((const char *)data, size, 0, NULL);
        const char *id = json_string_value(json_object_get(root, "id"));
        const char *type = json_string_value(json_object_get(root, "type"));
        const char *cid = json_string_value(json_object_get(root, "command_id"));
        if (!id || !id[0] || !type || !cid || !cid[0]) abort();
        json_decref(root);
    }
    return 0;
}
