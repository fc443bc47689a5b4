// AES-GCM in node:crypto for SOFTWARE keys, and the `sealed` layout shared with the HSM path:
// IV (12 bytes) ‖ ciphertext ‖ tag (16 bytes). Only 96-bit IVs and 128-bit tags are ever produced or accepted.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { invalidArgument, invalidCiphertext } from "@kms/errors";

export const IV_BYTES = 12;
export const TAG_BYTES = 16;
export const SEALED_OVERHEAD = IV_BYTES + TAG_BYTES;

/** Refuses IV and tag sizes other than 96 and 128 bits (our own check, whatever the library would accept). */
export function checkGcmSizes(ivBytes: number, tagBytes: number = TAG_BYTES): void {
  if (ivBytes !== IV_BYTES) throw invalidArgument("iv", `must be ${IV_BYTES} bytes, got ${ivBytes}`);
  if (tagBytes !== TAG_BYTES) throw invalidArgument("tag", `must be ${TAG_BYTES} bytes, got ${tagBytes}`);
}

/** Splits `sealed` after checking its length; too short is invalidCiphertext() like every other failure. */
export function splitSealed(sealed: Uint8Array): { iv: Buffer; body: Buffer } {
  if (sealed.length < SEALED_OVERHEAD) throw invalidCiphertext();
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
  return { iv: buf.subarray(0, IV_BYTES), body: buf.subarray(IV_BYTES) };
}

function gcmCipherName(key: KeyObject): "aes-128-gcm" | "aes-192-gcm" | "aes-256-gcm" {
  switch (key.symmetricKeySize) {
    case 16:
      return "aes-128-gcm";
    case 24:
      return "aes-192-gcm";
    case 32:
      return "aes-256-gcm";
    default:
      throw new RangeError(`not an AES key: ${String(key.symmetricKeySize)} bytes`);
  }
}

/** Encrypts with a caller-chosen IV. Production code uses sealGcm (fresh IV); this exists for test vectors. */
export function sealGcmWithIv(key: KeyObject, iv: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  checkGcmSizes(iv.length);
  const cipher = createCipheriv(gcmCipherName(key), key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, ciphertext, cipher.getAuthTag()]);
}

export function sealGcm(key: KeyObject, plaintext: Uint8Array, aad: Uint8Array): Buffer {
  return sealGcmWithIv(key, randomBytes(IV_BYTES), plaintext, aad);
}

/** Decrypts `sealed`; any failure (length, tag, AAD) is invalidCiphertext(). */
export function openGcm(key: KeyObject, sealed: Uint8Array, aad: Uint8Array): Buffer {
  const { iv, body } = splitSealed(sealed);
  const ciphertext = body.subarray(0, body.length - TAG_BYTES);
  const tag = body.subarray(body.length - TAG_BYTES);
  const decipher = createDecipheriv(gcmCipherName(key), key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const plaintext = decipher.update(ciphertext);
  try {
    return Buffer.concat([plaintext, decipher.final()]);
  } catch {
    // final() failed the tag check: nothing decrypted may leave.
    throw invalidCiphertext();
  } finally {
    // Buffer.concat copied it, or the tag check failed: either way these bytes are done.
    plaintext.fill(0);
  }
}
