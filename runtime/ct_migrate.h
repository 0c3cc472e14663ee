/*
 * ct_migrate: numbered SQL migrations, applied once and in order.
 *
 * The project's migrations live in migrations/NNNN_name.sql and are compiled
 * into the binary (ct_migrations_embedded). Each is applied in its own
 * transaction together with its row in schema_migrations(version, name,
 * checksum, applied_at); a transaction-level advisory lock serialises
 * concurrent migrators. Re-running is a no-op. A recorded migration whose
 * checksum no longer matches the file is an error: applied history is never
 * rewritten silently.
 */
#ifndef CT_MIGRATE_H
#define CT_MIGRATE_H

#include <libpq-fe.h>
#include <stddef.h>

#include "ct_error.h"

typedef struct ct_migration {
    int version;
    const char *name;
    const char *sql;
} ct_migration;

/* The project's migrations, in version order. */
extern const ct_migration ct_migrations_embedded[];
extern const size_t ct_migrations_embedded_count;

/* Applies the missing migrations of list[0..count) in order. *applied (may
 * be NULL) gets how many were applied now. */
int ct_migrate_apply(PGconn *conn, const ct_migration *list, size_t count, int *applied, ct_error *err);

#endif
