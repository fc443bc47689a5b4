// ListAuditEvents, VerifyAuditLog and ListAuditCheckpoints: for KMS_AUDITORS and KMS_ADMINS.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { SignedCheckpoint } from "@kms/audit-chain";
import { invalidArgument } from "@kms/errors";
import { isUuid, pageSize } from "@kms/key-rules";
import type { kms, kmsResources } from "@kms/proto";
import type { Services } from "../context";
import type { Handler } from "../pipeline/operation";

export const listAuditEvents: Handler<typeof kms.ListAuditEventsRequestSchema, typeof kms.ListAuditEventsResponseSchema> = async (req, ctx, s) => {
  s.authorizer.auditor(ctx);
  const limit = pageSize(req.pageSize);
  if (req.keyId !== "" && !isUuid(req.keyId)) throw invalidArgument("key_id", "must be a key UUID");
  const filter = {
    ...(req.keyId ? { keyId: req.keyId.toLowerCase() } : {}),
    ...(req.principal ? { principal: req.principal } : {}),
    ...(req.operation ? { operation: req.operation } : {}),
    ...(req.startTime ? { startTime: timestampDate(req.startTime) } : {}),
    ...(req.endTime ? { endTime: timestampDate(req.endTime) } : {}),
  };
  const scope = `ListAuditEvents:${JSON.stringify(filter)}`;
  const cursor = s.pageTokens.decode(scope, req.pageToken);
  const after = cursor ? Number(cursor[0]) : 0;
  const rows = await s.auditReader.list(filter, after, limit + 1);
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    events: page.map((e) => ({
      sequence: BigInt(e.sequence),
      time: timestampFromDate(e.time),
      requestId: e.requestId,
      principal: e.principal,
      operation: e.operation,
      keyId: e.keyId,
      keyVersionId: e.keyVersionId,
      resultCode: e.resultCode,
      errorCode: e.errorCode,
      hash: e.hash.toString("hex"),
      grantId: e.grantId ?? "",
      dryRun: e.dryRun ?? false,
    })),
    nextPageToken: rows.length > limit && last ? s.pageTokens.encode(scope, [String(last.sequence)]) : "",
  };
};

export const verifyAuditLog: Handler<typeof kms.VerifyAuditLogRequestSchema, typeof kms.VerifyAuditLogResponseSchema> = async (req, ctx, s) => {
  s.authorizer.auditor(ctx);
  if (req.startSequence < 0n) throw invalidArgument("start_sequence", "must not be negative");
  if (req.endSequence < 0n) throw invalidArgument("end_sequence", "must not be negative");
  if (req.endSequence > 0n && req.endSequence < req.startSequence) throw invalidArgument("end_sequence", "must not be before start_sequence");
  const checkpoint = req.checkpoint ? await checkedCheckpoint(req.checkpoint, req.startSequence, req.endSequence, ctx.deadline, s) : undefined;
  // Rows written before this call are durable, but a batch may be in flight: let it land first.
  await s.audit.drain();
  const result = await s.auditReader.verify(Number(req.startSequence), Number(req.endSequence), undefined, checkpoint);
  if (!result.ok) s.log.warn("audit chain broken", { firstBadSequence: result.firstBadSequence, problem: result.problem });
  return {
    verifiedCount: BigInt(result.verifiedCount),
    ok: result.ok,
    firstBadSequence: BigInt(result.firstBadSequence),
    problem: result.problem,
    checkpointMatched: result.checkpointMatched ?? false,
  };
};

/** The request's checkpoint, well-formed, inside the range and signed by this deployment's checkpoint key. */
async function checkedCheckpoint(
  c: kmsResources.AuditCheckpoint,
  start: bigint,
  end: bigint,
  deadline: Date | undefined,
  s: Services,
): Promise<SignedCheckpoint> {
  if (c.sequence < 1n || c.sequence > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument("checkpoint.sequence", "must be a positive sequence");
  if (!/^[0-9a-f]{64}$/.test(c.headHash)) throw invalidArgument("checkpoint.head_hash", "must be 64 lowercase hex digits");
  if (!c.time) throw invalidArgument("checkpoint.time", "is required");
  if (c.signature.length === 0) throw invalidArgument("checkpoint.signature", "is required");
  if ((start > 0n && c.sequence < start) || (end > 0n && c.sequence > end)) {
    throw invalidArgument("checkpoint.sequence", `${c.sequence} is outside the range verified; verify a range that holds it`);
  }
  const signed: SignedCheckpoint = {
    sequence: Number(c.sequence),
    headHash: Buffer.from(c.headHash, "hex"),
    time: timestampDate(c.time),
    keyId: c.keyId,
    signature: Buffer.from(c.signature),
  };
  if (!(await s.checkpoints.verify(signed, deadline))) {
    throw invalidArgument("checkpoint.signature", "does not verify with this deployment's audit checkpoint key");
  }
  return signed;
}

export const listAuditCheckpoints: Handler<typeof kms.ListAuditCheckpointsRequestSchema, typeof kms.ListAuditCheckpointsResponseSchema> = async (
  req,
  ctx,
  s,
) => {
  s.authorizer.auditor(ctx);
  const limit = pageSize(req.pageSize);
  const scope = "ListAuditCheckpoints";
  const cursor = s.pageTokens.decode(scope, req.pageToken);
  const rows = await s.checkpoints.store.list(limit + 1, cursor ? Number(cursor[0]) : undefined);
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  const key = await s.checkpoints.publicKey(ctx.deadline);
  return {
    checkpoints: page.map((c) => ({
      sequence: BigInt(c.sequence),
      headHash: c.headHash.toString("hex"),
      time: timestampFromDate(c.time),
      keyId: c.keyId,
      signature: c.signature,
    })),
    nextPageToken: rows.length > limit && last ? s.pageTokens.encode(scope, [String(last.id)]) : "",
    publicKey: key.pem,
    keyId: key.keyId,
  };
};
