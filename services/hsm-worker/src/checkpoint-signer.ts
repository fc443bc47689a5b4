// The audit checkpoint key: the worker signs (sequence, head hash, its own time) of kms-api's audit chain,
// so that a chain cut or wiped in the database shows against a checkpoint kept elsewhere. One dedicated
// ECDSA P-256 key that signs nothing else: on the HSM a token object (pkcs11/checkpoint-key.ts), without
// a PKCS#11 module a key wrapped under the software root (software/checkpoint-key.ts).
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { checkpointKeyId, checkpointPayload } from "@kms/audit-chain";
import { invalidArgument } from "@kms/errors";
import { hsm } from "@kms/proto/internal";
import type { Reply } from "./handlers";

export interface CheckpointSigner {
  /** SubjectPublicKeyInfo (DER). */
  readonly publicKey: Buffer;
  /** ECDSA P-256 signature (DER) of a SHA-256 digest. */
  signDigest(digest: Buffer): Promise<Buffer>;
}

/** The largest sequence a checkpoint takes (the chain's sequences are JavaScript-safe integers). */
const MAX_SEQUENCE = BigInt(Number.MAX_SAFE_INTEGER);

export async function signAuditCheckpoint(
  signer: CheckpointSigner,
  req: hsm.SignAuditCheckpointRequest,
  now: () => Date = () => new Date(),
): Promise<Reply<hsm.SignAuditCheckpointResponse>> {
  if (req.sequence < 1n || req.sequence > MAX_SEQUENCE) throw invalidArgument("sequence", `must be 1 to ${MAX_SEQUENCE}`);
  if (req.headHash.length !== 32) throw invalidArgument("head_hash", `must be 32 bytes, got ${req.headHash.length}`);
  const time = new Date(Math.floor(now().getTime()));
  const payload = checkpointPayload({ sequence: Number(req.sequence), headHash: Buffer.from(req.headHash), time });
  const signature = await signer.signDigest(createHash("sha256").update(payload).digest());
  return {
    response: create(hsm.SignAuditCheckpointResponseSchema, {
      timeUnixMillis: BigInt(time.getTime()),
      signature,
      keyId: checkpointKeyId(signer.publicKey),
    }),
  };
}

export function getAuditCheckpointKey(signer: CheckpointSigner): Reply<hsm.GetAuditCheckpointKeyResponse> {
  return { response: create(hsm.GetAuditCheckpointKeyResponseSchema, { publicKey: signer.publicKey, keyId: checkpointKeyId(signer.publicKey) }) };
}
