// Rotation by use: a key whose primary version has made KMS_ROTATE_AFTER_ENCRYPTIONS encryptions (as the
// usage counter reports, usage-counter.ts) gets a new primary, once, however many replicas saw it.
import type { KeyRecord } from "@kms/db";
import { kmsResources } from "@kms/proto";
import type { Services } from "../context";
import { rotateIfUnchanged } from "../key-changes";

/**
 * Material is made only while the key still has the old primary, and commits only if it still does
 * under the row lock (a compare-and-set): of the replicas that see the threshold crossed, one rotates.
 */
export async function rotateIfStillPrimary(s: Services, keyId: string, keyVersionId: string, threshold: number): Promise<void> {
  // Imported material cannot be regenerated here: such keys are re-imported by their owner instead.
  const rotates = (key: KeyRecord) =>
    key.primaryKeyVersionId === keyVersionId && key.keyState === kmsResources.KeyState.ENABLED && key.origin !== kmsResources.Origin.EXTERNAL;
  const key = await s.store.getKey(keyId);
  const rotated = key !== undefined && rotates(key) && (await rotateIfUnchanged(s, key, rotates, "RotationByUse"));
  if (rotated) s.log.info("key rotated by use", { keyId, previousVersion: keyVersionId, threshold });
}
