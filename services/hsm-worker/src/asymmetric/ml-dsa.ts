// ML-DSA (FIPS 204) with @noble/post-quantum: keys from their 32-byte seed ξ (the material we wrap, the
// "seed" private key format of RFC 9881), verification, and SubjectPublicKeyInfo with the NIST OIDs id-ml-dsa-44/65/87 (2.16.840.1.101.3.4.3.17/18/19, no
// parameters). node:crypto has ML-DSA only from Node 24.6, so nothing here goes through it. Signing
// (milliseconds of CPU) runs on a worker thread: software/private-key-threads.ts.
import { timingSafeEqual } from "node:crypto";
import { ml_dsa44, ml_dsa65, ml_dsa87 } from "@noble/post-quantum/ml-dsa.js";
import { wipe } from "../bytes";
import { ML_DSA_SEED_BYTES } from "../key-spec";

export type MlDsaLevel = 44 | 65 | 87;

export const ML_DSA = { 44: ml_dsa44, 65: ml_dsa65, 87: ml_dsa87 } as const;
export { ML_DSA_SEED_BYTES };

/** The last arc of each parameter set's OID under 2.16.840.1.101.3.4.3 (NIST sigAlgs). */
const OID_LAST_ARC: Record<MlDsaLevel, number> = { 44: 17, 65: 18, 87: 19 };

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  return Buffer.from([0x82, n >> 8, n & 0xff]);
}

function der(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

/** SEQUENCE { SEQUENCE { OID id-ml-dsa-N }, BIT STRING (0 unused bits) publicKey }. */
export function mlDsaSpki(level: MlDsaLevel, publicKey: Uint8Array): Buffer {
  const oid = Buffer.from([0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, OID_LAST_ARC[level]]);
  return der(0x30, Buffer.concat([der(0x30, oid), der(0x03, Buffer.concat([Buffer.from([0]), Buffer.from(publicKey)]))]));
}

/** The raw public key of an ML-DSA SPKI of this level; undefined for anything else (exact encoding only). */
export function mlDsaPublicKeyOf(spki: Uint8Array, level: MlDsaLevel): Buffer | undefined {
  const length = ML_DSA[level].lengths.publicKey!;
  const prefix = mlDsaSpki(level, Buffer.alloc(length)).subarray(0, -length);
  if (spki.length !== prefix.length + length || !timingSafeEqual(Buffer.from(spki.subarray(0, prefix.length)), prefix)) return undefined;
  return Buffer.from(spki.subarray(prefix.length));
}

/** An unwrapped ML-DSA key: the expanded secret key, kept while cached and wiped when it leaves. */
export class MlDsaPrivateKey {
  constructor(
    readonly level: MlDsaLevel,
    readonly secretKey: Uint8Array,
  ) {}

  wipe(): void {
    wipe(this.secretKey);
  }
}

/** The key pair of a seed (FIPS 204 ML-DSA.KeyGen_internal). Does not wipe `seed`. */
export function mlDsaFromSeed(level: MlDsaLevel, seed: Uint8Array): { privateKey: MlDsaPrivateKey; spki: Buffer } {
  if (seed.length !== ML_DSA_SEED_BYTES) throw new RangeError(`an ML-DSA seed is ${ML_DSA_SEED_BYTES} bytes`);
  const { secretKey, publicKey } = ML_DSA[level].keygen(seed);
  return { privateKey: new MlDsaPrivateKey(level, secretKey), spki: mlDsaSpki(level, publicKey) };
}

export type MlDsaInput = { kind: "message"; message: Uint8Array } | { kind: "external-mu"; mu: Uint8Array };

/** Every malformed signature is simply "not valid". */
export function mlDsaVerify(level: MlDsaLevel, publicKey: Uint8Array, input: MlDsaInput, signature: Uint8Array): boolean {
  const dsa = ML_DSA[level];
  try {
    if (input.kind === "external-mu") return dsa.internal.verify(signature, input.mu, publicKey, { externalMu: true });
    return dsa.verify(signature, input.message, publicKey);
  } catch {
    return false;
  }
}
