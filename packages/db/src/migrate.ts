import type { Sql } from "./connect";
import { MIGRATIONS } from "./migrations";
import type { Migration } from "./migrations";

/**
 * Applies pending migrations in one transaction under an advisory lock, so replicas that start at the
 * same moment apply each migration once: the second waits for the first, then finds nothing to do.
 * Returns the versions it applied.
 */
export async function migrate(sql: Sql, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  return sql.begin(async (tx) => {
    // Waiting for another replica's migration and building indexes may outlast the pool's statement ceiling.
    await tx`SELECT set_config('statement_timeout', '0', true)`;
    await tx`SELECT pg_advisory_xact_lock(hashtext('kms.schema_migrations'))`;
    await tx`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version    integer PRIMARY KEY,
        name       text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`;
    const rows = await tx<{ version: number }[]>`SELECT version FROM schema_migrations`;
    const applied = new Set(rows.map((r) => r.version));
    const done: number[] = [];
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      await tx.unsafe(m.sql);
      await tx`INSERT INTO schema_migrations (version, name) VALUES (${m.version}, ${m.name})`;
      done.push(m.version);
    }
    return done;
  });
}
