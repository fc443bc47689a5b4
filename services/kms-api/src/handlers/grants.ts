// CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant (docs/grants.md). A grant's
// changes run under its key's row lock with their audit row, as any key change; a dry run stops under the
// lock, after every check, and the transaction rolls back.
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { validateEncryptionContext } from "@kms/ciphertext";
import { ErrorCode, KmsError, invalidArgument } from "@kms/errors";
import type { GrantCursor, GrantRecord, KeyRecord } from "@kms/db";
import { CONTEXT_OPERATIONS, GRANT_OPERATIONS } from "@kms/key-policy";
import { isUuid, pageSize, parseKeyReference } from "@kms/key-rules";
import { kmsResources } from "@kms/proto";
import type { kms } from "@kms/proto";
import { auditedTransaction } from "../audited-change";
import { isAdmin } from "../auth/visibility";
import type { CallContext, Services } from "../context";
import { changeLockedKey } from "../key-changes";
import { dryRunStop } from "../pipeline/dry-run";
import type { Handler } from "../pipeline/operation";

/** Lower than AWS's 50,000: a grantee's grants of a key are read (and cached) whole on each miss. */
export const MAX_GRANTS_PER_KEY = 10_000;
export const MAX_PRINCIPAL_CHARS = 256;
export const MAX_CONSTRAINT_PAIRS = 8;
const GRANT_NAME = /^[a-zA-Z0-9:/_-]{1,256}$/;

type Terms = Pick<GrantRecord, "name" | "granteePrincipal" | "retiringPrincipal" | "operations" | "contextEquals" | "contextSubset">;

function checkPrincipal(value: string, field: string, required: boolean): string {
  if (value === "") {
    if (required) throw invalidArgument(field, "is required");
    return value;
  }
  if (value.length > MAX_PRINCIPAL_CHARS) throw invalidArgument(field, `must be at most ${MAX_PRINCIPAL_CHARS} characters`);
  // eslint-disable-next-line no-control-regex
  if (!value.isWellFormed() || /[\u0000-\u001f\u007f]/.test(value)) throw invalidArgument(field, "must be printable UTF-8");
  return value;
}

