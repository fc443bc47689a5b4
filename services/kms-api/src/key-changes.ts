// Changes to one key, made under its row lock so concurrent changes serialise, committed with their
// audit row (audited-change.ts), and announced to every replica (NOTIFY on commit). Nothing remote runs
// under the lock: new material is made by the worker first (generateVersion), then committed.
import type { KeyPatch, KeyRecord, KeyVersionRecord, LockedKey } from "@kms/db";
import { nextRotationAfter } from "@kms/key-rules";
import { randomUUID } from "node:crypto";
import { auditedTransaction } from "./audited-change";
import type { CallContext, Services } from "./context";
import { faultPoint } from "./fault-injection";
import { auditJobChange } from "./jobs/job-audit";
import type { JobOperation } from "./jobs/job-audit";

/** Locks the key named by `keyIdField`, lets the pure `decide` compute the change (or throw), applies it. */
export async function changeKey(
  s: Services,
  ctx: CallContext,
  keyIdField: string,
  decide: (key: KeyRecord) => KeyPatch,
  field = "key_id",
): Promise<KeyRecord> {
  return changeLockedKey(s, ctx, keyIdField, (key) => key.update(decide(key.record)), field);
}

/**
 * Locks the key named by `keyIdField` and runs `change` on it (database work only) with the call's audit
 * row. `change` returning false means nothing changed (no row is written; the caller decides what next).
 */
export async function changeLockedKey<T>(
  s: Services,
  ctx: CallContext,
  keyIdField: string,
  change: (key: LockedKey) => Promise<T>,
  field = "key_id",
): Promise<T> {
  // Authorized first on the cached record, so that a caller who may not change the key learns nothing
  // about it (nor whether an id or alias exists); then again under the row lock, on the current one.
  const { keyId } = await s.lookup.find(ctx, keyIdField, field);
  const result = await auditedTransaction(s, ctx, (work) =>
    work.withLockedKey(keyId, (key) => {
      s.authorizer.key(ctx, key.record);
      return change(key);
    }),
  );
  if (result === undefined) throw await s.lookup.gone(keyId, ctx);
  s.keys.invalidateKey(keyId); // this replica at once; the others on NOTIFY
  return result;
}

/**
 * The key as committed now (not the cached copy), authorized: what a change decides on before it asks
 * the worker for anything. The change checks again under the row lock.
 */
export async function currentKey(s: Services, ctx: CallContext, keyId: string): Promise<KeyRecord> {
  const key = await s.store.getKey(keyId);
  if (!key) throw await s.lookup.gone(keyId, ctx);
  s.authorizer.key(ctx, key);
  return key;
}

/** New material for a version of `key`, made by the worker; no transaction is open meanwhile. */
export async function generateVersion(
  s: Services,
  key: Pick<KeyRecord, "keyId" | "keySpec" | "protectionLevel">,
  deadline: Date | undefined,
  keyVersionId: string = randomUUID(),
): Promise<KeyVersionRecord> {
  const material = await s.worker.generateKeyMaterial(
    { keySpec: key.keySpec, protectionLevel: key.protectionLevel, label: keyVersionId, keyVersionId },
    deadline,
  );
  faultPoint("crash-after-generate"); // test-only, off by default (fault-injection.ts)
  return {
    keyVersionId,
    keyId: key.keyId,
    creationTime: s.clock(),
    wrappedMaterial: Buffer.from(material.wrappedMaterial),
    rootKeyId: material.rootKeyId,
    publicKey: material.publicKey.length > 0 ? Buffer.from(material.publicKey) : null,
  };
}

/** What a new primary version changes besides the primary: the rotation times, from the locked row. */
export function rotationPatch(key: KeyRecord, version: KeyVersionRecord): KeyPatch {
  return { lastRotationTime: version.creationTime, nextRotationTime: nextRotationAfter(key, version.creationTime) };
}

/**
 * A rotation no caller asked for (by time, by use): material is made for `key` as read, then committed
 * with the job's audit row only if the key still has that primary and `stillWanted` holds under the lock
 * (another replica may have rotated it meanwhile: then the material is dropped). Returns whether it rotated.
 */
export async function rotateIfUnchanged(s: Services, key: KeyRecord, stillWanted: (key: KeyRecord) => boolean, operation: JobOperation): Promise<boolean> {
  const version = await generateVersion(s, key, undefined);
  const rotated = await s.transactions.run(async (work) => {
    const expected = { primaryKeyVersionId: key.primaryKeyVersionId, holds: stillWanted };
    const updated = await work.setPrimaryIf(key.keyId, expected, version, (locked) => rotationPatch(locked, version));
    if (updated) await auditJobChange(s, work, operation, key.keyId, version.keyVersionId);
    return updated !== undefined;
  });
  if (rotated) s.keys.invalidateKey(key.keyId);
  return rotated;
}
