// The database side of root rotation (kms-api's root-rotation.ts): the rotation row, the versions still
// under old roots, and the compare-and-set that moves one version to its re-wrapped blob.
import type { Sql, TransactionSql } from "./connect";
import { KEY_EVENTS_CHANNEL } from "./key-events-channel";
import type { StoredKeyVersion } from "./reconcile-queries";

/** kms.v1 RootRotationState numbers. */
export const ROTATION_STATE = { REWRAPPING: 1, RETIRING: 2, RETAINING: 3, DONE: 4 } as const;

export interface RootRotationRecord {
  rotationId: string;
  state: number;
  startedBy: string;
  startTime: Date;
  oldRootKeyId: string;
  legacyRootKeyId: string;
  newRootKeyId: string;
  cursorVersionId: string | null;
  rewrappedVersions: number;
  retainedVersions: number;
  retainedReason: string;
  retireTime: Date | null;
  /** Comma-separated. */
  destroyedRootKeyIds: string;
  endTime: Date | null;
}

const COLUMNS = `rotation_id::text AS "rotationId", state::int AS state, started_by AS "startedBy", start_time AS "startTime",
  old_root_key_id AS "oldRootKeyId", legacy_root_key_id AS "legacyRootKeyId", new_root_key_id AS "newRootKeyId",
  cursor_version_id::text AS "cursorVersionId", rewrapped_versions::int AS "rewrappedVersions", retained_versions::int AS "retainedVersions",
  retained_reason AS "retainedReason", retire_time AS "retireTime", destroyed_root_key_ids AS "destroyedRootKeyIds", end_time AS "endTime"`;

export type RotationPatch = Partial<Pick<RootRotationRecord, "state" | "newRootKeyId" | "cursorVersionId" | "retainedVersions" | "retainedReason" | "retireTime" | "destroyedRootKeyIds" | "endTime">>;

const COLUMN_OF: Record<keyof RotationPatch, string> = {
  state: "state",
  newRootKeyId: "new_root_key_id",
  cursorVersionId: "cursor_version_id",
  retainedVersions: "retained_versions",
  retainedReason: "retained_reason",
  retireTime: "retire_time",
  destroyedRootKeyIds: "destroyed_root_key_ids",
  endTime: "end_time",
};

export class RootRotationStore {
  constructor(private readonly sql: Sql) {}

  async get(rotationId: string): Promise<RootRotationRecord | undefined> {
    const [row] = await this.sql.unsafe<RootRotationRecord[]>(`SELECT ${COLUMNS} FROM root_rotations WHERE rotation_id = $1`, [rotationId]);
    return row;
  }

  /** The unfinished rotation (REWRAPPING or RETIRING), if any. */
  async unfinished(): Promise<RootRotationRecord | undefined> {
    const [row] = await this.sql.unsafe<RootRotationRecord[]>(`SELECT ${COLUMNS} FROM root_rotations WHERE state IN (1, 2)`);
    return row;
  }

  /** Finished rotations that kept their old root set (RETAINING), oldest first. */
  async retaining(): Promise<RootRotationRecord[]> {
    return [...(await this.sql.unsafe<RootRotationRecord[]>(`SELECT ${COLUMNS} FROM root_rotations WHERE state = 3 ORDER BY start_time`))];
  }

  /** Starts a rotation; undefined when another is unfinished (two admins at once: one wins). */
  async start(r: Pick<RootRotationRecord, "rotationId" | "startedBy" | "startTime" | "oldRootKeyId" | "legacyRootKeyId">): Promise<RootRotationRecord | undefined> {
    const rows = await this.sql.unsafe<RootRotationRecord[]>(
      `INSERT INTO root_rotations (rotation_id, state, started_by, start_time, old_root_key_id, legacy_root_key_id)
       VALUES ($1, 1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING ${COLUMNS}`,
      [r.rotationId, r.startedBy, r.startTime, r.oldRootKeyId, r.legacyRootKeyId],
    );
    return rows[0];
  }

  async update(rotationId: string, patch: RotationPatch): Promise<RootRotationRecord> {
    const keys = Object.keys(patch) as (keyof RotationPatch)[];
    const sets = keys.map((k, i) => `${COLUMN_OF[k]} = $${i + 2}`).join(", ");
    const [row] = await this.sql.unsafe<RootRotationRecord[]>(`UPDATE root_rotations SET ${sets} WHERE rotation_id = $1 RETURNING ${COLUMNS}`, [
      rotationId,
      ...keys.map((k) => patch[k] as never),
    ]);
    if (row === undefined) throw new Error(`no root rotation ${rotationId}`);
    return row;
  }

