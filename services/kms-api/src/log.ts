// Structured logging: one JSON line per event on stderr (pino, through @kms/telemetry), with the
// trace_id/span_id of the active span when tracing is on. Callers pass only metadata — never
// plaintext, data keys, key material or PINs; fields named like secrets are redacted regardless.
import type { LogLevel } from "@kms/config";
import { createJsonLogger } from "@kms/telemetry";

export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(level: LogLevel, service: string, write?: (line: string) => void): Logger {
  const p = createJsonLogger({ service, level, ...(write ? { destination: { write } } : {}) });
  return {
    error: (msg, fields = {}) => p.error(fields, msg),
    warn: (msg, fields = {}) => p.warn(fields, msg),
    info: (msg, fields = {}) => p.info(fields, msg),
    debug: (msg, fields = {}) => p.debug(fields, msg),
  };
}

/** An error's message and cause chain, for the log only. */
export function describeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err) };
  const out: Record<string, unknown> = { error: `${err.name}: ${err.message}` };
  if (err.cause !== undefined) out["cause"] = describeError(err.cause);
  return out;
}
