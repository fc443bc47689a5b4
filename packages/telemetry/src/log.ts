// JSON lines through pino, one per event, each carrying the trace_id and span_id of the active span
// (when tracing is on). Callers log metadata only; the redaction list below is a second line of
// defence should a secret-bearing field ever be passed by mistake.
import pino from "pino";
import type { DestinationStream, Logger as PinoLogger } from "pino";
import { activeTraceIds } from "./tracing";

export type LogLevel = "error" | "warn" | "info" | "debug";

/** Field names whose values are replaced by "[REDACTED]", at the top level and one level down. */
export const REDACTED_FIELDS = [
  "plaintext",
  "Plaintext",
  "pin",
  "PIN",
  "key",
  "keyMaterial",
  "material",
  "wrappedMaterial",
  "dataKey",
  "data_key",
  "privateKey",
  "private_key",
  "secret",
  "secretAccessKey",
  "SecretAccessKey",
  "password",
  "token",
  "accessToken",
  "authorization",
  "Authorization",
  "cookie",
  "encryptionContext",
  "aad",
] as const;

export const REDACTION_CENSOR = "[REDACTED]";

export interface JsonLoggerOptions {
  service: string;
  level: LogLevel;
  /** Where lines go; default: process.stderr (synchronous for files and pipes, so nothing is lost on process.exit). */
  destination?: DestinationStream;
}

export function createJsonLogger(o: JsonLoggerOptions): PinoLogger {
  return pino(
    {
      level: o.level,
      base: { service: o.service },
      timestamp: pino.stdTimeFunctions.isoTime,
      // "level":"info" rather than pino's numbers: the lines read as before, and grep works.
      formatters: { level: (label) => ({ level: label }) },
      mixin: () => activeTraceIds(),
      redact: { paths: REDACTED_FIELDS.flatMap((f) => [f, `*.${f}`]), censor: REDACTION_CENSOR },
    },
    o.destination ?? { write: (line: string) => void process.stderr.write(line) },
  );
}

export type { PinoLogger };

/** What a service logs through: a message and metadata fields (never plaintext, keys or PINs). */
export interface Logger {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

export interface ServiceLogger extends Logger {
  /** Changes the level once the configuration is read (KMS_LOG_LEVEL). */
  setLevel(level: LogLevel): void;
}

/** A service's logger: one JSON line per event on stderr (or `write`). */
export function createLogger(level: LogLevel, service: string, write?: (line: string) => void): ServiceLogger {
  const p = createJsonLogger({ service, level, ...(write ? { destination: { write } } : {}) });
  return {
    error: (msg, fields = {}) => p.error(fields, msg),
    warn: (msg, fields = {}) => p.warn(fields, msg),
    info: (msg, fields = {}) => p.info(fields, msg),
    debug: (msg, fields = {}) => p.debug(fields, msg),
    setLevel: (l) => {
      p.level = l;
    },
  };
}

const processLoggers = new Map<string, ServiceLogger>();

/**
 * The one logger of this process for `service`, for modules that log without being handed a logger
 * (the worker's): "info" until main.ts sets the configured level.
 */
export function processLogger(service: string): ServiceLogger {
  let logger = processLoggers.get(service);
  if (!logger) processLoggers.set(service, (logger = createLogger("info", service)));
  return logger;
}

/** An error's message and cause chain as nested fields, for the log only. */
export function describeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err) };
  const out: Record<string, unknown> = { error: `${err.name}: ${err.message}` };
  if (err.cause !== undefined) out["cause"] = describeError(err.cause);
  return out;
}

/** An error's message chain on one line: "C_Decrypt(AES-GCM): CKR_DEVICE_ERROR <- ...". */
export function errorChain(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    parts.push(current instanceof Error ? `${current.name}: ${current.message}` : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(" <- ");
}
