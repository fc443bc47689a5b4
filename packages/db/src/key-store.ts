// Key metadata and key versions. Versions hold material only wrapped under the root key.
import type { Sql, TransactionSql } from "./connect";
import { boundedRead } from "./deadline";
import { KEY_EVENTS_CHANNEL } from "./key-events-channel";
import { getImportToken, getImportedMaterial } from "./import-store";
import type { ImportedMaterialRecord, ImportTokenRecord } from "./import-store";

export type { KeyPatch, KeyRecord, KeyTombstone, KeyVersionRecord, NewKey } from "./key-records";
import type { KeyPatch, KeyRecord, KeyTombstone, KeyVersionRecord, NewKey } from "./key-records";

export interface KeyListFilter {
  keyStates?: readonly number[];
  keySpecs?: readonly number[];
  tags?: Readonly<Record<string, string>>;
}

export interface KeyCursor {
  creationTime: Date;
  keyId: string;
}

export class KeyStore {
  constructor(private readonly sql: Sql) {}

  // Methods taking a TransactionSql run inside a unit of work (unit-of-work.ts), the only holder of one.

  /** The key row, locked until the transaction ends (concurrent changes to one key serialise). */
  async lockKey(tx: TransactionSql, keyId: string): Promise<KeyRecord | undefined> {
    const rows = await tx<KeyRecord[]>`
      SELECT k.*, ${this.tagsColumn(tx)} FROM keys k WHERE k.key_id = ${keyId} FOR UPDATE`;
    return rows[0];
  }

  async updateKey(tx: TransactionSql, keyId: string, patch: KeyPatch): Promise<KeyRecord> {
    const columns = Object.keys(patch);
    if (columns.length > 0) await tx`UPDATE keys SET ${tx(patch as Record<string, never>, columns)} WHERE key_id = ${keyId}`;
    const rows = await tx<KeyRecord[]>`SELECT k.*, ${this.tagsColumn(tx)} FROM keys k WHERE k.key_id = ${keyId}`;
    const key = rows[0];
    if (!key) throw new Error(`key ${keyId} vanished inside its transaction`);
    await this.notifyChanged(tx, keyId);
    return key;
  }

  /** Adds a version and makes it the primary. */
  async addPrimaryVersion(tx: TransactionSql, version: KeyVersionRecord, patch: KeyPatch = {}): Promise<KeyRecord> {
    await tx`
      INSERT INTO key_versions (key_version_id, key_id, creation_time, wrapped_material, root_key_id, public_key)
      VALUES (${version.keyVersionId}, ${version.keyId}, ${version.creationTime}, ${version.wrappedMaterial}, ${version.rootKeyId},
              ${version.publicKey ?? null})`;
    return this.updateKey(tx, version.keyId, { ...patch, primaryKeyVersionId: version.keyVersionId });
  }

  /** A key's versions in creation order after `after` (a version id), up to `limit`. */
  async listVersions(keyId: string, limit: number, after: { creationTime: Date; keyVersionId: string } | undefined) {
    return boundedRead(this.sql, (sql) => sql<Omit<KeyVersionRecord, "wrappedMaterial">[]>`
      SELECT key_version_id, key_id, creation_time, root_key_id FROM key_versions
      WHERE key_id = ${keyId}
        ${after ? sql`AND (creation_time, key_version_id) > (${after.creationTime}, ${after.keyVersionId})` : sql``}
      ORDER BY creation_time, key_version_id
      LIMIT ${limit}`);
  }

  /**
   * Keys whose automatic rotation is due, not locked: their material is made before a lock is taken, and
   * the rotation commits only if the key is still due with the same primary (UnitOfWork.setPrimaryIf).
   */
  async dueForRotation(now: Date, limit: number): Promise<KeyRecord[]> {
    return boundedRead(this.sql, (sql) => sql<KeyRecord[]>`
      SELECT k.*, '{}'::jsonb AS tags FROM keys k
      WHERE k.automatic_rotation AND k.key_state = 1 AND k.next_rotation_time <= ${now}
      ORDER BY k.next_rotation_time
      LIMIT ${limit}`);
  }

