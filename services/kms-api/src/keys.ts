// Finding keys for a request and showing them to the caller.
import { timestampFromDate, durationFromMs } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, InternalError, KmsError, invalidCiphertext, keyNotFound } from "@kms/errors";
import type { GrantRecord, GrantStore, KeyRecord, KeyStore, KeyVersionRecord } from "@kms/db";
import { grantAllows } from "@kms/key-policy";
import { checkEnabled, parseKeyReference } from "@kms/key-rules";
import type { kmsResources } from "@kms/proto";
import type { hsm } from "@kms/proto/internal";
import type { Authorizer } from "./auth/authorize";
import { aliasDenied, isAdmin, mayManageAlias } from "./auth/visibility";
import type { Deciders } from "./auth/visibility";
import type { CallContext } from "./call-context";
import type { GrantTokens } from "./grant-tokens";
import type { KeyCache } from "./key-cache";

/** Which permission a lookup checks: by default the call's own action and encryption context. */
export interface Access {
  action?: string;
  encryptionContext?: Readonly<Record<string, string>>;
}

/** The same words as the Authorizer's refusal of a key whose policy has no Allow for the caller. */
function keyDenied(ctx: CallContext, keyId: string, action = `kms:${ctx.operation}`): KmsError {
  return new KmsError(ErrorCode.PermissionDenied, `${action} on key ${keyId} is not allowed for ${ctx.principal}`);
}

/** Finds the keys and versions a request names, authorized before the caller learns anything about them. */
export class KeyLookup {
  private readonly deciders: Deciders;

  constructor(
    private readonly cache: KeyCache,
    private readonly store: KeyStore,
    authorizer: Authorizer,
    private readonly grants?: { store: GrantStore; tokens: GrantTokens },
  ) {
    this.deciders = { access: authorizer.access, authorizer };
  }

  /**
   * The key policy decides; where it has no Allow (an explicit Deny always wins), an active grant to the
   * caller for this operation whose constraints hold allows, and the audit row names it. Grants named by
   * the call's grant_tokens are read from Postgres (usable at once on every replica), the others from
   * the cache. A token that is forged, or of another key, grantee or operation, counts for nothing: the
   * caller gets the same PERMISSION_DENIED as with no token, as for a key that does not exist.
   */
  private async authorize(ctx: CallContext, key: KeyRecord, access: Access): Promise<void> {
    const action = access.action ?? `kms:${ctx.operation}`;
    const encryptionContext = access.encryptionContext ?? ctx.encryptionContext;
    const decision = this.authorizer.decide(ctx, key, action, encryptionContext);
    if (decision === "Allow") return;
    if (decision === "NoAllow") {
      const grant = await this.grantAllowing(ctx, key, action.slice("kms:".length), encryptionContext);
      if (grant) {
        const named = ctx.audit.grantId ? ctx.audit.grantId.split(",") : [];
        if (!named.includes(grant.grantId)) ctx.audit.grantId = [...named, grant.grantId].join(",");
        return;
      }
    }
    throw this.authorizer.refusal(decision, ctx, key, action);
  }

  private async grantAllowing(ctx: CallContext, key: KeyRecord, operation: string, encryptionContext: Readonly<Record<string, string>>): Promise<GrantRecord | undefined> {
    if (!this.grants) return undefined;
    const fits = (g: GrantRecord | undefined): g is GrantRecord =>
      g !== undefined && g.keyId === key.keyId && g.granteePrincipal === ctx.principal && grantAllows(g, operation, encryptionContext);
    for (const token of ctx.grantTokens ?? []) {
      const grant = await this.grantOfToken(token);
      if (fits(grant)) return grant;
    }
    return (await this.cache.grantsTo(key.keyId, ctx.principal)).find(fits);
  }

  /** The grant a token names, read from Postgres; undefined for a forged token or a grant that is gone. */
  async grantOfToken(token: string): Promise<GrantRecord | undefined> {
    const grantId = this.grants?.tokens.grantIdOf(token);
    return grantId ? this.grants!.store.get(grantId) : undefined;
  }

  private get authorizer(): Authorizer {
    return this.deciders.authorizer;
  }

  /**
   * NOT_FOUND for a key that does not exist; a destroyed key says so (its tombstone stays). With the
   * call's context, a caller who could not have used the key gets the answer the Authorizer gives for a
   * key it may not use instead: whether an id exists, or when a key was destroyed, is not its business.
   * Admins, the key's creator and whoever scheduled its deletion are told.
   */
  async gone(keyId: string, ctx?: CallContext, action?: string): Promise<KmsError> {
    const tombstone = await this.store.getTombstone(keyId);
    if (ctx && !isAdmin(this.deciders, ctx) && !(tombstone && [tombstone.creator, tombstone.deletionRequestedBy].includes(ctx.principal))) {
      return keyDenied(ctx, keyId, action);
    }
    return tombstone
      ? new KmsError(ErrorCode.KeyNotFound, `key ${keyId} was deleted on ${tombstone.destroyTime.toISOString()}`)
      : keyNotFound(keyId);
  }

