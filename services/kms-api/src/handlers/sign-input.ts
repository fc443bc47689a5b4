// The input AsymmetricSign and AsymmetricVerify pass to the worker: a message is hashed here (the
// worker signs digests), except for ED25519 and ML-DSA, which sign the message itself (ML-DSA also an
// external μ).
import { createHash } from "node:crypto";
import { checkSignInput, signingHash } from "@kms/key-rules";
import type { SignInput } from "@kms/key-rules";
import type { kmsResources } from "@kms/proto";

export function workerSignInput(algorithm: kmsResources.SigningAlgorithm, input: SignInput): { case: "digest" | "message" | "externalMu"; value: Uint8Array } {
  checkSignInput(algorithm, input);
  const hash = signingHash(algorithm);
  if (input.case === "message" && hash !== undefined) {
    return { case: "digest", value: createHash(hash.name).update(input.value).digest() };
  }
  return input as { case: "digest" | "message" | "externalMu"; value: Uint8Array };
}