  /** Keys pending deletion whose window has ended, locked; rows another replica holds are skipped. */
  async lockDueForDeletion(tx: TransactionSql, now: Date, limit: number): Promise<KeyRecord[]> {
    return tx<KeyRecord[]>`
      SELECT k.*, '{}'::jsonb AS tags FROM keys k
      WHERE k.key_state = 3 AND k.delete_time <= ${now}
      ORDER BY k.delete_time
      LIMIT ${limit}
      FOR UPDATE SKIP LOCKED`;
  }

  /** Removes the key, its versions (wrapped material), tags, aliases and grants; keeps a tombstone. */
  async destroyKey(tx: TransactionSql, key: KeyRecord, now: Date): Promise<KeyTombstone> {
    const versions = await tx<{ keyVersionId: string }[]>`SELECT key_version_id FROM key_versions WHERE key_id = ${key.keyId}`;
    const tombstone: KeyTombstone = {
      keyId: key.keyId,
      creationTime: key.creationTime,
      creator: key.creator,
      deletionRequestedBy: key.deletionRequestedBy ?? "",
      destroyTime: now,
      keyVersionIds: versions.map((v) => v.keyVersionId),
    };
    await tx`DELETE FROM aliases WHERE key_id = ${key.keyId}`;
    await tx`DELETE FROM key_tags WHERE key_id = ${key.keyId}`;
    await tx`DELETE FROM grants WHERE key_id = ${key.keyId}`; // grants die with their key
    await tx`UPDATE keys SET primary_key_version_id = NULL WHERE key_id = ${key.keyId}`;
    await tx`DELETE FROM key_versions WHERE key_id = ${key.keyId}`;
    await tx`DELETE FROM keys WHERE key_id = ${key.keyId}`;
    await tx`
      INSERT INTO key_tombstones (key_id, creation_time, creator, deletion_requested_by, destroy_time, key_version_ids)
      VALUES (${tombstone.keyId}, ${tombstone.creationTime}, ${tombstone.creator}, ${tombstone.deletionRequestedBy},
              ${tombstone.destroyTime}, ${tombstone.keyVersionIds}::uuid[])`;
    await tx`SELECT pg_notify(${KEY_EVENTS_CHANNEL}, ${`destroyed:${key.keyId}:${tombstone.keyVersionIds.join(",")}`})`;
    return tombstone;
  }

  /** The key whose imported material was this version (it may be deleted now, the key PENDING_IMPORT). */
  async keyOfImportedVersion(keyVersionId: string): Promise<string | undefined> {
    const rows = await boundedRead(this.sql, (sql) => sql<{ keyId: string }[]>`
      SELECT key_id FROM imported_material WHERE key_version_id = ${keyVersionId}`);
    return rows[0]?.keyId;
  }

  async getTombstone(keyId: string): Promise<KeyTombstone | undefined> {
    const rows = await boundedRead(this.sql, (sql) => sql<KeyTombstone[]>`SELECT * FROM key_tombstones WHERE key_id = ${keyId}`);
    return rows[0];
  }

  async tombstoneOfVersion(keyVersionId: string): Promise<KeyTombstone | undefined> {
    const rows = await boundedRead(this.sql, (sql) => sql<KeyTombstone[]>`
      SELECT * FROM key_tombstones WHERE key_version_ids @> ARRAY[${keyVersionId}]::uuid[]`);
    return rows[0];
  }

  /** A version's encryption counter as the replicas have flushed it (0 for an unknown version). */
  async encryptionsOf(keyVersionId: string): Promise<number> {
    const rows = await this.sql<{ encryptions: string }[]>`SELECT encryptions FROM key_versions WHERE key_version_id = ${keyVersionId}`;
    return rows[0] ? Number(rows[0].encryptions) : 0;
  }

