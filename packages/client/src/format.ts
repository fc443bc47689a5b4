// The streaming envelope format (FORMAT.md): header encoding and parsing, per-message key derivation,
// per-chunk nonce and additional data. Pure functions, no I/O.
import { createHash, hkdfSync } from "node:crypto";

export const MAGIC = Buffer.from("KMSS", "ascii");
export const VERSION = 1;
/** AES-256-GCM under a per-message key derived with HKDF-SHA256 from the data key. */
export const ALGORITHM_AES_256_GCM_HKDF_SHA256 = 1;
export const DEFAULT_CHUNK_SIZE = 64 * 1024;
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
export const MESSAGE_ID_LENGTH = 16;
export const NONCE_PREFIX_LENGTH = 8;
export const TAG_LENGTH = 16;
/** flag (1) + plaintext length (4) in front of every chunk's ciphertext. */
export const CHUNK_HEADER_LENGTH = 5;
export const FLAG_REGULAR = 0;
export const FLAG_FINAL = 1;
/** The counter is 32 bits wide: 2^32 - 1 chunks, 256 TiB at the default chunk size. */
export const MAX_CHUNKS = 0xffffffff;
const HKDF_INFO = Buffer.from("kms stream v1 aes-256-gcm", "ascii");
/** magic, version, algorithm, chunk size, message id, nonce prefix, data key length. */
const FIXED_LENGTH = 4 + 1 + 1 + 4 + MESSAGE_ID_LENGTH + NONCE_PREFIX_LENGTH + 2;
/** Bounds what a reader buffers before it has checked anything (the context is at most 8192 characters). */
export const MAX_HEADER_LENGTH = 128 * 1024;

export type EncryptionContext = Record<string, string>;

export interface Header {
  chunkSize: number;
  messageId: Buffer;
  noncePrefix: Buffer;
  /** The KMS ciphertext blob of the data key (from GenerateDataKey). */
  encryptedDataKey: Buffer;
  encryptionContext: EncryptionContext;
}

/** Every malformed, tampered or truncated stream fails with this type; the message says which check failed. */
export class StreamFormatError extends Error {
  override readonly name = "StreamFormatError";
}

function sortedEntries(context: EncryptionContext): [Buffer, Buffer][] {
  return Object.entries(context)
    .map(([k, v]): [Buffer, Buffer] => [Buffer.from(k, "utf8"), Buffer.from(v, "utf8")])
    .sort((a, b) => Buffer.compare(a[0], b[0]));
}

/** u32 count, then (u32 length, key, u32 length, value) per pair, keys sorted by their UTF-8 bytes. */
export function encodeContext(context: EncryptionContext): Buffer {
  const parts: Buffer[] = [u32(Object.keys(context).length)];
  for (const [k, v] of sortedEntries(context)) parts.push(u32(k.length), k, u32(v.length), v);
  return Buffer.concat(parts);
}

export function encodeHeader(header: Header): Buffer {
  if (header.encryptedDataKey.length < 1 || header.encryptedDataKey.length > 0xffff) {
    throw new RangeError("encrypted data key must be 1..65535 bytes");
  }
  const fixed = Buffer.alloc(FIXED_LENGTH);
  MAGIC.copy(fixed, 0);
  fixed.writeUInt8(VERSION, 4);
  fixed.writeUInt8(ALGORITHM_AES_256_GCM_HKDF_SHA256, 5);
  fixed.writeUInt32BE(header.chunkSize, 6);
  header.messageId.copy(fixed, 10);
  header.noncePrefix.copy(fixed, 10 + MESSAGE_ID_LENGTH);
  fixed.writeUInt16BE(header.encryptedDataKey.length, FIXED_LENGTH - 2);
  const encoded = Buffer.concat([fixed, header.encryptedDataKey, encodeContext(header.encryptionContext)]);
  if (encoded.length > MAX_HEADER_LENGTH) throw new RangeError("encryption context too large");
  return encoded;
}

/** True if `bytes` starts like a stream of this format (used to tell it from a plain KMS blob). */
export function hasMagic(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.equals(bytes.subarray(0, MAGIC.length));
}