  /**
   * Resolves a key_id field (UUID or alias) to its key, records the key id for the audit row, and
   * checks the key policy (PERMISSION_DENIED) before the caller learns anything about the key's state.
   * Through an alias, a caller who may not use the key (or who asks for an alias that does not exist and
   * is outside the names it manages) gets one PERMISSION_DENIED naming the alias only: neither the target
   * nor the alias's existence leaks.
   */
  async find(ctx: CallContext, value: string, field = "key_id", access: Access = {}): Promise<KeyRecord> {
    const ref = parseKeyReference(value, field);
    if (ref.kind === "id") {
      ctx.audit.keyId ||= ref.keyId;
      const key = await this.cache.getKey(ref.keyId);
      if (!key) throw await this.gone(ref.keyId, ctx, access.action);
      await this.authorize(ctx, key, access);
      return key;
    }
    const hidden = () => aliasDenied(ctx, ref.aliasName, access.action);
    const keyId = await this.cache.aliasTarget(ref.aliasName);
    if (!keyId) {
      if (!mayManageAlias(this.deciders, ctx, ref.aliasName)) throw hidden();
      throw new KmsError(ErrorCode.AliasNotFound, `alias ${JSON.stringify(ref.aliasName)} not found`);
    }
    ctx.audit.keyId ||= keyId;
    const key = await this.cache.getKey(keyId);
    if (!key) throw mayManageAlias(this.deciders, ctx, ref.aliasName) ? await this.gone(keyId) : hidden();
    try {
      await this.authorize(ctx, key, access);
    } catch (err) {
      if (err instanceof KmsError && err.status === status.PERMISSION_DENIED) throw hidden();
      throw err;
    }
    return key;
  }

  /**
   * The version a ciphertext blob names, and its key. An unknown version is just another invalid
   * ciphertext (same error); a version of a destroyed key is NOT_FOUND naming the key.
   */
  async ofBlob(ctx: CallContext, keyVersionId: string, access: Access = {}): Promise<{ key: KeyRecord; version: KeyVersionRecord }> {
    const version = await this.cache.getVersion(keyVersionId);
    const key = version ? await this.cache.getKey(version.keyId) : undefined;
    if (version && key) {
      ctx.audit.keyId ||= key.keyId;
      await this.authorize(ctx, key, access);
      return { key, version };
    }
    const tombstone = await this.store.tombstoneOfVersion(keyVersionId);
    if (tombstone) throw await this.gone(tombstone.keyId, ctx, access.action);
    // Imported material that was deleted (or expired): the key waits in PENDING_IMPORT; say so.
    const importedBy = await this.store.keyOfImportedVersion(keyVersionId);
    const owner = importedBy ? await this.cache.getKey(importedBy) : undefined;
    if (owner) {
      ctx.audit.keyId ||= owner.keyId;
      await this.authorize(ctx, owner, access);
      checkEnabled(owner);
    }
    throw invalidCiphertext();
  }

  /** The key's primary version, recorded for the audit row. */
  async primaryVersion(ctx: CallContext, key: KeyRecord): Promise<KeyVersionRecord> {
    const versionId = key.primaryKeyVersionId;
    const version = versionId ? await this.cache.getVersion(versionId) : undefined;
    if (!version) throw new InternalError(`key ${key.keyId} has no primary version`);
    ctx.audit.keyVersionId = version.keyVersionId;
    return version;
  }
}

/** What the worker needs to use a version: its wrapped material and how it is protected. */
export function wrappedKey(key: KeyRecord, version: KeyVersionRecord): MessageInitShape<typeof hsm.WrappedKeySchema> {
  return {
    keyVersionId: version.keyVersionId,
    keySpec: key.keySpec,
    protectionLevel: key.protectionLevel,
    wrappedMaterial: version.wrappedMaterial,
    rootKeyId: version.rootKeyId,
  };
}

const ts = (d: Date | null) => (d ? timestampFromDate(d) : undefined);

export function toKeyMetadata(key: KeyRecord): MessageInitShape<typeof kmsResources.KeyMetadataSchema> {
  return {
    keyId: key.keyId,
    description: key.description,
    keySpec: key.keySpec,
    keyUsage: key.keyUsage,
    protectionLevel: key.protectionLevel,
    origin: key.origin,
    keyState: key.keyState,
    creationTime: timestampFromDate(key.creationTime),
    creator: key.creator,
    primaryKeyVersionId: key.primaryKeyVersionId ?? "",
    automaticRotation: key.automaticRotation,
    rotationInterval: key.rotationIntervalSeconds === null ? undefined : durationFromMs(key.rotationIntervalSeconds * 1000),
    nextRotationTime: ts(key.nextRotationTime),
    lastRotationTime: ts(key.lastRotationTime),
    deleteTime: ts(key.deleteTime),
    deletionProtection: key.deletionProtection,
    deletionProtectionDescription: key.deletionProtectionDescription,
    materialExpireTime: ts(key.materialExpireTime),
    tags: key.tags,
  };
}