  /** Adds a batch of encryptions to a version's counter and returns the new total. */
  async addEncryptions(keyVersionId: string, count: number): Promise<number> {
    const rows = await this.sql<{ encryptions: string }[]>`
      UPDATE key_versions SET encryptions = encryptions + ${count} WHERE key_version_id = ${keyVersionId}
      RETURNING encryptions`;
    return rows[0] ? Number(rows[0].encryptions) : 0;
  }

  /** Replaces tags: `set` are added or overwritten, `remove` deleted. Returns the key's tags after. */
  async changeTags(tx: TransactionSql, keyId: string, set: Record<string, string>, remove: readonly string[]): Promise<Record<string, string>> {
    if (remove.length > 0) await tx`DELETE FROM key_tags WHERE key_id = ${keyId} AND tag_key IN ${tx(remove)}`;
    for (const [tagKey, tagValue] of Object.entries(set)) {
      await tx`
        INSERT INTO key_tags (key_id, tag_key, tag_value) VALUES (${keyId}, ${tagKey}, ${tagValue})
        ON CONFLICT (key_id, tag_key) DO UPDATE SET tag_value = EXCLUDED.tag_value`;
    }
    const rows = await tx<{ tagKey: string; tagValue: string }[]>`SELECT tag_key, tag_value FROM key_tags WHERE key_id = ${keyId}`;
    await this.notifyChanged(tx, keyId);
    return Object.fromEntries(rows.map((r) => [r.tagKey, r.tagValue]));
  }

  /** Delivered to every listening replica when the transaction commits. */
  async notifyChanged(tx: TransactionSql, keyId: string): Promise<void> {
    await tx`SELECT pg_notify(${KEY_EVENTS_CHANNEL}, ${`changed:${keyId}`})`;
  }

  /** Inserts a key, its first version (the primary) and its tags in one transaction. */
  async createKey(key: NewKey, version: KeyVersionRecord | undefined): Promise<void> {
    await this.sql.begin((tx) => this.insertKey(tx, key, version));
  }

  /** createKey inside the caller's transaction (which also writes the change's audit row). */
  async insertKey(tx: TransactionSql, key: NewKey, version: KeyVersionRecord | undefined): Promise<void> {
    await tx`
      INSERT INTO keys (key_id, description, key_spec, key_usage, protection_level, origin, key_state,
                        creation_time, creator, automatic_rotation, rotation_interval_seconds, next_rotation_time, policy)
      VALUES (${key.keyId}, ${key.description}, ${key.keySpec}, ${key.keyUsage}, ${key.protectionLevel},
              ${key.origin}, ${key.keyState}, ${key.creationTime}, ${key.creator}, ${key.automaticRotation},
              ${key.rotationIntervalSeconds}, ${key.nextRotationTime}, ${key.policy})`;
    if (version) {
      await tx`
        INSERT INTO key_versions (key_version_id, key_id, creation_time, wrapped_material, root_key_id, public_key)
        VALUES (${version.keyVersionId}, ${version.keyId}, ${version.creationTime}, ${version.wrappedMaterial},
                ${version.rootKeyId}, ${version.publicKey ?? null})`;
      await tx`UPDATE keys SET primary_key_version_id = ${version.keyVersionId} WHERE key_id = ${key.keyId}`;
    }
    const tags = Object.entries(key.tags).map(([tag_key, tag_value]) => ({ key_id: key.keyId, tag_key, tag_value }));
    if (tags.length > 0) await tx`INSERT INTO key_tags ${tx(tags)}`;
  }

  /** The key as committed now; inside `tx` when given (without locking its row). */
  async getKey(keyId: string, tx?: TransactionSql): Promise<KeyRecord | undefined> {
    const read = (sql: Sql | TransactionSql) => sql<KeyRecord[]>`
      SELECT k.*, ${this.tagsColumn(sql)} FROM keys k WHERE k.key_id = ${keyId}`;
    const rows = await (tx ? read(tx) : boundedRead(this.sql, read));
    return rows[0];
  }

