// Minimal structured logging: one JSON line per event on stderr. Callers pass only metadata —
// never plaintext, data keys, key material or PINs.
import type { LogLevel } from "@kms/config";

const ORDER: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(level: LogLevel, service: string, write = (line: string) => process.stderr.write(line)): Logger {
  const emit = (l: LogLevel) => (msg: string, fields: Record<string, unknown> = {}) => {
    if (ORDER[l] > ORDER[level]) return;
    write(JSON.stringify({ time: new Date().toISOString(), level: l, service, msg, ...fields }) + "\n");
  };
  return { error: emit("error"), warn: emit("warn"), info: emit("info"), debug: emit("debug") };
}

/** An error's message and cause chain, for the log only. */
export function describeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err) };
  const out: Record<string, unknown> = { error: `${err.name}: ${err.message}` };
  if (err.cause !== undefined) out["cause"] = describeError(err.cause);
  return out;
}
