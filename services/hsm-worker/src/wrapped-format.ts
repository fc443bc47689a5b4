// Wrapped material, format 2: what a key version's row holds, and what binds it to that version.
//
//   0x02 || kwp || tag
//
// kwp is the RFC 5649 wrap of the material under the root of the version's protection level (an HSM root
// whose CKA_UNWRAP_TEMPLATE keeps whatever it unwraps sensitive and non-extractable, or a SOFTWARE root).
// tag is HMAC-SHA256, under a MAC key that never leaves the HSM (or the software root file), over a fixed
// context, the key version id, the key spec, the protection level and kwp. The worker recomputes the tag
// from what the caller claims and refuses any difference with unwrapFailed(): an HSM version presented as
// SOFTWARE, an AES-256 key presented as HMAC-SHA256, or a blob copied to another version id does not
// authenticate. Format 1 (legacy) is a bare kwp under the single root key of earlier releases.
import type { kmsResources } from "@kms/proto";

export const FORMAT_2 = 0x02;
export const TAG_BYTES = 32;

const CONTEXT = Buffer.from("kms wrapped key v2\0");

/** What a wrapped blob is bound to. */
export interface Binding {
  keyVersionId: string;
  keySpec: kmsResources.KeySpec;
  protectionLevel: kmsResources.ProtectionLevel;
}

/** The bytes the tag covers: every field with its length, so no two bindings share an encoding. */
export function tagInput(binding: Binding, kwp: Uint8Array): Buffer {
  const id = Buffer.from(binding.keyVersionId, "utf8");
  const fixed = Buffer.alloc(2 + 4 + 4 + 4);
  fixed.writeUInt16BE(id.length, 0);
  fixed.writeUInt32BE(binding.keySpec, 2);
  fixed.writeUInt32BE(binding.protectionLevel, 6);
  fixed.writeUInt32BE(kwp.length, 10);
  return Buffer.concat([CONTEXT, fixed.subarray(0, 2), id, fixed.subarray(2), kwp]);
}

export function joinFormat2(kwp: Uint8Array, tag: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([FORMAT_2]), kwp, tag]);
}

/** The parts of a format 2 blob, or undefined when it is not one. */
export function splitFormat2(blob: Uint8Array): { kwp: Buffer; tag: Buffer } | undefined {
  if (blob.length < 1 + 16 + TAG_BYTES || blob[0] !== FORMAT_2) return undefined;
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  return { kwp: b.subarray(1, b.length - TAG_BYTES), tag: b.subarray(b.length - TAG_BYTES) };
}

/** Bytes a format 2 blob adds to its kwp. */
export const FORMAT_2_OVERHEAD = 1 + TAG_BYTES;
