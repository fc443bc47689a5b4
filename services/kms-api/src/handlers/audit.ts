// ListAuditEvents and VerifyAuditLog: for KMS_AUDITORS and KMS_ADMINS.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { invalidArgument } from "@kms/errors";
import { isUuid, pageSize } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import { authorizeAuditor } from "../auth/authorize";
import type { Handler } from "../rpc";

export const listAuditEvents: Handler<typeof kms.ListAuditEventsRequestSchema, typeof kms.ListAuditEventsResponseSchema> = async (req, ctx, s) => {
  authorizeAuditor(s, ctx);
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
    })),
    nextPageToken: rows.length > limit && last ? s.pageTokens.encode(scope, [String(last.sequence)]) : "",
  };
};

export const verifyAuditLog: Handler<typeof kms.VerifyAuditLogRequestSchema, typeof kms.VerifyAuditLogResponseSchema> = async (req, ctx, s) => {
  authorizeAuditor(s, ctx);
  if (req.startSequence < 0n) throw invalidArgument("start_sequence", "must not be negative");
  if (req.endSequence < 0n) throw invalidArgument("end_sequence", "must not be negative");
  if (req.endSequence > 0n && req.endSequence < req.startSequence) throw invalidArgument("end_sequence", "must not be before start_sequence");
  // Rows written before this call are durable, but a batch may be in flight: let it land first.
  await s.audit.drain();
  const result = await s.auditReader.verify(Number(req.startSequence), Number(req.endSequence));
  if (!result.ok) s.log.warn("audit chain broken", { firstBadSequence: result.firstBadSequence, problem: result.problem });
  return { verifiedCount: BigInt(result.verifiedCount), ok: result.ok, firstBadSequence: BigInt(result.firstBadSequence) };
};
