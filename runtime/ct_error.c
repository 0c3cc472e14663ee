/* ct_error: see ct_error.h. */
#include "ct_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void ct_error_set_at(ct_error *err, ct_err_class klass, const char *file, int line, const char *fmt, ...) {
    if (!err) return;
    err->klass = klass;
    err->file = file;
    err->line = line;
    err->detail[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

void ct_error_detail(ct_error *err, const char *fmt, ...) {
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
    /* Library messages often end in a newline; errors are one line. */
    size_t n = strlen(err->detail);
    while (n > 0 && (err->detail[n - 1] == '\n' || err->detail[n - 1] == '\r')) err->detail[--n] = '\0';
}

void ct_error_clear(ct_error *err) {
    if (!err) return;
    memset(err, 0, sizeof *err);
}

const char *ct_err_class_name(ct_err_class klass) {
    switch (klass) {
    case CT_ERR_NONE: return "none";
    case CT_ERR_RETRIABLE: return "retriable";
    case CT_ERR_PERMANENT: return "permanent";
    case CT_ERR_FATAL: return "fatal";
    }
    return "unknown";
}
