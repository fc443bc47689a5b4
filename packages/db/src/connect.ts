import postgres from "postgres";
import { assertPostgresPatched } from "./postgres-patch";

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

let patchChecked = false;

/**
 * A postgres.js pool whose columns are camelCase in JavaScript and snake_case in SQL. `max` may also come from the URL
 * (`?max=1`, which the embedded dev Postgres needs). `statementTimeoutMs` is every statement's ceiling on
 * this pool's connections (Postgres cancels a longer one; see deadline.ts for the call's own deadline).
 * The first call checks that the local postgres.js patch is applied.
 */
export function connect(url: string, options: { max?: number; statementTimeoutMs?: number } = {}): Sql {
  patchChecked ||= (assertPostgresPatched(), true);
  return postgres(url, {
    ...(options.max !== undefined ? { max: options.max } : {}),
    ...(options.statementTimeoutMs ? { connection: { statement_timeout: options.statementTimeoutMs } } : {}),
    transform: { column: { from: postgres.toCamel, to: postgres.fromCamel } },
    onnotice: () => {},
    connect_timeout: 10,
    // Seconds before a connection tries again after losing the server. postgres.js's default grows as
    // 3^retries/100 up to 20 s, counted over every failed connection of the pool, so a brief outage
    // under load left calls waiting ~15-20 s after the database was back. 50 ms doubling, at most 1 s.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
  });
}
