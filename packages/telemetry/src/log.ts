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
