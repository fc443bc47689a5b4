// The ciphertext blob and the encryption context, as the architecture doc fixes them:
//
//   blob = format version (1) ‖ key version id (16, UUID bytes) ‖ IV (12) ‖ ciphertext ‖ tag (16)
//   AAD  = format version ‖ key version id ‖ canonical encryption context
//
// The header is bound into the AES-GCM AAD, so a blob can neither be moved to another key version nor
// decrypted under another context. Parsing checks every length before it reads, and every failure
// throws the same invalidCiphertext() error.
import { invalidArgument, invalidCiphertext } from "@kms/errors";

export const FORMAT_VERSION = 1;
export const HEADER_LENGTH = 1 + 16;
export const IV_LENGTH = 12;
export const TAG_LENGTH = 16;
/** Smallest valid blob: header, IV, one byte of ciphertext, tag. */
export const MIN_BLOB_LENGTH = HEADER_LENGTH + IV_LENGTH + 1 + TAG_LENGTH;
/** Largest blob the service makes: 6144 bytes of plaintext (data keys are at most 1024). */
export const MAX_BLOB_LENGTH = HEADER_LENGTH + IV_LENGTH + 6144 + TAG_LENGTH;
/** Keys and values of an encryption context together, in characters (Alibaba's limit). */
export const MAX_CONTEXT_CHARACTERS = 8192;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface ParsedBlob {
  keyVersionId: string;
  /** Format version and key version id, exactly as in the blob: the start of the AAD. */
  header: Buffer;
  /** IV ‖ ciphertext ‖ tag, as the worker takes it. */
  sealed: Buffer;
}

export function uuidToBytes(uuid: string): Buffer {
  if (!UUID.test(uuid)) throw new Error(`not a lower-case UUID: ${uuid}`);
  return Buffer.from(uuid.replace(/-/g, ""), "hex");
}

export function bytesToUuid(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function encodeHeader(keyVersionId: string): Buffer {
  return Buffer.concat([Buffer.of(FORMAT_VERSION), uuidToBytes(keyVersionId)]);
}

export function assembleBlob(header: Buffer, sealed: Uint8Array): Buffer {
  return Buffer.concat([header, sealed]);
}

export function parseBlob(blob: Uint8Array): ParsedBlob {
  if (blob.length < MIN_BLOB_LENGTH || blob.length > MAX_BLOB_LENGTH) throw invalidCiphertext();
  if (blob[0] !== FORMAT_VERSION) throw invalidCiphertext();
  const bytes = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  return {
    keyVersionId: bytesToUuid(bytes.subarray(1, HEADER_LENGTH)),
    header: bytes.subarray(0, HEADER_LENGTH),
    sealed: bytes.subarray(HEADER_LENGTH),
  };
}

export type EncryptionContext = Readonly<Record<string, string>>;

/** Checks an encryption context against the spec's limits; throws INVALID_ARGUMENT naming `field`. */
export function validateEncryptionContext(context: EncryptionContext, field = "encryption_context"): void {
  let characters = 0;
  for (const [key, value] of Object.entries(context)) {
    if (key === "") throw invalidArgument(field, "keys must not be empty");
    if (!key.isWellFormed() || !value.isWellFormed()) throw invalidArgument(field, "keys and values must be valid UTF-8");
    // The audit trail stores contexts in Postgres, whose text cannot hold U+0000.
    if (key.includes("\u0000") || value.includes("\u0000")) throw invalidArgument(field, "keys and values must not contain U+0000");
    characters += [...key].length + [...value].length;
    if (characters > MAX_CONTEXT_CHARACTERS) {
      throw invalidArgument(field, `keys and values together must be at most ${MAX_CONTEXT_CHARACTERS} characters`);
    }
  }
}

function compareBytes(a: Buffer, b: Buffer): number {
  return Buffer.compare(a, b);
}

/**
 * Canonical bytes of an encryption context: entries sorted by the UTF-8 bytes of their keys, each as
 * u32 length ‖ key ‖ u32 length ‖ value, preceded by the u32 entry count. Order-independent and
 * injective: two contexts give the same bytes only when they are equal.
 */
export function canonicalContext(context: EncryptionContext): Buffer {
  const entries = Object.entries(context)
    .map(([k, v]) => [Buffer.from(k, "utf8"), Buffer.from(v, "utf8")] as const)
    .sort((x, y) => compareBytes(x[0], y[0]));
  const parts: Buffer[] = [u32(entries.length)];
  for (const [k, v] of entries) parts.push(u32(k.length), k, u32(v.length), v);
  return Buffer.concat(parts);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** The AES-GCM additional authenticated data: the blob header, then the canonical context. */
export function buildAad(header: Buffer, context: EncryptionContext): Buffer {
  return Buffer.concat([header, canonicalContext(context)]);
}
