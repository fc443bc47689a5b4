// Automatic rotation by time. Every replica runs it; SELECT … FOR UPDATE SKIP LOCKED hands each due
// key to exactly one of them, and the row's next_rotation_time moves forward in the same transaction.
import type { Services } from "../context";
import { addVersion } from "../key-changes";
import { auditJobChange } from "./job-audit";

/** Rotates up to `limit` keys that are due at `now`; returns how many it rotated. */
export async function rotateDueKeys(s: Services, limit = 20): Promise<number> {
  const rotated = await s.store.transaction(async (tx) => {
    const due = await s.store.lockDueForRotation(tx, s.clock(), limit);
    for (const key of due) {
      const rotated = await addVersion(s, tx, key, undefined);
      await auditJobChange(s, tx, "AutomaticRotation", key.keyId, rotated.primaryKeyVersionId ?? "");
    }
    return due.map((k) => k.keyId);
  });
  for (const keyId of rotated) s.keys.invalidateKey(keyId);
  return rotated.length;
}
