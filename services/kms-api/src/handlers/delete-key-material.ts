// DeleteKeyMaterial: the imported material's wrapped copy goes (every replica's worker forgets it) and the
// key waits in PENDING_IMPORT; the version id and fingerprint stay, so only the same material comes back.
import { checkImportOperation, stateAfterMaterialRemoved } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { changeLockedKey } from "../key-changes";
import { toKeyMetadata } from "../keys";
import type { Handler } from "../pipeline/operation";

export const deleteKeyMaterial: Handler<typeof kms.DeleteKeyMaterialRequestSchema, typeof kms.DeleteKeyMaterialResponseSchema> = async (req, ctx, s) => {
  const key = await changeLockedKey(s, ctx, req.keyId, async (locked) => {
    const { keyState, primaryKeyVersionId } = locked.record;
    checkImportOperation(locked.record, "DeleteKeyMaterial");
    if (primaryKeyVersionId !== null) {
      ctx.audit.keyVersionId = primaryKeyVersionId;
      await locked.deleteImportedVersion(primaryKeyVersionId);
    }
    return locked.update({ keyState: stateAfterMaterialRemoved(keyState), primaryKeyVersionId: null, materialExpireTime: null });
  });
  return { keyMetadata: toKeyMetadata(key) };
};
