// Signed checkpoints of the audit chain: (sequence, head hash, time), signed by the hsm-worker's
// checkpoint key (ECDSA P-256 with SHA-256, DER). The chain alone proves that no row in the middle was
// touched, but whoever can write the database can cut its tail (or wipe it) and rewind audit_head to
// match; a checkpoint kept outside the database says how far the chain had reached, and a chain that ends
// before it, or holds another row at its sequence, was cut.
import { createHash, createPublicKey, verify } from "node:crypto";

export interface Checkpoint {
  /** The chain's last row when the checkpoint was made. */
  sequence: number;
  /** That row's hash (32 bytes). */
  headHash: Buffer;
  /** The signer's clock, whole milliseconds. */
  time: Date;
}

export interface SignedCheckpoint extends Checkpoint {
  /** checkpointKeyId() of the signing key. */
  keyId: string;
  /** ECDSA P-256 SHA-256 over checkpointPayload(), DER. */
  signature: Buffer;
}

const DOMAIN = Buffer.from("kms.audit.checkpoint.v1\0", "utf8");

/** The bytes signed: a domain tag, u64 sequence, the 32-byte head hash, u64 milliseconds since 1970. */
export function checkpointPayload(c: Checkpoint): Buffer {
  if (!Number.isSafeInteger(c.sequence) || c.sequence < 0) throw new RangeError(`checkpoint sequence ${c.sequence} is not a valid sequence`);
  if (c.headHash.length !== 32) throw new RangeError(`checkpoint head hash has ${c.headHash.length} bytes, not 32`);
  const out = Buffer.alloc(DOMAIN.length + 8 + 32 + 8);
  DOMAIN.copy(out, 0);
  out.writeBigUInt64BE(BigInt(c.sequence), DOMAIN.length);
  c.headHash.copy(out, DOMAIN.length + 8);
  out.writeBigUInt64BE(BigInt(c.time.getTime()), DOMAIN.length + 40);
  return out;
}

/** Hex of the first 16 bytes of SHA-256 over the key's SubjectPublicKeyInfo (DER). */
export function checkpointKeyId(spki: Buffer): string {
  return createHash("sha256").update(spki).digest().subarray(0, 16).toString("hex");
}

/** True when `c.signature` is a valid signature of `c` by the key `publicKey` (SPKI DER or PEM). */
export function verifyCheckpoint(c: SignedCheckpoint, publicKey: Buffer | string): boolean {
  let payload: Buffer;
  try {
    payload = checkpointPayload(c);
  } catch {
    return false;
  }
  const key = typeof publicKey === "string" ? createPublicKey(publicKey) : createPublicKey({ key: publicKey, format: "der", type: "spki" });
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") return false;
  try {
    return verify("sha256", payload, key, c.signature);
  } catch {
    return false;
  }
}

/** A checkpoint as JSON (log lines, files for the verifiers): hashes hex, signature base64. */
export interface CheckpointJson {
  sequence: number;
  headHash: string;
  time: string;
  keyId: string;
  signature: string;
}

export function checkpointToJson(c: SignedCheckpoint): CheckpointJson {
  return { sequence: c.sequence, headHash: c.headHash.toString("hex"), time: c.time.toISOString(), keyId: c.keyId, signature: c.signature.toString("base64") };
}

/** Parses checkpointToJson()'s output (or a log line's fields); throws naming the bad field. */
export function checkpointFromJson(value: unknown): SignedCheckpoint {
  const o = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  const sequence = o.sequence;
  if (typeof sequence !== "number" || !Number.isSafeInteger(sequence) || sequence < 1) throw new Error("checkpoint.sequence: must be a positive integer");
  if (typeof o.headHash !== "string" || !/^[0-9a-f]{64}$/.test(o.headHash)) throw new Error("checkpoint.headHash: must be 64 hex digits");
  const time = typeof o.time === "string" ? new Date(o.time) : new Date(NaN);
  if (Number.isNaN(time.getTime())) throw new Error("checkpoint.time: must be an ISO 8601 time");
  if (typeof o.signature !== "string" || o.signature === "") throw new Error("checkpoint.signature: must be base64");
  return {
    sequence,
    headHash: Buffer.from(o.headHash, "hex"),
    time,
    keyId: typeof o.keyId === "string" ? o.keyId : "",
    signature: Buffer.from(o.signature, "base64"),
  };
}
