// DeleteKeyMaterial: the imported material's wrapped copy goes (every replica's worker forgets it) and the
// key waits in PENDING_IMPORT; the version id and fingerprint stay, so only the same material comes back.
import { deleteImportedVersion } from "@kms/db";
import type { KeyPatch } from "@kms/db";
import { checkImportOperation, stateAfterMaterialRemoved } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { changeKey } from "../key-changes";
import { toKeyMetadata } from "../keys";
import type { Handler } from "../pipeline/operation";

export const deleteKeyMaterial: Handler<typeof kms.DeleteKeyMaterialRequestSchema, typeof kms.DeleteKeyMaterialResponseSchema> = async (req, ctx, s) => {
  const key = await changeKey(s, ctx, req.keyId, async (key, tx): Promise<KeyPatch> => {
    checkImportOperation(key, "DeleteKeyMaterial");
    if (key.primaryKeyVersionId !== null) {
      ctx.audit.keyVersionId = key.primaryKeyVersionId;
      await deleteImportedVersion(tx, key.keyId, key.primaryKeyVersionId);
    }
    return { keyState: stateAfterMaterialRemoved(key.keyState), primaryKeyVersionId: null, materialExpireTime: null };
  });
  return { keyMetadata: toKeyMetadata(key) };
};
