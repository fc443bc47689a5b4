// Tells a database that cannot be reached (or is going away) from a bug: the first is UNAVAILABLE for
// the caller ("retry is safe"), the second INTERNAL.

/** postgres.js's own connection failures. */
const DRIVER_CODES = new Set(["CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT"]);
/** Node's socket errors. */
const SOCKET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND"]);

/**
 * SQLSTATE classes that mean "not now": 08 connection exception, 53 insufficient resources, 57P0x the
 * server is shutting down or starting, 40001/40P01 serialization failure and deadlock (retry is safe).
 */
function transientSqlState(code: string): boolean {
  return code.startsWith("08") || code.startsWith("53") || /^57P0[1-4]$/.test(code) || code === "40001" || code === "40P01";
}

/** True for the error itself or anything in its `cause` chain. */
export function isDatabaseUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e !== null && typeof e === "object" && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== "string") continue;
    if (DRIVER_CODES.has(code) || SOCKET_CODES.has(code)) return true;
    if ((e as { name?: string }).name === "PostgresError" && transientSqlState(code)) return true;
  }
  return false;
}
