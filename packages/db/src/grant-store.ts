// Grants (docs/grants.md): reads for authorization and the list RPCs; writes inside a unit of work under
// the key's row lock (unit-of-work.ts). Every write tells the replicas the key changed (key-events), so
// they drop what they cached of the key and its grants.
import type { Sql, TransactionSql } from "./connect";
import { boundedRead } from "./deadline";
import { KEY_EVENTS_CHANNEL } from "./key-events-channel";

export interface GrantRecord {
  grantId: string;
  keyId: string;
  /** "" when CreateGrant named none. */
  name: string;
  granteePrincipal: string;
  /** "" when none. */
  retiringPrincipal: string;
  /** Operation names ("Encrypt", "ReEncryptFrom", …). */
  operations: string[];
  /** At most one of the two is non-empty. */
  contextEquals: Record<string, string>;
  contextSubset: Record<string, string>;
  issuingPrincipal: string;
  creationTime: Date;
}

export interface GrantCursor {
  creationTime: Date;
  grantId: string;
}

export interface GrantFilter {
  grantId?: string;
  granteePrincipal?: string;
}

const after = (sql: Sql | TransactionSql, cursor: GrantCursor | undefined) =>
  cursor ? sql`AND (creation_time, grant_id) > (${cursor.creationTime}, ${cursor.grantId})` : sql``;

export class GrantStore {
  constructor(private readonly sql: Sql) {}

  /** The key's grants to `grantee`: what authorization needs for one caller. */
  async forGrantee(keyId: string, grantee: string): Promise<GrantRecord[]> {
    return boundedRead(this.sql, (sql) => sql<GrantRecord[]>`
      SELECT * FROM grants WHERE key_id = ${keyId} AND grantee_principal = ${grantee} ORDER BY creation_time, grant_id`);
  }

  /** One grant, read from Postgres (never a cache): a grant token must work at once on every replica. */
  async get(grantId: string): Promise<GrantRecord | undefined> {
    const rows = await boundedRead(this.sql, (sql) => sql<GrantRecord[]>`SELECT * FROM grants WHERE grant_id = ${grantId}`);
    return rows[0];
  }

  /** The key's grants in creation order after `cursor`. */
  async list(keyId: string, limit: number, cursor: GrantCursor | undefined, filter: GrantFilter = {}): Promise<GrantRecord[]> {
    return boundedRead(this.sql, (sql) => sql<GrantRecord[]>`
      SELECT * FROM grants
      WHERE key_id = ${keyId}
        ${filter.grantId ? sql`AND grant_id = ${filter.grantId}` : sql``}
        ${filter.granteePrincipal ? sql`AND grantee_principal = ${filter.granteePrincipal}` : sql``}
        ${after(sql, cursor)}
      ORDER BY creation_time, grant_id
      LIMIT ${limit}`);
  }

  /** Grants `retiring` may retire, in creation order after `cursor`. */
  async listRetirable(retiring: string, limit: number, cursor: GrantCursor | undefined): Promise<GrantRecord[]> {
    return boundedRead(this.sql, (sql) => sql<GrantRecord[]>`
      SELECT * FROM grants
      WHERE retiring_principal = ${retiring} ${after(sql, cursor)}
      ORDER BY creation_time, grant_id
      LIMIT ${limit}`);
  }
}

// Inside a unit of work, under the key's row lock (LockedKey, locked-rows.ts).

export async function grantByName(tx: TransactionSql, keyId: string, name: string): Promise<GrantRecord | undefined> {
  const rows = await tx<GrantRecord[]>`SELECT * FROM grants WHERE key_id = ${keyId} AND name = ${name}`;
  return rows[0];
}

export async function grantOfKey(tx: TransactionSql, keyId: string, grantId: string): Promise<GrantRecord | undefined> {
  const rows = await tx<GrantRecord[]>`SELECT * FROM grants WHERE key_id = ${keyId} AND grant_id = ${grantId}`;
  return rows[0];
}

export async function countGrants(tx: TransactionSql, keyId: string): Promise<number> {
  const [row] = await tx<{ n: number }[]>`SELECT count(*)::int AS n FROM grants WHERE key_id = ${keyId}`;
  return row?.n ?? 0;
}

export async function insertGrant(tx: TransactionSql, g: GrantRecord): Promise<void> {
  await tx`
    INSERT INTO grants (grant_id, key_id, name, grantee_principal, retiring_principal, operations, context_equals,
                        context_subset, issuing_principal, creation_time)
    VALUES (${g.grantId}, ${g.keyId}, ${g.name}, ${g.granteePrincipal}, ${g.retiringPrincipal}, ${g.operations}::text[],
            ${tx.json(g.contextEquals)}, ${tx.json(g.contextSubset)}, ${g.issuingPrincipal}, ${g.creationTime})`;
  await notifyChanged(tx, g.keyId);
}

/** Deletes the key's grant (retired or revoked); false when it has no such grant. */
export async function deleteGrant(tx: TransactionSql, keyId: string, grantId: string): Promise<boolean> {
  const rows = await tx`DELETE FROM grants WHERE grant_id = ${grantId} AND key_id = ${keyId} RETURNING grant_id`;
  if (rows.length > 0) await notifyChanged(tx, keyId);
  return rows.length > 0;
}

async function notifyChanged(tx: TransactionSql, keyId: string): Promise<void> {
  await tx`SELECT pg_notify(${KEY_EVENTS_CHANNEL}, ${`changed:${keyId}`})`;
}
