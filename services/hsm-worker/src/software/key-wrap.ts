// AES key wrap with padding (RFC 5649) in node:crypto: the software-root backend's wrapping, and the
// reference the HSM's CKM_AES_KEY_WRAP_PAD is tested against.
import { createCipheriv, createDecipheriv } from "node:crypto";
import type { KeyObject } from "node:crypto";

/** RFC 5649 alternative initial value; OpenSSL appends the message length indicator itself. */
const KWP_IV = Buffer.from("A65959A6", "hex");

function kwpCipherName(kek: KeyObject): string {
  const bytes = kek.symmetricKeySize;
  if (bytes !== 16 && bytes !== 24 && bytes !== 32) throw new RangeError(`not an AES key: ${String(bytes)} bytes`);
  return `id-aes${bytes * 8}-wrap-pad`;
}

export function kwpWrap(kek: KeyObject, material: Uint8Array): Buffer {
  const cipher = createCipheriv(kwpCipherName(kek), kek, KWP_IV);
  return Buffer.concat([cipher.update(material), cipher.final()]);
}

/** Thrown for every wrapped input that fails the RFC 5649 integrity check or has a bad length. */
export class UnwrapError extends Error {
  override readonly name = "UnwrapError";
}

export function kwpUnwrap(kek: KeyObject, wrapped: Uint8Array): Buffer {
  // RFC 5649: at least two 64-bit blocks, a whole number of them.
  if (wrapped.length < 16 || wrapped.length % 8 !== 0) throw new UnwrapError("wrapped key has an invalid length");
  const decipher = createDecipheriv(kwpCipherName(kek), kek, KWP_IV);
  let material: Buffer;
  try {
    material = decipher.update(wrapped);
  } catch (err) {
    throw new UnwrapError("wrapped key failed the integrity check", { cause: err });
  }
  try {
    const tail = decipher.final();
    if (tail.length === 0) return material;
    const whole = Buffer.concat([material, tail]);
    material.fill(0);
    tail.fill(0);
    return whole;
  } catch (err) {
    material.fill(0);
    throw new UnwrapError("wrapped key failed the integrity check", { cause: err });
  }
}
