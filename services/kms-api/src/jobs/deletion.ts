// Destroys keys whose pending-deletion window has ended: wrapped material, tags and aliases go, a
// tombstone stays, and every replica's worker is told to drop cached handles (NOTIFY "destroyed:…").
// Database work only (no worker call), so one unit of work takes a batch.
import type { Services } from "../context";
import { auditJobChange } from "./job-audit";

/** Destroys up to `limit` keys due at `now`; returns their ids. */
export async function destroyDueKeys(s: Services, limit = 20): Promise<string[]> {
  const destroyed = await s.transactions.run(async (work) => {
    const due = await work.lockDueForDeletion(s.clock(), limit);
    const out = [];
    for (const key of due) {
      out.push(await key.destroy(s.clock()));
      await auditJobChange(s, work, "KeyDestruction", key.record.keyId);
    }
    return out;
  });
  for (const t of destroyed) {
    s.keys.invalidateKey(t.keyId);
    s.log.info("key destroyed", { keyId: t.keyId, versions: t.keyVersionIds.length });
  }
  return destroyed.map((t) => t.keyId);
}
