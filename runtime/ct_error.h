/*
 * ct_error: the one error type of the project.
 *
 * Fallible functions return 0 on success and -1 on failure, and on failure
 * fill the caller's ct_error (which may be NULL when the caller does not
 * care). The class tells the runner what to do: retry with backoff, dead-
 * letter and move on, or stop. Only main() turns an error into an exit code.
 */
#ifndef CT_ERROR_H
#define CT_ERROR_H

typedef enum ct_err_class {
    CT_ERR_NONE = 0,
    CT_ERR_RETRIABLE, /* transient: the same call may succeed later */
    CT_ERR_PERMANENT, /* this input will never succeed: reject / dead-letter */
    CT_ERR_FATAL,     /* the process cannot go on safely: stop, commit nothing */
} ct_err_class;

typedef struct ct_error {
    ct_err_class klass;
    char msg[256];    /* primary message, one line, no secrets */
    char detail[512]; /* optional detail (library message, hint) */
    const char *file; /* where it arose */
    int line;
} ct_error;

void ct_error_set_at(ct_error *err, ct_err_class klass, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Adds (or replaces) the detail of an error already set. */
void ct_error_detail(ct_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ct_error_clear(ct_error *err);
const char *ct_err_class_name(ct_err_class klass);

#define CT_ERR(err, klass, ...) ct_error_set_at((err), (klass), __FILE__, __LINE__, __VA_ARGS__)

#endif
