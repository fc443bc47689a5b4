// One JSON line per event on stderr. Callers pass messages and errors only: never plaintext, keys or PINs
// (errors raised in this worker carry contexts and CKR_* names, nothing secret).
export type Level = "error" | "warn" | "info";

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
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
}
