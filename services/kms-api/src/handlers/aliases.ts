// CreateAlias, UpdateAlias, DeleteAlias, ListAliases, ListAliasesByKeyId.
// Who may manage which names is KMS_ALIAS_PREFIXES (auth/visibility.ts), checked first; the keys an alias
// leaves and reaches need the call's permission in their policies too (as AWS KMS asks for both).
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError } from "@kms/errors";
import { pageSize, validateAliasName } from "@kms/key-rules";
import type { AliasRecord, LockedAlias, UnitOfWork } from "@kms/db";
import type { kms } from "@kms/proto";
import { auditedTransaction } from "../audited-change";
import { aliasDenied, authorizeAliasName, mayDescribe } from "../auth/visibility";
import type { CallContext, Services } from "../context";

import type { Handler } from "../pipeline/operation";

const toAlias = (a: AliasRecord) => ({
  aliasName: a.aliasName,
  keyId: a.keyId,
  creationTime: timestampFromDate(a.creationTime),
  updateTime: timestampFromDate(a.updateTime),
});

const aliasNotFound = (name: string) => new KmsError(ErrorCode.AliasNotFound, `alias ${JSON.stringify(name)} not found`);

/** The alias must name a key directly: an alias pointing at an alias would make resolution ambiguous. */
async function targetKey(s: Services, ctx: CallContext, keyId: string) {
  if (keyId.startsWith("alias/")) {
    throw new KmsError(ErrorCode.InvalidParameter, "key_id: must be a key UUID, not an alias");
  }
  return s.lookup.find(ctx, keyId);
}

/**
 * Locks the alias and checks the call's permission on the key it points at now, in the transaction that
 * then changes it: the target cannot move between the check and the change. A refusal names the alias
 * only, not the key behind it.
 */
async function lockCurrent(s: Services, ctx: CallContext, work: UnitOfWork, aliasName: string): Promise<LockedAlias | undefined> {
  const current = await work.lockAlias(aliasName);
  if (!current) return undefined;
  ctx.audit.keyId ||= current.record.keyId;
  const key = await current.target();
  if (key) {
    try {
      s.authorizer.key(ctx, key);
    } catch (err) {
      if (err instanceof KmsError && err.status === status.PERMISSION_DENIED) throw aliasDenied(ctx, aliasName);
      throw err;
    }
  }
  return current;
}

export const createAlias: Handler<typeof kms.CreateAliasRequestSchema, typeof kms.CreateAliasResponseSchema> = async (req, ctx, s) => {
  validateAliasName(req.aliasName);
  authorizeAliasName(s, ctx, req.aliasName);
  const key = await targetKey(s, ctx, req.keyId);
  const now = s.clock();
  const created = await auditedTransaction(s, ctx, (work) =>
    work.createAlias({ aliasName: req.aliasName, keyId: key.keyId, creationTime: now, updateTime: now }),
  );
  if (!created) throw new KmsError(ErrorCode.AliasExists, `alias ${JSON.stringify(req.aliasName)} already exists`);
  return { alias: toAlias(created) };
};

export const updateAlias: Handler<typeof kms.UpdateAliasRequestSchema, typeof kms.UpdateAliasResponseSchema> = async (req, ctx, s) => {
  validateAliasName(req.aliasName);
  authorizeAliasName(s, ctx, req.aliasName);
  const key = await targetKey(s, ctx, req.keyId);
  const updated = await auditedTransaction(s, ctx, async (work) => {
    // Moving an alias needs the permission on the key it leaves too.
    const current = await lockCurrent(s, ctx, work, req.aliasName);
    return current?.pointAt(key.keyId, s.clock());
  });
  if (!updated) throw aliasNotFound(req.aliasName);
  s.keys.invalidateAlias(req.aliasName);
  return { alias: toAlias(updated) };
};

export const deleteAlias: Handler<typeof kms.DeleteAliasRequestSchema, typeof kms.DeleteAliasResponseSchema> = async (req, ctx, s) => {
  validateAliasName(req.aliasName);
  authorizeAliasName(s, ctx, req.aliasName);
  const deleted = await auditedTransaction(s, ctx, async (work) => {
    const current = await lockCurrent(s, ctx, work, req.aliasName);
    return current ? current.delete() : false;
  });
  if (!deleted) throw aliasNotFound(req.aliasName);
  s.keys.invalidateAlias(req.aliasName);
  return {};
};

/** One scan of page_size aliases; only those whose key the caller may describe are shown. */
async function listPage(s: Services, ctx: CallContext, scope: string, requestedSize: number, token: string, keyId?: string) {
  const limit = pageSize(requestedSize);
  const cursor = s.pageTokens.decode(scope, token);
  const rows = await s.aliases.list(limit + 1, cursor?.[0], keyId);
  const page = rows.slice(0, limit);
  const keys = new Map((await s.store.getKeys([...new Set(page.map((a) => a.keyId))])).map((k) => [k.keyId, k]));
  const last = page[page.length - 1];
  return {
    aliases: page.filter((a) => {
      const key = keys.get(a.keyId);
      return key !== undefined && mayDescribe(s, ctx, key);
    }).map(toAlias),
    nextPageToken: rows.length > limit && last ? s.pageTokens.encode(scope, [last.aliasName]) : "",
  };
}

export const listAliases: Handler<typeof kms.ListAliasesRequestSchema, typeof kms.ListAliasesResponseSchema> = async (req, ctx, s) => {
  s.authorizer.creator(ctx);
  return listPage(s, ctx, "ListAliases", req.pageSize, req.pageToken);
};

export const listAliasesByKeyId: Handler<typeof kms.ListAliasesByKeyIdRequestSchema, typeof kms.ListAliasesByKeyIdResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  const key = await s.lookup.find(ctx, req.keyId);
  return listPage(s, ctx, `ListAliasesByKeyId:${key.keyId}`, req.pageSize, req.pageToken, key.keyId);
};
