// The AWS JSON 1.1 protocol's values: members named as AWS names them, blobs in base64, timestamps in
// epoch seconds. A member of the wrong type is ValidationException naming it (AWS's own words for it are
// "SerializationException"; the SDKs treat both as client errors).
import { invalidArgument } from "@kms/errors";
import { unsupported } from "./errors";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** The request body as an object: `{}` for an empty body, as the SDKs send for operations without input. */
export function parseBody(body: Buffer): JsonObject {
  if (body.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    throw invalidArgument("body", "is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalidArgument("body", "must be a JSON object");
  return value as JsonObject;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Typed reads of a request's members. Absent (or null) optional members read as undefined. */
export class Members {
  constructor(private readonly body: JsonObject) {}

  has(name: string): boolean {
    return this.body[name] !== undefined && this.body[name] !== null;
  }

  string(name: string): string | undefined {
    const v = this.body[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") throw invalidArgument(name, "must be a string");
    return v;
  }

  requiredString(name: string): string {
    const v = this.string(name);
    if (v === undefined || v === "") throw invalidArgument(name, "is required");
    return v;
  }

  /** A blob member: base64 decoded into a Buffer the caller owns (and zeroes if it is secret). */
  blob(name: string): Buffer | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    if (v.length % 4 !== 0 || !BASE64.test(v)) throw invalidArgument(name, "must be base64");
    return Buffer.from(v, "base64");
  }

  requiredBlob(name: string): Buffer {
    const v = this.blob(name);
    if (v === undefined || v.length === 0) throw invalidArgument(name, "is required");
    return v;
  }

  integer(name: string, min: number, max: number): number | undefined {
    const v = this.body[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isInteger(v)) throw invalidArgument(name, "must be a whole number");
    if (v < min || v > max) throw invalidArgument(name, `must be ${min} to ${max}, got ${v}`);
    return v;
  }

  boolean(name: string): boolean | undefined {
    const v = this.body[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "boolean") throw invalidArgument(name, "must be true or false");
    return v;
  }

  /** An epoch-seconds timestamp (the JSON protocol's), as a Date. */
  date(name: string): Date | undefined {
    const v = this.body[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "number" || !Number.isFinite(v)) throw invalidArgument(name, "must be a timestamp in epoch seconds");
    return new Date(Math.round(v * 1000));
  }

  /** A string → string map (EncryptionContext). */
  stringMap(name: string): Record<string, string> {
    const v = this.body[name];
    if (v === undefined || v === null) return {};
    if (typeof v !== "object" || Array.isArray(v)) throw invalidArgument(name, "must be an object of strings");
    const out: Record<string, string> = {};
    for (const [k, value] of Object.entries(v)) {
      if (typeof value !== "string") throw invalidArgument(name, `${JSON.stringify(k)} must be a string`);
      out[k] = value;
    }
    return out;
  }

  /** A list of strings (TagKeys). */
  strings(name: string): string[] {
    const v = this.body[name];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) throw invalidArgument(name, "must be a list of strings");
    return v as string[];
  }

  /** An object member (Constraints), or undefined when absent. */
  object(name: string): Members | undefined {
    const v = this.body[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "object" || Array.isArray(v)) throw invalidArgument(name, "must be an object");
    return new Members(v as JsonObject);
  }

  /** A list of objects (Tags). */
  objects(name: string): Members[] {
    const v = this.body[name];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some((o) => typeof o !== "object" || o === null || Array.isArray(o))) throw invalidArgument(name, "must be a list of objects");
    return (v as JsonObject[]).map((o) => new Members(o));
  }

  /** One of `values`, or undefined when absent. */
  enumeration<T extends string>(name: string, values: readonly T[]): T | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    if (!values.includes(v as T)) throw invalidArgument(name, `must be one of ${values.join(", ")}, got ${JSON.stringify(v)}`);
    return v as T;
  }

  /** UnsupportedOperationException for an AWS feature this service does not have, when the request uses it. */
  refuse(name: string, what = name): void {
    const v = this.body[name];
    if (v === undefined || v === null || v === false) return;
    throw unsupported(what);
  }
}

/** An epoch-seconds timestamp for a response. */
export function epochSeconds(date: Date): number {
  return date.getTime() / 1000;
}

export function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/** A response object without its undefined members. */
export function compact(o: Record<string, Json | undefined>): JsonObject {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as JsonObject;
}
