// Key import: import tokens and what stays of imported material (its version id and fingerprint).
// The writes run inside a unit of work (unit-of-work.ts), which holds the key's row lock where it matters;
// the reads also run alone (KeyStore.importToken, KeyStore.importedMaterial), before the worker is asked.
import type { Sql, TransactionSql } from "./connect";
import { KEY_EVENTS_CHANNEL } from "./key-events-channel";
import type { KeyRecord } from "./key-records";

export interface ImportTokenRecord {
  tokenId: string;
  /** SHA-256 of the token the caller holds; the token itself is never stored. */
  tokenHash: Buffer;
  keyId: string;
  wrappingAlgorithm: number;
  wrappingKeySpec: number;
  /** Protection level of the wrapping key (HSM where the worker has an HSM). */
  protectionLevel: number;
  /** PKCS#8 of the RSA wrapping key, wrapped under the root key; null once the token was used. */
  wrappedPrivateKey: Buffer | null;
  rootKeyId: string;
  creationTime: Date;
  expireTime: Date;
  usedAt: Date | null;
}

export interface ImportedMaterialRecord {
  keyId: string;
  /** The version the material is (again, after a re-import): old ciphertexts name it. */
  keyVersionId: string;
  versionCreationTime: Date;
  fingerprint: Buffer;
}

export async function insertImportToken(tx: TransactionSql, token: ImportTokenRecord): Promise<void> {
  await tx`
    INSERT INTO import_tokens (token_id, token_hash, key_id, wrapping_algorithm, wrapping_key_spec, protection_level,
                               wrapped_private_key, root_key_id, creation_time, expire_time, used_at)
    VALUES (${token.tokenId}, ${token.tokenHash}, ${token.keyId}, ${token.wrappingAlgorithm}, ${token.wrappingKeySpec},
            ${token.protectionLevel}, ${token.wrappedPrivateKey}, ${token.rootKeyId}, ${token.creationTime},
            ${token.expireTime}, ${token.usedAt})`;
}

/** The token with this hash, not locked (undefined if none). */
export async function getImportToken(sql: Sql | TransactionSql, tokenHash: Buffer): Promise<ImportTokenRecord | undefined> {
  const rows = await sql<ImportTokenRecord[]>`SELECT * FROM import_tokens WHERE token_hash = ${tokenHash}`;
  return rows[0];
}

/** The token with this hash, locked until the transaction ends (two imports with one token serialise). */
export async function lockImportToken(tx: TransactionSql, tokenHash: Buffer): Promise<ImportTokenRecord | undefined> {
  const rows = await tx<ImportTokenRecord[]>`SELECT * FROM import_tokens WHERE token_hash = ${tokenHash} FOR UPDATE`;
  return rows[0];
}

/** A token is good for one import; its wrapping key is useless afterwards and goes. */
export async function markImportTokenUsed(tx: TransactionSql, tokenId: string, now: Date): Promise<void> {
  await tx`UPDATE import_tokens SET used_at = ${now}, wrapped_private_key = NULL WHERE token_id = ${tokenId}`;
}

/** Tokens that expired before `before` (kept a while so callers get "expired" rather than "invalid"). */
export async function deleteExpiredImportTokens(tx: TransactionSql, before: Date): Promise<number> {
  const rows = await tx`DELETE FROM import_tokens WHERE expire_time < ${before} RETURNING token_id`;
  return rows.length;
}

export async function getImportedMaterial(tx: Sql | TransactionSql, keyId: string): Promise<ImportedMaterialRecord | undefined> {
  const rows = await tx<ImportedMaterialRecord[]>`SELECT * FROM imported_material WHERE key_id = ${keyId}`;
  return rows[0];
}

/** Remembers the first import of a key's material. */
export async function recordImportedMaterial(tx: TransactionSql, record: ImportedMaterialRecord): Promise<void> {
  await tx`
    INSERT INTO imported_material (key_id, key_version_id, version_creation_time, fingerprint)
    VALUES (${record.keyId}, ${record.keyVersionId}, ${record.versionCreationTime}, ${record.fingerprint})`;
}

/**
 * Deletes the wrapped material of an imported key's version (the row goes; imported_material keeps its id
 * and fingerprint) and tells every replica's worker to forget it (the "destroyed" key event does that).
 * The caller then sets the key's primary version to null.
 */
export async function deleteImportedVersion(tx: TransactionSql, keyId: string, keyVersionId: string): Promise<void> {
  await tx`DELETE FROM key_versions WHERE key_version_id = ${keyVersionId} AND key_id = ${keyId}`;
  await tx`SELECT pg_notify(${KEY_EVENTS_CHANNEL}, ${`destroyed:${keyId}:${keyVersionId}`})`;
}

/** Imported keys whose material has expired, locked; rows another replica holds are skipped. */
export async function lockDueForMaterialExpiry(tx: TransactionSql, now: Date, limit: number): Promise<KeyRecord[]> {
  return tx<KeyRecord[]>`
    SELECT k.*, '{}'::jsonb AS tags FROM keys k
    WHERE k.material_expire_time <= ${now} AND k.primary_key_version_id IS NOT NULL
    ORDER BY k.material_expire_time
    LIMIT ${limit}
    FOR UPDATE SKIP LOCKED`;
}