/**
 * Parses a header at the start of `bytes`. Returns undefined when more bytes are needed; throws
 * StreamFormatError when they can never form a valid header. Every length is checked before it is used.
 */
export function parseHeader(bytes: Buffer): { header: Header; length: number } | undefined {
  const have = Math.min(bytes.length, MAGIC.length);
  if (!MAGIC.subarray(0, have).equals(bytes.subarray(0, have))) throw new StreamFormatError("not an encrypted stream (bad magic)");
  if (bytes.length < FIXED_LENGTH) return undefined;
  if (bytes.readUInt8(4) !== VERSION) throw new StreamFormatError(`unsupported format version ${bytes.readUInt8(4)}`);
  if (bytes.readUInt8(5) !== ALGORITHM_AES_256_GCM_HKDF_SHA256) throw new StreamFormatError(`unsupported algorithm ${bytes.readUInt8(5)}`);
  const chunkSize = bytes.readUInt32BE(6);
  if (chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) throw new StreamFormatError(`chunk size ${chunkSize} out of range`);
  const keyLength = bytes.readUInt16BE(FIXED_LENGTH - 2);
  if (keyLength < 1) throw new StreamFormatError("empty encrypted data key");
  let offset = FIXED_LENGTH + keyLength;
  if (bytes.length < offset + 4) return undefined;
  const count = bytes.readUInt32BE(offset);
  offset += 4;
  const context: EncryptionContext = {};
  let previous: Buffer | undefined;
  for (let i = 0; i < count; i++) {
    const key = readField(bytes, offset);
    if (key === undefined) return undefined;
    const value = readField(bytes, key.end);
    if (value === undefined) return undefined;
    offset = value.end;
    // Sorted and unique keys: one context has exactly one encoding.
    if (previous !== undefined && Buffer.compare(previous, key.bytes) >= 0) throw new StreamFormatError("encryption context is not canonical");
    previous = key.bytes;
    context[utf8(key.bytes)] = utf8(value.bytes);
  }
  return {
    header: {
      chunkSize,
      messageId: Buffer.from(bytes.subarray(10, 10 + MESSAGE_ID_LENGTH)),
      noncePrefix: Buffer.from(bytes.subarray(10 + MESSAGE_ID_LENGTH, 10 + MESSAGE_ID_LENGTH + NONCE_PREFIX_LENGTH)),
      encryptedDataKey: Buffer.from(bytes.subarray(FIXED_LENGTH, FIXED_LENGTH + keyLength)),
      encryptionContext: context,
    },
    length: offset,
  };
}

function readField(bytes: Buffer, offset: number): { bytes: Buffer; end: number } | undefined {
  if (bytes.length < offset + 4) {
    if (offset + 4 > MAX_HEADER_LENGTH) throw new StreamFormatError("header too large");
    return undefined;
  }
  const length = bytes.readUInt32BE(offset);
  const end = offset + 4 + length;
  if (end > MAX_HEADER_LENGTH) throw new StreamFormatError("header too large");
  if (bytes.length < end) return undefined;
  return { bytes: bytes.subarray(offset + 4, end), end };
}

function utf8(bytes: Buffer): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new StreamFormatError("encryption context is not valid UTF-8");
  }
}

/** The key that encrypts one message's chunks; the data key itself never touches a chunk. */
export function deriveMessageKey(dataKey: Uint8Array, messageId: Buffer): Buffer {
  return Buffer.from(hkdfSync("sha256", dataKey, messageId, HKDF_INFO, 32));
}

/** nonce prefix (8) ‖ chunk index (u32 BE). */
export function chunkNonce(noncePrefix: Buffer, index: number): Buffer {
  return Buffer.concat([noncePrefix, u32(index)]);
}

export function headerDigest(encodedHeader: Buffer): Buffer {
  return createHash("sha256").update(encodedHeader).digest();
}

/** SHA-256(header) ‖ chunk index (u32 BE) ‖ final flag: binds each chunk to its message, place and role. */
export function chunkAad(headerSha256: Buffer, index: number, final: boolean): Buffer {
  return Buffer.concat([headerSha256, u32(index), Buffer.of(final ? FLAG_FINAL : FLAG_REGULAR)]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
