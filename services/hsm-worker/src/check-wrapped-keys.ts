// CheckWrappedKeys, for verify-restore: does each stored key version authenticate and unwrap under a root
// this worker holds? Each key is unwrapped and discarded at once (Backend.checkKey): never used, never
// cached, and HSM-level material stays in the HSM. A key's own trouble is its result (ROOT_MISSING, BAD);
// a worker that cannot check at all (HSM unavailable) fails the call, so a restore is never passed by it.
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, invalidArgument, KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import { checkWrappedKey } from "./backend";
import type { Backend } from "./backend";
import type { Reply } from "./handlers";
import { hsmUnsupported } from "./key-spec";

export const MAX_CHECKED_KEYS = 100;

const { WrappedKeyCondition } = hsm;
type Check = MessageInitShape<typeof hsm.WrappedKeyCheckSchema>;

export async function checkWrappedKeys(backend: Backend, req: hsm.CheckWrappedKeysRequest): Promise<Reply<hsm.CheckWrappedKeysResponse>> {
  if (req.keys.length < 1 || req.keys.length > MAX_CHECKED_KEYS) {
    throw invalidArgument("keys", `must hold 1 to ${MAX_CHECKED_KEYS} keys, got ${req.keys.length}`);
  }
  const results: Check[] = [];
  // One at a time: a restore check is a background sweep and must not crowd out traffic on the pool.
  for (const [i, key] of req.keys.entries()) results.push(await checkOne(backend, key, `keys[${i}]`));
  return { response: create(hsm.CheckWrappedKeysResponseSchema, { results }) };
}

async function checkOne(backend: Backend, key: hsm.WrappedKey, field: string): Promise<Check> {
  const named = { keyVersionId: key.keyVersionId, rootKeyId: key.rootKeyId };
  const accepts = backend.accepts();
  if (accepts.current === "") {
    return { ...named, condition: WrappedKeyCondition.ROOT_MISSING, problem: "this worker holds no root key (its token has none and KMS_CREATE_ROOT_KEY is not true)" };
  }
  if (key.rootKeyId !== accepts.current && !accepts.others.includes(key.rootKeyId) && (accepts.legacy === "" || key.rootKeyId !== accepts.legacy)) {
    const held = [accepts.current, ...accepts.others, accepts.legacy].filter((id) => id !== "").join(", ");
    return { ...named, condition: WrappedKeyCondition.ROOT_MISSING, problem: `wrapped under root key ${key.rootKeyId || '""'}, which this worker does not hold (it holds ${held})` };
  }
  try {
    if (key.protectionLevel === kmsResources.ProtectionLevel.HSM && !accepts.hsmKeys) {
      throw hsmUnsupported();
    }
    await backend.checkKey(checkWrappedKey(key, field, accepts), field);
    return { ...named, condition: WrappedKeyCondition.OK };
  } catch (err) {
    if (!(err instanceof KmsError)) throw err;
    // The root was there when the call began but is not now (the legacy root deleted, the token swapped).
    if (err.code === ErrorCode.RootKeyMismatch) return { ...named, condition: WrappedKeyCondition.ROOT_MISSING, problem: err.message };
    if (err.status === status.INVALID_ARGUMENT || err.status === status.FAILED_PRECONDITION) {
      return { ...named, condition: WrappedKeyCondition.BAD, problem: err.message };
    }
    throw err;
  }
}
