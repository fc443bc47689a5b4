// Prints results: proto3 JSON with --json (one object per command, on stdout), else short human text.
import { toJson } from "@bufbuild/protobuf";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { JsonValue } from "@bufbuild/protobuf";

export function asJson<D extends DescMessage>(schema: D, message: MessageShape<D>): JsonValue {
  return toJson(schema, message);
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

/** `name: value` lines, nested objects indented, for people. */
export function printText(value: JsonValue, indent = ""): void {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    process.stdout.write(`${indent}${JSON.stringify(value)}\n`);
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      process.stdout.write(`${indent}${k}:\n`);
      printText(v, indent + "  ");
    } else {
      process.stdout.write(`${indent}${k}: ${typeof v === "string" ? v : JSON.stringify(v)}\n`);
    }
  }
}

/** Tab-separated rows, for lists. */
export function printRows(rows: string[][]): void {
  for (const row of rows) process.stdout.write(row.join("\t") + "\n");
}
