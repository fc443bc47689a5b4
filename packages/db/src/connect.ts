import postgres from "postgres";

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

/**
 * A postgres.js pool whose result columns come back camelCase. `max` may also come from the URL
 * (`?max=1`, which the embedded dev Postgres needs).
 */
export function connect(url: string, options: { max?: number } = {}): Sql {
  return postgres(url, {
    ...(options.max !== undefined ? { max: options.max } : {}),
    transform: { column: { from: postgres.toCamel } },
    onnotice: () => {},
    connect_timeout: 10,
  });
}
