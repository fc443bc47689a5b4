// The service's side (called by services/kms-api's pipeline): check the CRC32Cs a request came with
// before anything uses its bytes, then mark them verified and fill the response's own CRC32Cs.
import { ErrorCode, KmsError } from "@kms/errors";
import { crc32c } from "./crc32c";
import { bytesOf, crc32cOf, requestParts, responseParts } from "./fields";
import type { Integrity } from "./fields";

type Message = Record<string, unknown>;

/** Throws INVALID_ARGUMENT (Rejected.ChecksumMismatch) naming the first `_crc32c` that does not match its bytes. */
export function checkRequestChecksums(integrity: Integrity, request: Message): void {
  for (const part of requestParts(integrity, request)) {
    for (const field of integrity.request) {
      const sent = crc32cOf(part.message, field.crc32c);
      if (sent === undefined || crc32c(bytesOf(part.message, field.bytes)) === sent) continue;
      throw new KmsError(
        ErrorCode.ChecksumMismatch,
        `${part.path}${field.crc32c.name}: does not match the CRC32C of ${field.name} as received (corrupted on the way?); nothing was done`,
      );
    }
  }
}

/**
 * Sets `verified_<field>_crc32c` for every CRC32C the request came with (the pipeline checked them all
 * before the handler ran) and `<field>_crc32c` for every response byte field.
 */
export function fillResponseChecksums(integrity: Integrity, request: Message, response: Message): void {
  for (const { request: asked, response: answer } of responseParts(integrity, request, response)) {
    for (const field of integrity.request) answer.message[field.verified.localName] = crc32cOf(asked.message, field.crc32c) !== undefined;
    for (const field of integrity.response) answer.message[field.crc32c.localName] = crc32c(bytesOf(answer.message, field.bytes));
  }
}
