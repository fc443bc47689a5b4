// The checksum table (table.ts) resolved against the kms.v1 descriptors once, at load: a name that is not
// a bytes field with its `_crc32c` (and `verified_..._crc32c`) companions fails here, not at a call.
// Messages are read and written by their fields' property names (protobuf-es local names), so the same
// code serves the decoded requests the service sees and the init shapes the SDK and handlers build.
import { ScalarType } from "@bufbuild/protobuf";
import type { DescField, DescMessage, DescMethod } from "@bufbuild/protobuf";
import { kms } from "@kms/proto";
import { CHECKSUM_FIELDS } from "./table";
import type { ChecksumFields } from "./table";

type Message = Record<string, unknown>;

/** A request byte field, its CRC32C field and the response flag saying it was verified. */
export interface CheckedField {
  name: string;
  bytes: DescField;
  crc32c: DescField;
  verified: DescField;
}

/** A response byte field and its CRC32C field. */
export interface FilledField {
  name: string;
  bytes: DescField;
  crc32c: DescField;
}

export interface Integrity {
  batch: boolean;
  request: readonly CheckedField[];
  response: readonly FilledField[];
}

/** One message that carries checksummed fields, and where it sits in its call (for error messages). */
export interface Part {
  message: Message;
  path: string;
}

function fieldOf(schema: DescMessage, name: string, scalar: ScalarType): DescField {
  const field = schema.fields.find((f) => f.name === name);
  if (!field || field.fieldKind !== "scalar" || field.scalar !== scalar) throw new Error(`integrity table: ${schema.typeName}.${name} is not a ${ScalarType[scalar]} field`);
  return field;
}

function itemSchema(schema: DescMessage, name: string): DescMessage {
  const field = schema.fields.find((f) => f.name === name);
  if (field?.fieldKind === "list" && field.listKind === "message") return field.message;
  if (field?.fieldKind === "message") return field.message;
  throw new Error(`integrity table: ${schema.typeName}.${name} is not a message field`);
}

function resolve(method: DescMethod, fields: ChecksumFields): Integrity {
  const input = fields.batch ? itemSchema(method.input, "items") : method.input;
  const output = fields.batch ? itemSchema(itemSchema(method.output, "results"), "response") : method.output;
  return {
    batch: fields.batch === true,
    request: fields.request.map((name) => ({
      name,
      bytes: fieldOf(input, name, ScalarType.BYTES),
      crc32c: fieldOf(input, `${name}_crc32c`, ScalarType.UINT32),
      verified: fieldOf(output, `verified_${name}_crc32c`, ScalarType.BOOL),
    })),
    response: fields.response.map((name) => ({ name, bytes: fieldOf(output, name, ScalarType.BYTES), crc32c: fieldOf(output, `${name}_crc32c`, ScalarType.UINT32) })),
  };
}

const RESOLVED: ReadonlyMap<string, Integrity> = new Map(
  Object.entries(CHECKSUM_FIELDS).map(([rpc, fields]) => {
    const method = kms.KeyManagementService.methods.find((m) => m.name === rpc);
    if (!method) throw new Error(`integrity table: no RPC ${rpc}`);
    return [rpc, resolve(method, fields)];
  }),
);

/** The checksummed fields of an RPC ("Encrypt"), or undefined for one without. */
export function integrityOf(rpc: string): Integrity | undefined {
  return RESOLVED.get(rpc);
}

const EMPTY = new Uint8Array(0);

/** A bytes field's value; an unset field (or another member of its oneof) reads as empty, as in proto3. */
export function bytesOf(message: Message, field: DescField): Uint8Array {
  const value = field.oneof ? oneofValue(message[field.oneof.localName], field.localName) : message[field.localName];
  return value instanceof Uint8Array ? value : EMPTY;
}

function oneofValue(group: unknown, member: string): unknown {
  const selected = group as { case?: string; value?: unknown } | undefined;
  return selected?.case === member ? selected.value : undefined;
}

/** A `_crc32c` field's value, or undefined when it was not sent. */
export function crc32cOf(message: Message, field: DescField): number | undefined {
  const value = message[field.localName];
  return typeof value === "number" ? value : undefined;
}

/** The request messages whose fields are checked: the request itself, or a batch's items. */
export function requestParts(integrity: Integrity, request: Message): Part[] {
  if (!integrity.batch) return [{ message: request, path: "" }];
  const items = (request.items ?? []) as Message[];
  return items.map((message, i) => ({ message, path: `items[${i}].` }));
}

/**
 * The response messages, each with the request message it answers (a batch: result i answers item i;
 * a failed item has no response).
 */
export function responseParts(integrity: Integrity, request: Message, response: Message): { request: Part; response: Part }[] {
  if (!integrity.batch) return [{ request: { message: request, path: "" }, response: { message: response, path: "" } }];
  const items = (request.items ?? []) as Message[];
  const results = (response.results ?? []) as { response?: Message }[];
  return results.flatMap((result, i) =>
    result.response && items[i] ? [{ request: { message: items[i], path: `items[${i}].` }, response: { message: result.response, path: `results[${i}].response.` } }] : [],
  );
}
