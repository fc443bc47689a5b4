import postgres from "postgres";

export type Sql = postgres.Sql;
export type TransactionSql = postgres.TransactionSql;

/**
 * A postgres.js pool whose columns are camelCase in JavaScript and snake_case in SQL. `max` may also come from the URL
 * (`?max=1`, which the embedded dev Postgres needs).
 */
export function connect(url: string, options: { max?: number } = {}): Sql {
  return postgres(url, {
    ...(options.max !== undefined ? { max: options.max } : {}),
    transform: { column: { from: postgres.toCamel, to: postgres.fromCamel } },
    onnotice: () => {},
    connect_timeout: 10,
  });
}
