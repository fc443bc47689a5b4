// One JSON line per event on stderr (pino, through @kms/telemetry), with the trace_id/span_id of the
// active span when tracing is on. Callers pass messages and errors only: never plaintext, keys or PINs
// (errors raised in this worker carry contexts and CKR_* names, nothing secret); fields named like
// secrets are redacted regardless.
import { createJsonLogger } from "@kms/telemetry";
import type { PinoLogger } from "@kms/telemetry";

export type Level = "error" | "warn" | "info" | "debug";

/** "info" until main.ts has read KMS_LOG_LEVEL. */
const logger: PinoLogger = createJsonLogger({ service: "hsm-worker", level: "info" });

/** Sets the level from the configuration (KMS_LOG_LEVEL), once at start-up. */
export function setLogLevel(level: Level): void {
  logger.level = level;
}

/** The message chain of an error and its causes: "C_Decrypt(AES-GCM): CKR_DEVICE_ERROR <- ...". */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    parts.push(current instanceof Error ? `${current.name}: ${current.message}` : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(" <- ");
}

export function log(level: Level, msg: string, fields: Record<string, string | number | boolean> = {}): void {
  logger[level](fields, msg);
}
