// Automatic rotation by time. Every replica runs it. Each due key is rotated in a transaction of its own,
// with its material made before that transaction: the rotation commits only if the key is still due and
// still has the primary it was read with (a compare-and-set), so a key two replicas pick at once rotates
// once, and the loser's material is dropped (the worker keeps it as a session object only).
import { kmsResources } from "@kms/proto";
import type { KeyRecord } from "@kms/db";
import type { Services } from "../context";
import { rotateIfUnchanged } from "../key-changes";
import { describeError } from "@kms/telemetry";

const stillDue = (now: Date) => (key: KeyRecord) =>
  key.automaticRotation && key.keyState === kmsResources.KeyState.ENABLED && key.nextRotationTime !== null && key.nextRotationTime <= now;

/** Rotates up to `limit` keys that are due at `now`; returns how many it rotated. */
export async function rotateDueKeys(s: Services, limit = 20): Promise<number> {
  const now = s.clock();
  const due = await s.store.dueForRotation(now, limit);
  let rotated = 0;
  let failed: unknown;
  for (const key of due) {
    try {
      if (await rotateIfUnchanged(s, key, stillDue(now), "AutomaticRotation")) rotated++;
    } catch (err) {
      // One key's failure does not hold back the others; the pass still fails, and the next one retries.
      s.log.warn("automatic rotation failed", { keyId: key.keyId, ...describeError(err) });
      failed ??= err;
    }
  }
  if (failed !== undefined) throw failed;
  return rotated;
}