  /** The keys of `keyIds` that exist, in no particular order. */
  async getKeys(keyIds: readonly string[]): Promise<KeyRecord[]> {
    if (keyIds.length === 0) return [];
    return boundedRead(this.sql, (sql) => sql<KeyRecord[]>`
      SELECT k.*, ${this.tagsColumn(sql)} FROM keys k WHERE k.key_id IN ${sql(keyIds)}`);
  }

  async getVersion(keyVersionId: string): Promise<KeyVersionRecord | undefined> {
    const rows = await boundedRead(this.sql, (sql) => sql<KeyVersionRecord[]>`
      SELECT key_version_id, key_id, creation_time, wrapped_material, root_key_id, public_key
      FROM key_versions WHERE key_version_id = ${keyVersionId}`);
    return rows[0];
  }

  /** Keys in (creation_time, key_id) order after `after`; returns up to `limit` rows. */
  async listKeys(limit: number, after: KeyCursor | undefined, filter: KeyListFilter = {}): Promise<KeyRecord[]> {
    return boundedRead(this.sql, (sql) => this.listKeysQuery(sql, limit, after, filter));
  }

  /** The caller validates the filter (at most 20 tags): the query has one EXISTS per tag. */
  private listKeysQuery(sql: Sql | TransactionSql, limit: number, after: KeyCursor | undefined, filter: KeyListFilter) {
    const conditions = [sql`true`];
    if (after) {
      conditions.push(sql`(k.creation_time, k.key_id) > (${after.creationTime}, ${after.keyId})`);
    }
    if (filter.keyStates && filter.keyStates.length > 0) conditions.push(sql`k.key_state IN ${sql(filter.keyStates)}`);
    if (filter.keySpecs && filter.keySpecs.length > 0) conditions.push(sql`k.key_spec IN ${sql(filter.keySpecs)}`);
    for (const [tagKey, tagValue] of Object.entries(filter.tags ?? {})) {
      conditions.push(sql`EXISTS (SELECT 1 FROM key_tags t
                                  WHERE t.key_id = k.key_id AND t.tag_key = ${tagKey} AND t.tag_value = ${tagValue})`);
    }
    const where = conditions.reduce((acc, c) => sql`${acc} AND ${c}`);
    return sql<KeyRecord[]>`
      SELECT k.*, ${this.tagsColumn(sql)} FROM keys k
      WHERE ${where}
      ORDER BY k.creation_time, k.key_id
      LIMIT ${limit}`;
  }

  /** The import token with this hash as committed now (not locked); undefined if none. */
  async importToken(tokenHash: Buffer): Promise<ImportTokenRecord | undefined> {
    return boundedRead(this.sql, (sql) => getImportToken(sql, tokenHash));
  }

  /** What stays of a key's first import (version id, fingerprint) as committed now; undefined if none. */
  async importedMaterial(keyId: string): Promise<ImportedMaterialRecord | undefined> {
    return boundedRead(this.sql, (sql) => getImportedMaterial(sql, keyId));
  }

  /** A secret shared by every replica, created by whichever asks first. */
  async sharedSecret(name: string, candidate: Buffer): Promise<Buffer> {
    await this.sql`INSERT INTO service_secrets (name, value) VALUES (${name}, ${candidate}) ON CONFLICT (name) DO NOTHING`;
    const rows = await this.sql<{ value: Buffer }[]>`SELECT value FROM service_secrets WHERE name = ${name}`;
    const value = rows[0]?.value;
    if (!value) throw new Error(`service secret ${name} missing after insert`);
    return value;
  }

  private tagsColumn(sql: Sql | TransactionSql = this.sql) {
    return sql`COALESCE((SELECT jsonb_object_agg(t.tag_key, t.tag_value) FROM key_tags t WHERE t.key_id = k.key_id),
                             '{}'::jsonb) AS tags`;
  }
}
