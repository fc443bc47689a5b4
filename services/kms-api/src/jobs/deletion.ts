// Destroys keys whose pending-deletion window has ended: wrapped material, tags and aliases go, a
// tombstone stays, and every replica's worker is told to drop cached handles (NOTIFY "destroyed:…").
import type { Services } from "../context";
import { auditJobChange } from "./job-audit";

/** Destroys up to `limit` keys due at `now`; returns their ids. */
export async function destroyDueKeys(s: Services, limit = 20): Promise<string[]> {
  const destroyed = await s.store.transaction(async (tx) => {
    const due = await s.store.lockDueForDeletion(tx, s.clock(), limit);
    const out = [];
    for (const key of due) {
      out.push(await s.store.destroyKey(tx, key, s.clock()));
      await auditJobChange(s, tx, "KeyDestruction", key.keyId);
    }
    return out;
  });
  for (const t of destroyed) {
    s.keys.invalidateKey(t.keyId);
    s.log.info("key destroyed", { keyId: t.keyId, versions: t.keyVersionIds.length });
  }
  return destroyed.map((t) => t.keyId);
}
