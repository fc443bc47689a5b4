// Every query a call runs for itself ends by the call's deadline, without handlers passing it along:
// kms-api runs each handler inside withDeadline(), and the stores' transactions and reads take the
// deadline from here. Postgres enforces it (statement_timeout, set for the transaction only), so a
// backend is freed when the call's time is up even if kms-api is busy. Work shared by several calls
// (a cache load) or outliving the call (a usage flush) runs withoutDeadline(): one caller's short
// deadline must not fail another's call. The connection's own statement_timeout (connect()) bounds
// everything else.
import { AsyncLocalStorage } from "node:async_hooks";
import { deadlineExceeded } from "@kms/errors";
import type { Sql, TransactionSql } from "./connect";

const scope = new AsyncLocalStorage<Date>();

/** Runs `fn` (a call's handler) so that its queries end by `deadline`; none: the connection's ceiling. */
export function withDeadline<T>(deadline: Date | undefined, fn: () => Promise<T>): Promise<T> {
  return deadline === undefined ? scope.exit(fn) : scope.run(deadline, fn);
}

/** Runs `fn` free of the current call's deadline (shared or background work). */
export function withoutDeadline<T>(fn: () => T): T {
  return scope.exit(fn);
}

/** Postgres's answer to a statement stopped by statement_timeout (or a cancel request): SQLSTATE 57014. */
export function isQueryCancelled(err: unknown): boolean {
  return (err as { name?: unknown })?.name === "PostgresError" && (err as { code?: unknown }).code === "57014";
}

/** The connection's statement_timeout in ms (connect()); 0: none. */
function ceilingMs(sql: Sql): number {
  const value = (sql.options.connection as { statement_timeout?: unknown } | undefined)?.statement_timeout;
  return typeof value === "number" ? value : 0;
}

/**
 * The statement_timeout a transaction of the current call needs, or undefined when the connection's
 * ceiling is already as tight. Throws DEADLINE_EXCEEDED when the deadline has passed: no query is sent.
 */
export function callTimeoutMs(sql: Sql, now = Date.now()): number | undefined {
  const deadline = scope.getStore();
  if (deadline === undefined) return undefined;
  const remaining = Math.ceil(deadline.getTime() - now);
  if (remaining <= 0) throw deadlineExceeded("database");
  const ceiling = ceilingMs(sql);
  return ceiling > 0 && ceiling <= remaining ? undefined : remaining;
}

/** Opens `fn`'s transaction with the current call's statement_timeout (SET LOCAL: this transaction only). */
export async function boundTransaction(tx: TransactionSql, timeoutMs: number | undefined): Promise<void> {
  if (timeoutMs !== undefined) await tx`SELECT set_config('statement_timeout', ${String(timeoutMs)}, true)`;
}

/** Runs `fn` in one transaction whose statements end by the current call's deadline. */
export async function transaction<T>(sql: Sql, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  const timeoutMs = callTimeoutMs(sql);
  return sql.begin(async (tx) => {
    await boundTransaction(tx, timeoutMs);
    return fn(tx);
  }) as Promise<T>;
}

/**
 * One read for the current call: as it is when the connection's ceiling is as tight as the deadline,
 * else in a transaction of its own under the deadline (two more round trips, only for such calls).
 */
export async function boundedRead<T>(sql: Sql, read: (q: Sql | TransactionSql) => Promise<T>): Promise<T> {
  const timeoutMs = callTimeoutMs(sql);
  if (timeoutMs === undefined) return read(sql);
  return sql.begin(async (tx) => {
    await boundTransaction(tx, timeoutMs);
    return read(tx);
  }) as Promise<T>;
}
