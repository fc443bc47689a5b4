// Rotation by use: a key whose primary version has made KMS_ROTATE_AFTER_ENCRYPTIONS encryptions (as the
// usage counter reports, usage-counter.ts) gets a new primary, once, however many replicas saw it.
import type { KeyRecord } from "@kms/db";
import { kmsResources } from "@kms/proto";
import type { Services } from "../context";
import { addVersion } from "../key-changes";
import { auditJobChange } from "./job-audit";

/** Under the key's row lock: only the replica that still sees the old primary makes a new one. */
export async function rotateIfStillPrimary(s: Services, keyId: string, keyVersionId: string, threshold: number): Promise<void> {
  const rotated = await s.store.transaction(async (tx) => {
    const key: KeyRecord | undefined = await s.store.lockKey(tx, keyId);
    // Imported material cannot be regenerated here: such keys are re-imported by their owner instead.
    if (!key || key.primaryKeyVersionId !== keyVersionId || key.keyState !== 1 || key.origin === kmsResources.Origin.EXTERNAL) return false;
    const patched = await addVersion(s, tx, key, undefined);
    await auditJobChange(s, tx, "RotationByUse", keyId, patched.primaryKeyVersionId ?? "");
    return true;
  });
  if (rotated) s.keys.invalidateKey(keyId);
  if (rotated) s.log.info("key rotated by use", { keyId, previousVersion: keyVersionId, threshold });
}
