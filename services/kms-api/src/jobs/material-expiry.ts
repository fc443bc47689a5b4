// Imported material whose key_material_expire_time has passed is deleted, as DeleteKeyMaterial would: the
// key returns to PENDING_IMPORT (a key pending deletion stays so). Every replica runs it; SELECT … FOR
// UPDATE SKIP LOCKED hands each key to one of them. Import tokens a week past their expiry go too.
// Database work only (no worker call), so one unit of work takes a batch.
import { stateAfterMaterialRemoved } from "@kms/key-rules";
import type { Services } from "../context";
import { auditJobChange } from "./job-audit";

/** Expired tokens are kept this long, so a late caller hears "expired" rather than "invalid". */
const EXPIRED_TOKEN_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

/** Removes the material of up to `limit` keys whose material expired by now; returns their ids. */
export async function expireImportedMaterial(s: Services, limit = 20): Promise<string[]> {
  const now = s.clock();
  const expired = await s.transactions.run(async (work) => {
    const due = await work.lockDueForMaterialExpiry(now, limit);
    for (const key of due) {
      const { keyId, keyState, primaryKeyVersionId } = key.record;
      if (primaryKeyVersionId !== null) await key.deleteImportedVersion(primaryKeyVersionId);
      await key.update({ keyState: stateAfterMaterialRemoved(keyState), primaryKeyVersionId: null, materialExpireTime: null });
      await auditJobChange(s, work, "ImportedMaterialExpiry", keyId, primaryKeyVersionId ?? "");
    }
    await work.deleteExpiredImportTokens(new Date(now.getTime() - EXPIRED_TOKEN_RETENTION_MS));
    return due.map((k) => k.record.keyId);
  });
  for (const keyId of expired) {
    s.keys.invalidateKey(keyId);
    s.log.info("imported key material expired", { keyId });
  }
  return expired;
}
