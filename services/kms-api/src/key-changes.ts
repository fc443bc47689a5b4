// Changes to one key, made under its row lock so concurrent changes serialise, committed with their
// audit row (audited-change.ts), and announced to every replica (NOTIFY on commit).
import type { KeyPatch, KeyRecord, TransactionSql } from "@kms/db";
import { nextRotationAfter } from "@kms/key-rules";
import { randomUUID } from "node:crypto";
import { auditedTransaction } from "./audited-change";
import { authorizeKey } from "./auth/authorize";
import type { CallContext, Services } from "./context";
import { faultPoint } from "./fault-injection";
import { findKey, keyGone } from "./keys";

/**
 * Locks the key named by `keyIdField`, lets `decide` compute the change (or throw), applies it.
 * `decide` may also do more work inside the transaction (e.g. add a version).
 */
export async function changeKey(
  s: Services,
  ctx: CallContext,
  keyIdField: string,
  decide: (key: KeyRecord, tx: TransactionSql) => Promise<KeyPatch> | KeyPatch,
  field = "key_id",
): Promise<KeyRecord> {
  // Authorized first on the cached record, so that a caller who may not change the key learns nothing
  // about it (nor whether an id or alias exists); then again under the row lock, on the current one.
  const { keyId } = await findKey(s, ctx, keyIdField, field);
  const updated = await auditedTransaction(s, ctx, async (tx) => {
    const key = await s.store.lockKey(tx, keyId);
    if (!key) return undefined;
    authorizeKey(s, ctx, key);
    const patch = await decide(key, tx);
    return s.store.updateKey(tx, keyId, patch);
  });
  if (!updated) throw await keyGone(s, keyId, ctx);
  s.keys.invalidateKey(keyId); // this replica at once; the others on NOTIFY
  return updated;
}

/**
 * Makes new material for `key` in the worker and adds it as the primary version, inside `tx` (which
 * holds the key's row lock). Returns the patched key.
 */
export async function addVersion(s: Services, tx: TransactionSql, key: KeyRecord, deadline: Date | undefined): Promise<KeyRecord> {
  const keyVersionId = randomUUID();
  const material = await s.worker.generateKeyMaterial(
    { keySpec: key.keySpec, protectionLevel: key.protectionLevel, label: keyVersionId, keyVersionId },
    deadline,
  );
  faultPoint("crash-after-generate"); // test-only, off by default (fault-injection.ts)
  const now = s.clock();
  return s.store.addPrimaryVersion(
    tx,
    {
      keyVersionId,
      keyId: key.keyId,
      creationTime: now,
      wrappedMaterial: Buffer.from(material.wrappedMaterial),
      rootKeyId: material.rootKeyId,
      publicKey: material.publicKey.length > 0 ? Buffer.from(material.publicKey) : null,
    },
    { lastRotationTime: now, nextRotationTime: nextRotationAfter(key, now) },
  );
}
