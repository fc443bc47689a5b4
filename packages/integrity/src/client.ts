// The client's side (called by packages/client): send the CRC32C of every request byte field, then check
// that the service verified each one and that every response byte field matches its CRC32C.
import { crc32c } from "./crc32c";
import { bytesOf, crc32cOf, requestParts, responseParts } from "./fields";
import type { Integrity } from "./fields";

type Message = Record<string, unknown>;

/** A response that fails its integrity check: its bytes were corrupted, or the service did not verify ours. */
export class IntegrityError extends Error {
  override readonly name = "IntegrityError";
  constructor(
    /** The field that failed, e.g. "ciphertext_blob_crc32c" or "results[2].response.verified_plaintext_crc32c". */
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/**
 * A copy of `request` with `<field>_crc32c` set for every checksummed byte field (a batch: its items
 * copied too). A CRC32C the caller set already is kept: it may come from further upstream.
 */
export function withRequestChecksums<M extends object>(integrity: Integrity, request: M): M {
  const copy = { ...request } as Message;
  if (integrity.batch) copy.items = ((copy.items ?? []) as Message[]).map((item) => ({ ...item }));
  for (const part of requestParts(integrity, copy)) {
    for (const field of integrity.request) {
      if (crc32cOf(part.message, field.crc32c) === undefined) part.message[field.crc32c.localName] = crc32c(bytesOf(part.message, field.bytes));
    }
  }
  return copy as M;
}

/** Throws IntegrityError unless every CRC32C sent was verified and every response byte field matches its own. */
export function checkResponseChecksums(integrity: Integrity, request: Message, response: Message): void {
  for (const { request: asked, response: answer } of responseParts(integrity, request, response)) {
    for (const field of integrity.request) {
      if (crc32cOf(asked.message, field.crc32c) !== undefined && answer.message[field.verified.localName] !== true) {
        throw new IntegrityError(`${answer.path}${field.verified.name}`, `the service did not verify the ${field.name} it was sent`);
      }
    }
    for (const field of integrity.response) {
      const sent = crc32cOf(answer.message, field.crc32c);
      if (sent === undefined) throw new IntegrityError(`${answer.path}${field.crc32c.name}`, `the service sent no CRC32C of ${field.name}`);
      if (crc32c(bytesOf(answer.message, field.bytes)) !== sent) {
        throw new IntegrityError(`${answer.path}${field.crc32c.name}`, `${field.name} does not match its CRC32C (corrupted on the way?)`);
      }
    }
  }
}
