// Aliases: stable names that point at a key and can be moved to another.
import type { Sql, TransactionSql } from "./connect";
import { boundedRead } from "./deadline";
import { KEY_EVENTS_CHANNEL } from "./key-events-channel";

export interface AliasRecord {
  aliasName: string;
  keyId: string;
  creationTime: Date;
  updateTime: Date;
}

export class AliasStore {
  constructor(private readonly sql: Sql) {}

  async get(aliasName: string): Promise<AliasRecord | undefined> {
    const rows = await boundedRead(this.sql, (sql) => sql<AliasRecord[]>`SELECT * FROM aliases WHERE alias_name = ${aliasName}`);
    return rows[0];
  }

  /** The alias, locked until the transaction ends: its target cannot move before an update or delete commits. */
  async lock(tx: TransactionSql, aliasName: string): Promise<AliasRecord | undefined> {
    const rows = await tx<AliasRecord[]>`SELECT * FROM aliases WHERE alias_name = ${aliasName} FOR UPDATE`;
    return rows[0];
  }

  /** Inserts the alias; returns undefined when the name is taken. */
  async create(tx: TransactionSql, alias: AliasRecord): Promise<AliasRecord | undefined> {
    const rows = await tx<AliasRecord[]>`
      INSERT INTO aliases (alias_name, key_id, creation_time, update_time)
      VALUES (${alias.aliasName}, ${alias.keyId}, ${alias.creationTime}, ${alias.updateTime})
      ON CONFLICT (alias_name) DO NOTHING
      RETURNING *`;
    return rows[0];
  }

  /** Points the alias at another key; returns undefined when there is no such alias. */
  async update(tx: TransactionSql, aliasName: string, keyId: string, now: Date): Promise<AliasRecord | undefined> {
    const rows = await tx<AliasRecord[]>`
      UPDATE aliases SET key_id = ${keyId}, update_time = ${now} WHERE alias_name = ${aliasName} RETURNING *`;
    if (rows[0]) await notifyAlias(tx, aliasName);
    return rows[0];
  }

  async delete(tx: TransactionSql, aliasName: string): Promise<boolean> {
    const rows = await tx`DELETE FROM aliases WHERE alias_name = ${aliasName} RETURNING alias_name`;
    if (rows.length > 0) await notifyAlias(tx, aliasName);
    return rows.length > 0;
  }

  /** Aliases in name order after `after`, optionally of one key. */
  async list(limit: number, after: string | undefined, keyId?: string): Promise<AliasRecord[]> {
    return boundedRead(this.sql, (sql) => sql<AliasRecord[]>`
      SELECT * FROM aliases
      WHERE true
        ${keyId !== undefined ? sql`AND key_id = ${keyId}` : sql``}
        ${after !== undefined ? sql`AND alias_name > ${after}` : sql``}
      ORDER BY alias_name
      LIMIT ${limit}`);
  }
}

async function notifyAlias(tx: TransactionSql, aliasName: string): Promise<void> {
  await tx`SELECT pg_notify(${KEY_EVENTS_CHANNEL}, ${`alias:${aliasName}`})`;
}
