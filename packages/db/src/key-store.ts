// Key metadata and key versions. Versions hold material only wrapped under the root key.
import type { Sql } from "./connect";

export interface KeyRecord {
  keyId: string;
  description: string;
  keySpec: number;
  keyUsage: number;
  protectionLevel: number;
  origin: number;
  keyState: number;
  creationTime: Date;
  creator: string;
  primaryKeyVersionId: string | null;
  automaticRotation: boolean;
  rotationIntervalSeconds: number | null;
  nextRotationTime: Date | null;
  lastRotationTime: Date | null;
  deleteTime: Date | null;
  deletionProtection: boolean;
  deletionProtectionDescription: string;
  materialExpireTime: Date | null;
  tags: Record<string, string>;
}

export interface KeyVersionRecord {
  keyVersionId: string;
  keyId: string;
  creationTime: Date;
  wrappedMaterial: Buffer;
  rootKeyId: string;
}

export type NewKey = Omit<KeyRecord, "lastRotationTime" | "deleteTime" | "materialExpireTime" | "deletionProtectionDescription" | "deletionProtection">;

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

  /** Inserts a key, its first version (the primary) and its tags in one transaction. */
  async createKey(key: NewKey, version: KeyVersionRecord | undefined): Promise<void> {
    await this.sql.begin(async (tx) => {
      await tx`
        INSERT INTO keys (key_id, description, key_spec, key_usage, protection_level, origin, key_state,
                          creation_time, creator, automatic_rotation, rotation_interval_seconds, next_rotation_time)
        VALUES (${key.keyId}, ${key.description}, ${key.keySpec}, ${key.keyUsage}, ${key.protectionLevel},
                ${key.origin}, ${key.keyState}, ${key.creationTime}, ${key.creator}, ${key.automaticRotation},
                ${key.rotationIntervalSeconds}, ${key.nextRotationTime})`;
      if (version) {
        await tx`
          INSERT INTO key_versions (key_version_id, key_id, creation_time, wrapped_material, root_key_id)
          VALUES (${version.keyVersionId}, ${version.keyId}, ${version.creationTime}, ${version.wrappedMaterial},
                  ${version.rootKeyId})`;
        await tx`UPDATE keys SET primary_key_version_id = ${version.keyVersionId} WHERE key_id = ${key.keyId}`;
      }
      const tags = Object.entries(key.tags).map(([tag_key, tag_value]) => ({ key_id: key.keyId, tag_key, tag_value }));
      if (tags.length > 0) await tx`INSERT INTO key_tags ${tx(tags)}`;
    });
  }

  async getKey(keyId: string): Promise<KeyRecord | undefined> {
    const rows = await this.sql<KeyRecord[]>`
      SELECT k.*, ${this.tagsColumn()} FROM keys k WHERE k.key_id = ${keyId}`;
    return rows[0];
  }

  async getVersion(keyVersionId: string): Promise<KeyVersionRecord | undefined> {
    const rows = await this.sql<KeyVersionRecord[]>`
      SELECT key_version_id, key_id, creation_time, wrapped_material, root_key_id
      FROM key_versions WHERE key_version_id = ${keyVersionId}`;
    return rows[0];
  }

  /** Keys in (creation_time, key_id) order after `after`; returns up to `limit` rows. */
  async listKeys(limit: number, after: KeyCursor | undefined, filter: KeyListFilter = {}): Promise<KeyRecord[]> {
    const sql = this.sql;
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
      SELECT k.*, ${this.tagsColumn()} FROM keys k
      WHERE ${where}
      ORDER BY k.creation_time, k.key_id
      LIMIT ${limit}`;
  }

  /** A secret shared by every replica, created by whichever asks first. */
  async sharedSecret(name: string, candidate: Buffer): Promise<Buffer> {
    await this.sql`INSERT INTO service_secrets (name, value) VALUES (${name}, ${candidate}) ON CONFLICT (name) DO NOTHING`;
    const rows = await this.sql<{ value: Buffer }[]>`SELECT value FROM service_secrets WHERE name = ${name}`;
    const value = rows[0]?.value;
    if (!value) throw new Error(`service secret ${name} missing after insert`);
    return value;
  }

  private tagsColumn() {
    return this.sql`COALESCE((SELECT jsonb_object_agg(t.tag_key, t.tag_value) FROM key_tags t WHERE t.key_id = k.key_id),
                             '{}'::jsonb) AS tags`;
  }
}
