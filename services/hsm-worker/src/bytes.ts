// Small helpers for buffers that hold secrets.

/** A Buffer view of `bytes` (no copy, so zeroing the view zeroes the original). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * `bytes` as a Buffer whose data pointer is never NULL: pkcs11js passes an empty Buffer as NULL, which
 * SoftHSM answers with CKR_ARGUMENTS_BAD while leaving the operation active.
 */
export function pkcs11Input(bytes: Uint8Array): Buffer {
  return bytes.length === 0 ? Buffer.alloc(1).subarray(0, 0) : asBuffer(bytes);
}

/** Overwrites buffers that held key material or plaintext. */
export function wipe(...buffers: Array<Uint8Array | undefined>): void {
  for (const b of buffers) b?.fill(0);
}
