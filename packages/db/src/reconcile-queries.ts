// The database side of `reconcile` (kms-api's reconcile.ts): rows the HSM and the database may disagree on.
import type { Sql } from "./connect";

/** KeyState.PENDING_IMPORT (kms.v1): such a key has no primary version by design. */
const PENDING_IMPORT = 4;

export interface UnusableVersion {
  keyId: string;
  keyVersionId: string;
  rootKeyId: string;
}

export interface KeyWithoutPrimary {
  keyId: string;
  keyState: number;
  primaryKeyVersionId: string | null;
}

/** Key versions wrapped under none of `rootKeyIds` (they cannot be unwrapped by this worker). */
export async function versionsUnderOtherRoots(sql: Sql, rootKeyIds: readonly string[]): Promise<UnusableVersion[]> {
  if (rootKeyIds.length === 0) throw new Error("versionsUnderOtherRoots needs at least one root key id");
  const rows = await sql<UnusableVersion[]>`
    SELECT key_id::text, key_version_id::text, root_key_id FROM key_versions
    WHERE root_key_id NOT IN ${sql(rootKeyIds)} ORDER BY key_id, key_version_id`;
  return [...rows];
}

/** Keys outside PENDING_IMPORT with no primary version, or one whose row is missing. */
export async function keysWithoutPrimaryVersion(sql: Sql): Promise<KeyWithoutPrimary[]> {
  const rows = await sql<KeyWithoutPrimary[]>`
    SELECT k.key_id::text, k.key_state::int, k.primary_key_version_id::text FROM keys k
    LEFT JOIN key_versions v ON v.key_version_id = k.primary_key_version_id
    WHERE k.key_state <> ${PENDING_IMPORT} AND v.key_version_id IS NULL
    ORDER BY k.key_id`;
  return [...rows];
}

/** A key version as stored, with its key's spec and level: what the worker needs to check its material. */
export interface StoredKeyVersion {
  keyId: string;
  keyVersionId: string;
  keySpec: number;
  protectionLevel: number;
  wrappedMaterial: Buffer;
  rootKeyId: string;
}

/** Up to `limit` key versions with ids after `after` ("" for the first page), in id order: verify-restore pages through all. */
export async function keyVersionsAfter(sql: Sql, after: string, limit: number): Promise<StoredKeyVersion[]> {
  const rows = await sql<StoredKeyVersion[]>`
    SELECT v.key_id::text, v.key_version_id::text, k.key_spec::int, k.protection_level::int, v.wrapped_material, v.root_key_id
    FROM key_versions v JOIN keys k ON k.key_id = v.key_id
    WHERE v.key_version_id > ${after === "" ? "00000000-0000-0000-0000-000000000000" : after}::uuid
    ORDER BY v.key_version_id LIMIT ${limit}`;
  return [...rows];
}
