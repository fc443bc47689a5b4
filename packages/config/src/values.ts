// The value types the configuration is made of: numbers in a range, durations, booleans, listen
// addresses, PEM files, the log level. Each refuses a bad value with a message naming the variable.
import { readFileSync } from "node:fs";
import path from "node:path";
import { ConfigError, VARIABLES, raw } from "./variables";
import type { Env, VariableName } from "./variables";

export function integer(env: Env, name: VariableName, fallback: number, min: number, max: number): number {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new ConfigError(name, `must be a whole number, got ${JSON.stringify(value)}`);
  const n = Number(value);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

const DURATION_UNITS_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** "500ms", "30s", "5m", "1h" → milliseconds, within min..max. */
export function duration(env: Env, name: VariableName, minMs: number, maxMs: number): number {
  const value = raw(env, name) ?? VARIABLES[name].default;
  const m = /^(\d+)(ms|s|m|h)$/.exec(value);
  if (!m) throw new ConfigError(name, `must be a whole number and ms, s, m or h (e.g. 5m), got ${JSON.stringify(value)}`);
  const ms = Number(m[1]) * DURATION_UNITS_MS[m[2] as keyof typeof DURATION_UNITS_MS];
  if (ms < minMs || ms > maxMs) throw new ConfigError(name, `must be between ${minMs} ms and ${maxMs / 3_600_000} h, got ${value}`);
  return ms;
}

export function boolean(env: Env, name: VariableName, fallback: boolean): boolean {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  if (value === "true") return true;
  if (value === "false") return false;
  throw new ConfigError(name, `must be true or false, got ${JSON.stringify(value)}`);
}

export function dataDir(env: Env): string {
  return path.resolve(raw(env, "KMS_DATA_DIR") ?? VARIABLES.KMS_DATA_DIR.default);
}

export function workerSocket(env: Env): string {
  return path.resolve(raw(env, "KMS_WORKER_SOCKET") ?? path.join(dataDir(env), "run", "hsm-worker.sock"));
}

export type LogLevel = "error" | "warn" | "info" | "debug";

export function logLevel(env: Env): LogLevel {
  const value = raw(env, "KMS_LOG_LEVEL") ?? "info";
  if (value === "error" || value === "warn" || value === "info" || value === "debug") return value;
  throw new ConfigError("KMS_LOG_LEVEL", `must be error, warn, info or debug, got ${JSON.stringify(value)}`);
}

export interface ListenAddress {
  host: string;
  port: number;
}

export function parseListen(value: string, variable: VariableName = "KMS_LISTEN"): ListenAddress {
  const match = /^(?:\[([0-9a-fA-F:]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new ConfigError(variable, `must be host:port, got ${JSON.stringify(value)}`);
  return { host: match[1] ?? match[2] ?? "", port };
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

export function readPem(env: Env, name: VariableName): Buffer | undefined {
  const file = raw(env, name);
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(name, `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}
