// Which signature scheme a (key family, algorithm) pair means, and what input it takes. The kms-api
// checks the same pairing for the caller; the worker checks again because it never trusts a request.
import { invalidArgument } from "@kms/errors";
import { allowedSigningAlgorithms, EXTERNAL_MU_BYTES, MAX_MESSAGE_BYTES } from "@kms/key-rules";
import { kmsResources } from "@kms/proto";
import type { EcCurve, KeyFamily } from "../key-spec";
import { keySpecName } from "../key-spec";

const { SigningAlgorithm } = kmsResources;

export type HashName = "sha1" | "sha256" | "sha384" | "sha512";

export const HASH_BYTES: Record<HashName, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };

export type SigningScheme =
  | { kind: "rsa-pss"; hash: "sha256"; saltBytes: 32 }
  | { kind: "rsa-pkcs1"; hash: "sha256" }
  | { kind: "ecdsa"; hash: "sha256" | "sha384"; curve: EcCurve }
  | { kind: "ed25519" }
  | { kind: "ml-dsa"; level: 44 | 65 | 87 };

/** The signed input: a digest for RSA and ECDSA, the message itself for Ed25519, the message or μ for ML-DSA. */
export type SignInput = { kind: "digest"; digest: Uint8Array } | { kind: "message"; message: Uint8Array } | { kind: "external-mu"; mu: Uint8Array };

/** The oneof as protobuf-es generates it. */
export type ProtoSignInput = { case: "digest" | "message" | "externalMu"; value: Uint8Array } | { case: undefined; value?: undefined };


function algorithmName(algorithm: kmsResources.SigningAlgorithm): string {
  return `SIGNING_ALGORITHM_${SigningAlgorithm[algorithm] ?? String(algorithm)}`;
}

/** The scheme for this key; INVALID_ARGUMENT naming "algorithm" and the spec when they do not match. */
export function signingScheme(
  family: KeyFamily,
  spec: kmsResources.KeySpec,
  algorithm: kmsResources.SigningAlgorithm,
): SigningScheme {
  // Which pairs exist is the capability table's call; what each means is the worker's.
  if (!allowedSigningAlgorithms(spec).includes(algorithm)) throw invalidArgument("algorithm", `${algorithmName(algorithm)} cannot be used with ${keySpecName(spec)}`);
  if (family.kind === "rsa" && algorithm === SigningAlgorithm.RSA_PSS_SHA_256) return { kind: "rsa-pss", hash: "sha256", saltBytes: 32 };
  if (family.kind === "rsa" && algorithm === SigningAlgorithm.RSA_PKCS1_SHA_256) return { kind: "rsa-pkcs1", hash: "sha256" };
  if (family.kind === "ec" && family.curve !== "P-384" && algorithm === SigningAlgorithm.ECDSA_SHA_256) {
    return { kind: "ecdsa", hash: "sha256", curve: family.curve };
  }
  if (family.kind === "ec" && family.curve === "P-384" && algorithm === SigningAlgorithm.ECDSA_SHA_384) {
    return { kind: "ecdsa", hash: "sha384", curve: family.curve };
  }
  if (family.kind === "ed25519" && algorithm === SigningAlgorithm.ED25519) return { kind: "ed25519" };
  if (family.kind === "ml-dsa" && algorithm === SigningAlgorithm.ML_DSA_SHAKE_256) return { kind: "ml-dsa", level: family.level };
  throw invalidArgument("algorithm", `${algorithmName(algorithm)} cannot be used with ${keySpecName(spec)}`);
}

function checkedMessage(value: Uint8Array): SignInput {
  if (value.length < 1 || value.length > MAX_MESSAGE_BYTES) throw invalidArgument("message", `must be 1 to ${MAX_MESSAGE_BYTES} bytes, got ${value.length}`);
  return { kind: "message", message: value };
}

/**
 * Checks the oneof against the scheme: digest of the hash's length, (Ed25519) a 1..4096-byte message, or
 * (ML-DSA) such a message or a 64-byte external μ.
 */
export function signInput(scheme: SigningScheme, input: ProtoSignInput): SignInput {
  if (scheme.kind === "ml-dsa") {
    if (input.case === "message") return checkedMessage(input.value);
    if (input.case !== "externalMu") throw invalidArgument("message", "or external_mu is required for ML_DSA_SHAKE_256 (a digest cannot be signed)");
    if (input.value.length !== EXTERNAL_MU_BYTES) throw invalidArgument("external_mu", `must be ${EXTERNAL_MU_BYTES} bytes, got ${input.value.length}`);
    return { kind: "external-mu", mu: input.value };
  }
  if (input.case === "externalMu") throw invalidArgument("external_mu", "is only for ML_DSA_SHAKE_256");
  if (scheme.kind === "ed25519") {
    if (input.case !== "message") throw invalidArgument("message", "is required for ED25519 (a digest cannot be signed)");
    return checkedMessage(input.value);
  }
  if (input.case !== "digest") throw invalidArgument("digest", `is required (the worker signs ${scheme.hash} digests)`);
  const expected = HASH_BYTES[scheme.hash];
  if (input.value.length !== expected) {
    throw invalidArgument("digest", `must be ${expected} bytes for ${scheme.hash}, got ${input.value.length}`);
  }
  return { kind: "digest", digest: input.value };
}
