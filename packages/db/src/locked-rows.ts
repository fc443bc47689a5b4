// Rows a unit of work (unit-of-work.ts) has locked, with the changes that may be made to each. They
// live only as long as their transaction and hold no SQL handle of the caller's.
import type { TransactionSql } from "./connect";
import type { AliasRecord, AliasStore } from "./alias-store";
import { countGrants, deleteGrant, grantByName, grantOfKey, insertGrant } from "./grant-store";
import type { GrantRecord } from "./grant-store";
import { deleteImportedVersion, getImportedMaterial, lockImportToken, markImportTokenUsed, recordImportedMaterial } from "./import-store";
import type { ImportedMaterialRecord, ImportTokenRecord } from "./import-store";
import type { KeyPatch, KeyRecord, KeyStore, KeyTombstone, KeyVersionRecord } from "./key-store";

/** A key whose row this transaction holds locked. */
export class LockedKey {
  constructor(
    private readonly tx: TransactionSql,
    private readonly keys: KeyStore,
    /** The row as it is under the lock: decide on this, not on a cached copy. */
    readonly record: KeyRecord,
  ) {}

  /** Applies `patch` (may be empty: then only the replicas are told) and returns the key after. */
  update(patch: KeyPatch): Promise<KeyRecord> {
    return this.keys.updateKey(this.tx, this.record.keyId, patch);
  }

  /** Adds a version of this key (made before the lock) and makes it the primary, with `patch`. */
  addPrimaryVersion(version: KeyVersionRecord, patch: KeyPatch = {}): Promise<KeyRecord> {
    if (version.keyId !== this.record.keyId) throw new Error(`version ${version.keyVersionId} is not of key ${this.record.keyId}`);
    return this.keys.addPrimaryVersion(this.tx, version, patch);
  }

  /** Tags `set` are added or overwritten, `remove` deleted. Returns the key's tags after. */
  changeTags(set: Record<string, string>, remove: readonly string[]): Promise<Record<string, string>> {
    return this.keys.changeTags(this.tx, this.record.keyId, set, remove);
  }

  /** The key's grant of this name (CreateGrant's idempotence), if any. */
  grantByName(name: string): Promise<GrantRecord | undefined> {
    return grantByName(this.tx, this.record.keyId, name);
  }

  /** The key's grant with this id, if it has one. */
  grantOf(grantId: string): Promise<GrantRecord | undefined> {
    return grantOfKey(this.tx, this.record.keyId, grantId);
  }

  countGrants(): Promise<number> {
    return countGrants(this.tx, this.record.keyId);
  }

  addGrant(grant: GrantRecord): Promise<void> {
    if (grant.keyId !== this.record.keyId) throw new Error(`grant ${grant.grantId} is not of key ${this.record.keyId}`);
    return insertGrant(this.tx, grant);
  }

  /** Retires or revokes the key's grant; false when the key has no such grant. */
  deleteGrant(grantId: string): Promise<boolean> {
    return deleteGrant(this.tx, this.record.keyId, grantId);
  }

  /** Removes the key, its versions, tags, aliases and grants; keeps a tombstone. */
  destroy(now: Date): Promise<KeyTombstone> {
    return this.keys.destroyKey(this.tx, this.record, now);
  }

  /**
   * The import token with this hash, locked (two imports with one token serialise); undefined if none.
   * The caller checks that it was issued for this key.
   */
  async lockImportToken(tokenHash: Buffer): Promise<LockedImportToken | undefined> {
    const token = await lockImportToken(this.tx, tokenHash);
    return token ? new LockedImportToken(this.tx, token) : undefined;
  }

  /** What stays of the key's first import (its version id and fingerprint), if it was ever imported. */
  importedMaterial(): Promise<ImportedMaterialRecord | undefined> {
    return getImportedMaterial(this.tx, this.record.keyId);
  }

  /** Remembers the first import of this key's material. */
  recordImportedMaterial(record: Omit<ImportedMaterialRecord, "keyId">): Promise<void> {
    return recordImportedMaterial(this.tx, { ...record, keyId: this.record.keyId });
  }

  /**
   * Deletes the wrapped material of the key's imported version and tells every replica's worker to forget
   * it. The caller then sets the primary version to null (update()).
   */
  deleteImportedVersion(keyVersionId: string): Promise<void> {
    return deleteImportedVersion(this.tx, this.record.keyId, keyVersionId);
  }
}

/** An import token whose row this transaction holds locked. */
export class LockedImportToken {
  constructor(
    private readonly tx: TransactionSql,
    readonly record: ImportTokenRecord,
  ) {}

  /** A token is good for one import; its wrapping key is useless afterwards and goes. */
  markUsed(now: Date): Promise<void> {
    return markImportTokenUsed(this.tx, this.record.tokenId, now);
  }
}

/** An alias whose row this transaction holds locked: its target cannot move until the commit. */
export class LockedAlias {
  constructor(
    private readonly tx: TransactionSql,
    private readonly keys: KeyStore,
    private readonly aliases: AliasStore,
    readonly record: AliasRecord,
  ) {}

  /** The key the alias points at now (read in this transaction, not locked); undefined if gone. */
  target(): Promise<KeyRecord | undefined> {
    return this.keys.getKey(this.record.keyId, this.tx);
  }

  /** Points the alias at another key. */
  async pointAt(keyId: string, now: Date): Promise<AliasRecord> {
    const updated = await this.aliases.update(this.tx, this.record.aliasName, keyId, now);
    if (!updated) throw new Error(`alias ${this.record.aliasName} vanished under its lock`);
    return updated;
  }

  delete(): Promise<boolean> {
    return this.aliases.delete(this.tx, this.record.aliasName);
  }
}
