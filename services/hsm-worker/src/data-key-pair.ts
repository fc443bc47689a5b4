// GenerateDataKeyPair: a fresh RSA or EC pair made in the worker with node:crypto (whatever the backend:
// the pair is the caller's, not a key the KMS keeps), its PKCS#8 private key sealed under the request's
// AES key exactly as Encrypt seals (so Decrypt gives it back), the SPKI public key, and the plaintext
// private key only when asked. RSA generations take their turn in the key generation queue.
import { create } from "@bufbuild/protobuf";
import { dataKeyPairFamily } from "@kms/key-rules";
import { hsm } from "@kms/proto/internal";
import type { Backend } from "./backend";
import { sealFreshSecret } from "./handlers";
import type { Reply } from "./handlers";
import { generateSoftwareMaterial } from "./software/asymmetric";

/** Runs a generation in its turn (operations.ts: the queue for slow specs, at once for the others). */
export type InTurn = <T>(generate: () => Promise<T>) => Promise<T>;

export async function generateDataKeyPair(
  backend: Backend,
  req: hsm.GenerateDataKeyPairRequest,
  inTurn: InTurn,
): Promise<Reply<hsm.GenerateDataKeyPairResponse>> {
  const family = dataKeyPairFamily(req.keyPairSpec);
  // Only the generation waits its turn; sealing is an ordinary AES-GCM call.
  const pair = await inTurn(() => generateSoftwareMaterial(family));
  const privateKey = pair.material;
  const sealed = await sealFreshSecret(backend, req.key, privateKey, req.aad, req.returnPrivateKey);
  if (!req.returnPrivateKey) return { response: create(hsm.GenerateDataKeyPairResponseSchema, { sealed, publicKey: pair.publicKey }) };
  return {
    response: create(hsm.GenerateDataKeyPairResponseSchema, { sealed, publicKey: pair.publicKey, privateKey }),
    wipeAfterSend: [privateKey],
  };
}
