// Root rotation's worker side (kms admin rotate-root; docs/operations.md, "Root rotation"). RewrapKeys moves
// stored versions under the current root set without material leaving the worker in the clear (the backend
// does the moving: Pkcs11Root.rewrap); a version's own trouble is its result (ROOT_MISSING, BAD, RETAINED),
// a worker that cannot work at all fails the call. BeginRootRotation and RetireRoot switch and retire
// root sets on the token.
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, invalidArgument, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import { checkWrappedKey } from "./backend";
import type { Backend } from "./backend";
import { MAX_CHECKED_KEYS } from "./check-wrapped-keys";
import type { Reply } from "./handlers";
import { materialFingerprint } from "./import/import-material";
import { hsmUnsupported } from "./key-spec";

const { RewrapOutcome } = hsm;
type Result = MessageInitShape<typeof hsm.RewrappedKeySchema>;

export async function rewrapKeys(backend: Backend, req: hsm.RewrapKeysRequest): Promise<Reply<hsm.RewrapKeysResponse>> {
  if (req.keys.length < 1 || req.keys.length > MAX_CHECKED_KEYS) {
    throw invalidArgument("keys", `must hold 1 to ${MAX_CHECKED_KEYS} keys, got ${req.keys.length}`);
  }
  // Another replica's worker may have switched roots: know what the token holds before judging ids.
  await backend.refreshRoots();
  const results: Result[] = [];
  // One at a time, like CheckWrappedKeys: a background sweep must not crowd out traffic on the pool.
  for (const [i, key] of req.keys.entries()) results.push(await rewrapOne(backend, key, `keys[${i}]`));
  return { response: create(hsm.RewrapKeysResponseSchema, { results }) };
}

async function rewrapOne(backend: Backend, key: hsm.WrappedKey, field: string): Promise<Result> {
  const named = { keyVersionId: key.keyVersionId };
  try {
    const accepts = backend.accepts();
    if (key.protectionLevel === kmsResources.ProtectionLevel.HSM && !accepts.hsmKeys) throw hsmUnsupported();
    const done = await backend.rewrapKey(checkWrappedKey(key, field, accepts), field);
    if (done.outcome === "current") return { ...named, outcome: RewrapOutcome.CURRENT, rootKeyId: key.rootKeyId };
    if (done.outcome === "retained") return { ...named, outcome: RewrapOutcome.RETAINED, rootKeyId: key.rootKeyId, problem: done.problem };
    const fingerprint = materialFingerprint(done.wrappedMaterial);
    return { ...named, outcome: RewrapOutcome.REWRAPPED, wrappedMaterial: done.wrappedMaterial, rootKeyId: done.rootKeyId, fingerprint };
  } catch (err) {
    if (!(err instanceof KmsError)) throw err;
    if (err.code === ErrorCode.RootKeyMismatch) return { ...named, outcome: RewrapOutcome.ROOT_MISSING, rootKeyId: key.rootKeyId, problem: err.message };
    if (err.status === status.INVALID_ARGUMENT || err.status === status.FAILED_PRECONDITION) {
      return { ...named, outcome: RewrapOutcome.BAD, rootKeyId: key.rootKeyId, problem: err.message };
    }
    throw err;
  }
}

export async function beginRootRotation(backend: Backend, req: hsm.BeginRootRotationRequest): Promise<Reply<hsm.BeginRootRotationResponse>> {
  if (req.fromRootKeyId === "") throw invalidArgument("from_root_key_id", "is required");
  const { current, retiring } = await backend.beginRootRotation(req.fromRootKeyId);
  return { response: create(hsm.BeginRootRotationResponseSchema, { rootKeyId: current, retiringRootKeyIds: retiring }) };
}

export async function retireRoot(backend: Backend, req: hsm.RetireRootRequest): Promise<Reply<hsm.RetireRootResponse>> {
  if (req.rootKeyId === "") throw invalidArgument("root_key_id", "is required");
  return { response: create(hsm.RetireRootResponseSchema, { destroyed: await backend.retireRoot(req.rootKeyId) }) };
}