  /** Tells every replica that the root sets on the token changed (each asks its worker to read them again). */
  async notifyRootsChanged(rootKeyId: string): Promise<void> {
    await this.sql`SELECT pg_notify(${KEY_EVENTS_CHANNEL}, ${`roots:${rootKeyId}`})`;
  }

  /** Up to `limit` versions under any of `rootKeyIds` with ids after `after` (null: from the start), in id order. */
  async versionsUnder(rootKeyIds: readonly string[], after: string | null, limit: number): Promise<StoredKeyVersion[]> {
    const rows = await this.sql<StoredKeyVersion[]>`
      SELECT v.key_id::text, v.key_version_id::text, k.key_spec::int, k.protection_level::int, v.wrapped_material, v.root_key_id
      FROM key_versions v JOIN keys k ON k.key_id = v.key_id
      WHERE v.root_key_id IN ${this.sql(rootKeyIds)} AND v.key_version_id > ${after ?? "00000000-0000-0000-0000-000000000000"}::uuid
      ORDER BY v.key_version_id LIMIT ${limit}`;
    return [...rows];
  }

  /** Versions under `rootKeyId`, and among them those at `level` (HSM: the ones a rotation cannot move). */
  async countUnder(rootKeyId: string, level?: number): Promise<number> {
    const [row] = await this.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM key_versions v JOIN keys k ON k.key_id = v.key_id
      WHERE v.root_key_id = ${rootKeyId} ${level === undefined ? this.sql`` : this.sql`AND k.protection_level = ${level}`}`;
    return row?.n ?? 0;
  }
}

/**
 * Compare-and-set of one version's material: replaced only if the row still holds the blob that was
 * re-wrapped, under the root it named (a concurrent change or an earlier run wins, and the version keeps
 * a blob that works). Tells the replicas to drop the version's cached row (versions are otherwise cached
 * as never changing). The key id, or undefined.
 */
export async function rewrapKeyVersion(
  tx: TransactionSql,
  v: { keyVersionId: string; oldRootKeyId: string; oldMaterial: Buffer; newRootKeyId: string; newMaterial: Buffer; fingerprint: Buffer },
  rotationId: string,
): Promise<string | undefined> {
  const [row] = await tx<{ keyId: string }[]>`
    UPDATE key_versions SET wrapped_material = ${v.newMaterial}, root_key_id = ${v.newRootKeyId}
    WHERE key_version_id = ${v.keyVersionId} AND root_key_id = ${v.oldRootKeyId} AND wrapped_material = ${v.oldMaterial}
    RETURNING key_id::text AS "keyId"`;
  if (row === undefined) return undefined;
  // An imported version's fingerprint is over its blob: the same material under the new root has a new one.
  await tx`UPDATE imported_material SET fingerprint = ${v.fingerprint} WHERE key_version_id = ${v.keyVersionId}`;
  await tx`UPDATE root_rotations SET rewrapped_versions = rewrapped_versions + 1 WHERE rotation_id = ${rotationId}`;
  await tx`SELECT pg_notify(${KEY_EVENTS_CHANNEL}, ${`rewrapped:${row.keyId}:${v.keyVersionId}`})`;
  return row.keyId;
}

/**
 * Records a batch's end in the same transaction as its re-wraps: the pass resumes after `to`. A
 * compare-and-set on the cursor the batch started from: two steps of one rotation at once (a killed CLI's
 * call still running while the run is resumed, two admins) would otherwise count one page twice or move
 * the cursor back. Run first in the batch's transaction, it also takes the row lock, so the second step
 * waits and then finds the cursor moved. False: another step recorded this page; roll back.
 */
export async function advanceRotation(tx: TransactionSql, rotationId: string, from: string | null, to: string, retained: number, reason: string): Promise<boolean> {
  const rows = await tx`UPDATE root_rotations SET cursor_version_id = ${to}::uuid, retained_versions = retained_versions + ${retained},
           retained_reason = CASE WHEN retained_reason = '' THEN ${reason} ELSE retained_reason END
           WHERE rotation_id = ${rotationId} AND cursor_version_id IS NOT DISTINCT FROM ${from}::uuid`;
  return rows.count === 1;
}