function checkConstraint(map: Record<string, string>, field: string): Record<string, string> {
  if (Object.keys(map).length > MAX_CONSTRAINT_PAIRS) throw invalidArgument(field, `at most ${MAX_CONSTRAINT_PAIRS} pairs`);
  validateEncryptionContext(map, field);
  return Object.fromEntries(Object.entries(map).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** CreateGrant's fields checked and put in one order (INVALID_ARGUMENT naming the field). */
function grantTerms(req: kms.CreateGrantRequest): Terms {
  const granteePrincipal = checkPrincipal(req.granteePrincipal, "grantee_principal", true);
  const retiringPrincipal = checkPrincipal(req.retiringPrincipal, "retiring_principal", false);
  if (req.operations.length === 0) throw invalidArgument("operations", "at least one is required");
  if (req.operations.length > GRANT_OPERATIONS.length) throw invalidArgument("operations", `at most ${GRANT_OPERATIONS.length}`);
  req.operations.forEach((op, i) => {
    if (!GRANT_OPERATIONS.includes(op)) throw invalidArgument(`operations[${i}]`, `${JSON.stringify(op.slice(0, 64))} is not one of ${GRANT_OPERATIONS.join(", ")}`);
  });
  const operations = GRANT_OPERATIONS.filter((op) => req.operations.includes(op));
  const contextEquals = checkConstraint(req.constraints?.encryptionContextEquals ?? {}, "constraints.encryption_context_equals");
  const contextSubset = checkConstraint(req.constraints?.encryptionContextSubset ?? {}, "constraints.encryption_context_subset");
  const constrained = Object.keys(contextEquals).length > 0 || Object.keys(contextSubset).length > 0;
  if (Object.keys(contextEquals).length > 0 && Object.keys(contextSubset).length > 0) {
    throw invalidArgument("constraints", "give encryption_context_equals or encryption_context_subset, not both");
  }
  const without = operations.find((op) => !CONTEXT_OPERATIONS.includes(op));
  if (constrained && without) throw invalidArgument("constraints", `${without} takes no encryption context: a constrained grant may name only ${CONTEXT_OPERATIONS.join(", ")}`);
  if (req.name !== "" && !GRANT_NAME.test(req.name)) throw invalidArgument("name", "must be 1 to 256 of [a-zA-Z0-9:/_-]");
  return { name: req.name, granteePrincipal, retiringPrincipal, operations, contextEquals, contextSubset };
}

const sameMap = (a: Record<string, string>, b: Record<string, string>) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

function sameTerms(g: GrantRecord, t: Terms): boolean {
  return (
    g.granteePrincipal === t.granteePrincipal &&
    g.retiringPrincipal === t.retiringPrincipal &&
    JSON.stringify([...g.operations].sort()) === JSON.stringify([...t.operations].sort()) &&
    sameMap(g.contextEquals, t.contextEquals) &&
    sameMap(g.contextSubset, t.contextSubset)
  );
}

export function toGrant(g: GrantRecord): MessageInitShape<typeof kms.GrantSchema> {
  return {
    grantId: g.grantId,
    keyId: g.keyId,
    name: g.name,
    granteePrincipal: g.granteePrincipal,
    retiringPrincipal: g.retiringPrincipal,
    operations: g.operations,
    constraints: { encryptionContextEquals: g.contextEquals, encryptionContextSubset: g.contextSubset },
    issuingPrincipal: g.issuingPrincipal,
    creationTime: timestampFromDate(g.creationTime),
  };
}

export const createGrant: Handler<typeof kms.CreateGrantRequestSchema, typeof kms.CreateGrantResponseSchema> = async (req, ctx, s) => {
  const terms = grantTerms(req);
  const grant = await changeLockedKey(s, ctx, req.keyId, async (key) => {
    if (key.record.keyState === kmsResources.KeyState.PENDING_DELETION) {
      throw new KmsError(ErrorCode.PendingDeletion, `key ${key.record.keyId} is pending deletion`);
    }
    const existing = terms.name ? await key.grantByName(terms.name) : undefined;
    if (existing && !sameTerms(existing, terms)) {
      throw new KmsError(ErrorCode.GrantExists, `key ${key.record.keyId} has a grant named ${JSON.stringify(terms.name)} with other terms`);
    }
    if (!existing && (await key.countGrants()) >= MAX_GRANTS_PER_KEY) {
      throw new KmsError(ErrorCode.TooManyGrants, `key ${key.record.keyId} has ${MAX_GRANTS_PER_KEY} grants, the most a key may have`);
    }
    dryRunStop(ctx);
    // The same name and terms again: the same grant (and token), as AWS's idempotent CreateGrant.
    const record = existing ?? { ...terms, grantId: randomUUID(), keyId: key.record.keyId, issuingPrincipal: ctx.principal, creationTime: s.clock() };
    ctx.audit.grantId = record.grantId;
    if (!existing) await key.addGrant(record);
    return record;
  });
  return { grantId: grant.grantId, grantToken: s.grantTokens.issue(grant.grantId) };
};

export const revokeGrant: Handler<typeof kms.RevokeGrantRequestSchema, typeof kms.RevokeGrantResponseSchema> = async (req, ctx, s) => {
  if (!isUuid(req.grantId)) throw invalidArgument("grant_id", "must be a grant UUID");
  const grantId = req.grantId.toLowerCase();
  const removed = await changeLockedKey(s, ctx, req.keyId, async (key) => {
    if (!(await key.grantOf(grantId))) return false;
    ctx.audit.grantId = grantId;
    dryRunStop(ctx);
    return key.deleteGrant(grantId);
  });
  if (!removed) throw new KmsError(ErrorCode.GrantNotFound, `grant ${grantId} of key ${ctx.audit.keyId} not found`);
  return {};
};

/** The retiring principal, the grantee when the grant includes RetireGrant, KMS_ADMINS, and the key policy's kms:RetireGrant. */
function mayRetire(s: Services, ctx: CallContext, key: KeyRecord, grant: GrantRecord): boolean {
  if (grant.retiringPrincipal !== "" && grant.retiringPrincipal === ctx.principal) return true;
  if (grant.granteePrincipal === ctx.principal && grant.operations.includes("RetireGrant")) return true;
  return isAdmin(s, ctx) || s.authorizer.decide(ctx, key, "kms:RetireGrant", {}) === "Allow";
}

/** The grant a RetireGrant names, by token or by key and id; undefined when there is none to retire. */
async function grantToRetire(req: kms.RetireGrantRequest, ctx: CallContext, s: Services): Promise<GrantRecord | undefined> {
  if (req.grantToken !== "") {
    if (req.keyId !== "" || req.grantId !== "") throw invalidArgument("grant_token", "give grant_token, or key_id and grant_id, not both");
    return s.lookup.grantOfToken(req.grantToken);
  }
  const ref = parseKeyReference(req.keyId);
  if (!isUuid(req.grantId)) throw invalidArgument("grant_id", "must be a grant UUID (or give grant_token)");
  const keyId = ref.kind === "id" ? ref.keyId : await s.keys.aliasTarget(ref.aliasName);
  if (keyId) ctx.audit.keyId ||= keyId;
  const grant = keyId ? await s.grants.get(req.grantId.toLowerCase()) : undefined;
  return grant?.keyId === keyId ? grant : undefined;
}

export const retireGrant: Handler<typeof kms.RetireGrantRequestSchema, typeof kms.RetireGrantResponseSchema> = async (req, ctx, s) => {
  // One answer for a forged token, a grant that is gone or of another key, and a caller who may not retire it.
  const denied = () => new KmsError(ErrorCode.PermissionDenied, `kms:RetireGrant of this grant is not allowed for ${ctx.principal}`);
  const grant = await grantToRetire(req, ctx, s);
  if (grant) ctx.audit.keyId = grant.keyId; // for the audit row only: the caller is told nothing of it
  const key = grant ? await s.keys.getKey(grant.keyId) : undefined;
  if (!grant || !key || !mayRetire(s, ctx, key, grant)) throw denied();
  ctx.audit.grantId = grant.grantId;
  const retired = await auditedTransaction(s, ctx, (work) =>
    work.withLockedKey(grant.keyId, async (locked) => {
      if (!(await locked.grantOf(grant.grantId))) return false;
      dryRunStop(ctx);
      return locked.deleteGrant(grant.grantId);
    }),
  );
  if (!retired) throw denied();
  s.keys.invalidateKey(grant.keyId);
  return { grantId: grant.grantId, keyId: grant.keyId };
};

function cursorOf(s: Services, scope: string, token: string): GrantCursor | undefined {
  const cursor = s.pageTokens.decode(scope, token);
  if (!cursor) return undefined;
  const [time, grantId] = cursor;
  const creationTime = new Date(time ?? "");
  if (grantId === undefined || Number.isNaN(creationTime.getTime())) throw invalidArgument("page_token", "is malformed");
  return { creationTime, grantId };
}

function page(s: Services, scope: string, rows: GrantRecord[], limit: number) {
  const shown = rows.slice(0, limit);
  const last = shown[shown.length - 1];
  return {
    grants: shown.map(toGrant),
    nextPageToken: rows.length > limit && last ? s.pageTokens.encode(scope, [last.creationTime.toISOString(), last.grantId]) : "",
  };
}

/** Needs kms:ListGrants on the key. */
export const listGrants: Handler<typeof kms.ListGrantsRequestSchema, typeof kms.ListGrantsResponseSchema> = async (req, ctx, s) => {
  const limit = pageSize(req.pageSize);
  if (req.grantId !== "" && !isUuid(req.grantId)) throw invalidArgument("grant_id", "must be a grant UUID");
  checkPrincipal(req.granteePrincipal, "grantee_principal", false);
  const key = await s.lookup.find(ctx, req.keyId);
  const filter = {
    ...(req.grantId ? { grantId: req.grantId.toLowerCase() } : {}),
    ...(req.granteePrincipal ? { granteePrincipal: req.granteePrincipal } : {}),
  };
  const scope = `ListGrants:${key.keyId}:${JSON.stringify(filter)}`;
  const rows = await s.grants.list(key.keyId, limit + 1, cursorOf(s, scope, req.pageToken), filter);
  return page(s, scope, rows, limit);
};

/** The caller's own retirable grants; another principal's for KMS_ADMINS only. */
export const listRetirableGrants: Handler<typeof kms.ListRetirableGrantsRequestSchema, typeof kms.ListRetirableGrantsResponseSchema> = async (req, ctx, s) => {
  const limit = pageSize(req.pageSize);
  const retiring = checkPrincipal(req.retiringPrincipal, "retiring_principal", false) || ctx.principal;
  if (retiring !== ctx.principal && !isAdmin(s, ctx)) {
    throw new KmsError(ErrorCode.PermissionDenied, `ListRetirableGrants of another principal is not allowed for ${ctx.principal} (KMS_ADMINS)`);
  }
  const scope = `ListRetirableGrants:${retiring}`;
  const rows = await s.grants.listRetirable(retiring, limit + 1, cursorOf(s, scope, req.pageToken));
  return page(s, scope, rows, limit);
};
