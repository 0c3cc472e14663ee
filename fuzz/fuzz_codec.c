/* libFuzzer harness: the processors' record decoders on arbitrary bytes,
 * differentially. The fast path must either decline or decode exactly
 * what the general decoder decodes (and the same validation verdict);
 * the envelope salvage of a dead-lettered record must never fail hard;
 * whatever decodes and validates is applied by the pure core on an empty
 * in-memory state without an error other than a rejection. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ct_codec.h"
#include "ct_domain.h"
#include "ct_effects.h"
#include "ct_memkv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *buf = (const char *)data;
    ct_cmd fast, general;
    ct_error ef = {0}, eg = {0};
    memset(&fast, 0, sizeof fast);
    memset(&general, 0, sizeof general);
    int took = ct_codec_decode_fast(buf, size, &fast);
    int g = ct_codec_decode_general(buf, size, &general, &eg);
    if (took) {
        int vf = ct_cmd_validate(&fast, &ef);
        if ((vf == 0) != (g == 0)) abort(); /* one accepted what the other refused */
        if (vf == 0 && memcmp(&fast, &general, sizeof fast) != 0) abort();
    }
    ct_cmd env;
    if (ct_codec_decode_envelope(buf, size, &env) == 0 && (env.id_len == 0 || env.type == CT_CMD_NONE)) abort();
    if (g == 0) {
        ct_memkv *kv = ct_memkv_new();
        ct_effects *fx = ct_effects_new();
        ct_kv_port port = ct_memkv_port(kv);
        ct_error ea = {0};
        ct_role role = ct_cmd_type_role(general.type);
        if (kv && fx && ct_domain_apply(role, &port, &general, fx, &ea) != 0 && ea.klass != CT_ERR_PERMANENT) abort();
        ct_effects_destroy(fx);
        ct_memkv_destroy(kv);
    }
    return 0;
}
