// Turns flag values into request fields; a bad value is a UsageError naming the flag.
import { kmsResources } from "@kms/proto";
import { UsageError } from "./exit-codes";

/** Collects repeated `--context k=v` / `--tag k=v` flags into a map. */
export function keyValue(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = value.indexOf("=");
  if (at < 1) throw new UsageError(`expected key=value, got ${JSON.stringify(value)}`);
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
}

/**
 * An enum value by its name with or without the proto prefix: "AES_256" or "KEY_SPEC_AES_256" for KeySpec.
 */
export function enumValue<E extends Record<string, string | number>>(enumObject: E, prefix: string, flag: string, name: string): E[keyof E] {
  const bare = name.toUpperCase().replace(new RegExp(`^${prefix}_`), "");
  const value = enumObject[bare];
  if (typeof value !== "number" || value === 0) {
    const names = Object.keys(enumObject).filter((k) => isNaN(Number(k)) && k !== "UNSPECIFIED");
    throw new UsageError(`${flag}: unknown value ${JSON.stringify(name)}; one of ${names.join(", ")}`);
  }
  return value as E[keyof E];
}

export function positiveInt(flag: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`${flag}: expected a positive whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

export function date(flag: string, value: string): Date {
  const d = new Date(value);
  if (isNaN(d.getTime())) throw new UsageError(`${flag}: expected a date such as 2025-01-31T12:00:00Z, got ${JSON.stringify(value)}`);
  return d;
}

export const { KeySpec, KeyUsage, ProtectionLevel, DataKeySpec, SigningAlgorithm } = kmsResources;
