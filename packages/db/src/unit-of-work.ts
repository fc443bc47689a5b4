// Units of work: every multi-statement change to the database runs here, in one transaction, and what a
// change may do inside it is a typed method (lock this key, set its primary version if it is still the
// one expected, write the audit row), never SQL: packages/db is the only place with SQL.
//
// A transaction holds row locks, and once it writes its audit row the audit chain's lock, until it
// commits. So nothing slow or remote belongs inside: callers have the worker make key material (or
// unwrap an import) first, then commit here in a few statements. A change made from material generated
// before the lock re-checks the locked row (setPrimaryIf, a compare-and-set of the primary version):
// if the key moved meanwhile the material is simply not inserted. Nothing is left behind by that: the
// worker keeps generated keys as session objects only, and wrapped material without its row is unusable.
import type { AuditEvent, AuditWriter } from "./audit-writer";
import type { Sql, TransactionSql } from "./connect";
import { transaction } from "./deadline";
import { KeyStore } from "./key-store";
import type { KeyPatch, KeyRecord, KeyVersionRecord, NewKey } from "./key-store";
import { AliasStore } from "./alias-store";
import type { AliasRecord } from "./alias-store";
import { deleteExpiredImportTokens, insertImportToken, lockDueForMaterialExpiry } from "./import-store";
import type { ImportTokenRecord } from "./import-store";
import { LockedAlias, LockedKey } from "./locked-rows";
import { advanceRotation, rewrapKeyVersion } from "./root-rotations";

/** What a compare-and-set of the primary version expects of the locked row. */
export interface PrimaryExpectation {
  /** The primary the new material was generated to replace. */
  primaryKeyVersionId: string | null;
  /** Anything else that must still hold (e.g. the key is enabled, its rotation still due). */
  holds?: (key: KeyRecord) => boolean;
}

/** Opens units of work. One per process, shared by every call (it holds no state of its own). */
export class Transactions {
  private readonly keys: KeyStore;
  private readonly aliases: AliasStore;

  constructor(
    private readonly sql: Sql,
    private readonly audit: AuditWriter,
  ) {
    this.keys = new KeyStore(sql);
    this.aliases = new AliasStore(sql);
  }

  /** Runs `fn` in one transaction, each statement ending by the current call's deadline (deadline.ts). */
  run<T>(fn: (work: UnitOfWork) => Promise<T>): Promise<T> {
    return transaction(this.sql, (tx) => fn(new UnitOfWork(tx, this.keys, this.aliases, this.audit)));
  }
}

/** The statements one open transaction may run. Valid only inside Transactions.run's callback. */
export class UnitOfWork {
  constructor(
    private readonly tx: TransactionSql,
    private readonly keys: KeyStore,
    private readonly aliases: AliasStore,
    private readonly audit: AuditWriter,
  ) {}

  /**
   * Locks the key's row (concurrent changes to one key serialise) and runs `fn` on it; undefined when
   * there is no such key. The lock is held until the unit of work commits: `fn` does database work only.
   */
  async withLockedKey<T>(keyId: string, fn: (key: LockedKey) => Promise<T> | T): Promise<T | undefined> {
    const key = await this.keys.lockKey(this.tx, keyId);
    return key ? fn(new LockedKey(this.tx, this.keys, key)) : undefined;
  }

  /**
   * Compare-and-set of the primary version: under the key's row lock, makes `version` the primary (with
   * `patch` of the locked row) only if the row still has the expected primary and `holds`. Returns the
   * updated key, or undefined when the key moved on or is gone: then nothing is inserted.
   */
  async setPrimaryIf(
    keyId: string,
    expected: PrimaryExpectation,
    version: KeyVersionRecord,
    patch: (key: KeyRecord) => KeyPatch = () => ({}),
  ): Promise<KeyRecord | undefined> {
    return this.withLockedKey(keyId, (key) => {
      const still = key.record.primaryKeyVersionId === expected.primaryKeyVersionId && (expected.holds?.(key.record) ?? true);
      return still ? key.addPrimaryVersion(version, patch(key.record)) : undefined;
    });
  }

  /** Inserts a key, its first version (the primary) and its tags. */
  insertKey(key: NewKey, version: KeyVersionRecord | undefined): Promise<void> {
    return this.keys.insertKey(this.tx, key, version);
  }

  insertImportToken(token: ImportTokenRecord): Promise<void> {
    return insertImportToken(this.tx, token);
  }

  /** Tokens that expired before `before`; returns how many went. */
  deleteExpiredImportTokens(before: Date): Promise<number> {
    return deleteExpiredImportTokens(this.tx, before);
  }

  /** Inserts the alias; undefined when the name is taken. */
  createAlias(alias: AliasRecord): Promise<AliasRecord | undefined> {
    return this.aliases.create(this.tx, alias);
  }

  /** The alias, locked: its target cannot move before this unit of work commits. */
  async lockAlias(aliasName: string): Promise<LockedAlias | undefined> {
    const alias = await this.aliases.lock(this.tx, aliasName);
    return alias ? new LockedAlias(this.tx, this.keys, this.aliases, alias) : undefined;
  }

  /** Keys pending deletion whose window has ended, locked; rows another replica holds are skipped. */
  async lockDueForDeletion(now: Date, limit: number): Promise<LockedKey[]> {
    const due = await this.keys.lockDueForDeletion(this.tx, now, limit);
    return due.map((k) => new LockedKey(this.tx, this.keys, k));
  }

  /** Imported keys whose material has expired, locked; rows another replica holds are skipped. */
  async lockDueForMaterialExpiry(now: Date, limit: number): Promise<LockedKey[]> {
    const due = await lockDueForMaterialExpiry(this.tx, now, limit);
    return due.map((k) => new LockedKey(this.tx, this.keys, k));
  }

  /**
   * The change's audit row, so that the change and its row commit together or not at all. It takes
   * the audit chain's lock, which holds off every replica's audit writes until the commit: call it last.
   */
  /** Root rotation's compare-and-set of one version's material (root-rotations.ts): the key id, or undefined. */
  rewrapKeyVersion(v: Parameters<typeof rewrapKeyVersion>[1], rotationId: string): Promise<string | undefined> {
    return rewrapKeyVersion(this.tx, v, rotationId);
  }

  /** Root rotation's progress, committed with the batch's re-wraps (root-rotations.ts). */
  advanceRotation(rotationId: string, from: string | null, to: string, retained: number, reason: string): Promise<boolean> {
    return advanceRotation(this.tx, rotationId, from, to, retained, reason);
  }

  appendAudit(event: AuditEvent): Promise<void> {
    return this.audit.appendInTransaction(this.tx, event);
  }
}
