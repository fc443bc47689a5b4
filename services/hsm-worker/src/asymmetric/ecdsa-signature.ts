// ECDSA signature encodings. PKCS#11 CKM_ECDSA returns raw r ‖ s; the API returns DER
// (SEQUENCE { INTEGER r, INTEGER s }), which OpenSSL and node:crypto verify by default.
import type { EcCurve } from "../key-spec";

/** Group orders; only used on public values (signatures), never on secrets. */
const ORDER: Record<EcCurve, bigint> = {
  "P-256": 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  "P-384": 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  secp256k1: 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n,
};

export const FIELD_BYTES: Record<EcCurve, number> = { "P-256": 32, "P-384": 48, secp256k1: 32 };

function derInteger(value: Buffer): Buffer {
  let start = 0;
  while (start < value.length - 1 && value[start] === 0) start++;
  const trimmed = value.subarray(start);
  // A set high bit would make the INTEGER negative: prefix a zero byte.
  const body = (trimmed[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed;
  return Buffer.concat([Buffer.from([0x02, body.length]), body]);
}

/** DER SEQUENCE { r, s } from raw r ‖ s (each FIELD_BYTES long). Lengths stay below 128 for our curves. */
export function rawToDer(raw: Uint8Array): Buffer {
  const half = raw.length / 2;
  const buf = Buffer.from(raw);
  const body = Buffer.concat([derInteger(buf.subarray(0, half)), derInteger(buf.subarray(half))]);
  return Buffer.concat([Buffer.from([0x30, body.length]), body]);
}

const toBigInt = (b: Uint8Array) => BigInt(`0x${Buffer.from(b).toString("hex") || "0"}`);

function toFixed(value: bigint, bytes: number): Buffer {
  return Buffer.from(value.toString(16).padStart(bytes * 2, "0"), "hex");
}

/**
 * Low-S form of raw r ‖ s: s is replaced by n - s when s > n/2. Both verify under standard ECDSA; Bitcoin
 * and Ethereum accept only the low one, so every secp256k1 signature we make is low-S.
 */
export function lowS(raw: Uint8Array, curve: EcCurve): Buffer {
  const half = raw.length / 2;
  const n = ORDER[curve];
  const s = toBigInt(raw.subarray(half));
  if (s <= n >> 1n) return Buffer.from(raw);
  return Buffer.concat([Buffer.from(raw.subarray(0, half)), toFixed(n - s, half)]);
}
