// BatchEncrypt, BatchDecrypt, BatchGenerateDataKey: up to 1000 items a call. Each item runs exactly as
// its single call would (validation, key policy for kms:Encrypt / kms:Decrypt / kms:GenerateDataKey,
// key state) and gets its own status and its own audit row; the items' worker operations travel
// together in one worker Batch.
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError, invalidArgument, outcomeOf, unavailable } from "@kms/errors";
import { isUuid } from "@kms/key-rules";
import type { kms } from "@kms/proto";
import type { CallContext, Services } from "../context";
import type { Handler } from "../pipeline/operation";
import { checkGrantTokens } from "../grant-tokens";
import { asKmsError, auditEventOf } from "../pipeline/outcome";
import { decrypt } from "./decrypt";
import { encrypt } from "./encrypt";
import { generateDataKey } from "./generate-data-key";

export const MAX_BATCH_ITEMS = 1000;


interface ItemOutcome<O> {
  status: { code: number; message: string; errorCode: string };
  response?: O;
}

async function runItems<I extends DescMessage, O extends DescMessage>(
  items: MessageShape<I>[],
  ctx: CallContext,
  s: Services,
  single: Handler<I, O>,
  operation: string,
): Promise<ItemOutcome<MessageInitShape<O>>[]> {
  if (items.length < 1 || items.length > MAX_BATCH_ITEMS) {
    throw invalidArgument("items", `must hold 1 to ${MAX_BATCH_ITEMS} items, got ${items.length}`);
  }
  const outcomes = await Promise.all(
    items.map(async (item, i): Promise<{ outcome: ItemOutcome<MessageInitShape<O>>; audit: Promise<void> }> => {
      const keyId = (item as { keyId?: string }).keyId;
      const itemCtx: CallContext = {
        ...ctx,
        requestId: `${ctx.requestId}/${i}`,
        operation,
        encryptionContext: { ...(item as { encryptionContext?: Record<string, string> }).encryptionContext },
        // An item's own dry_run (its outcome is then DryRunOperation) and grant_tokens, as its single call's.
        dryRun: (item as { dryRun?: boolean }).dryRun ?? false,
        grantTokens: checkGrantTokens((item as { grantTokens?: string[] }).grantTokens ?? [], `items[${i}].grant_tokens`),
        audit: { operation: `Batch${operation}`, keyId: keyId && isUuid(keyId) ? keyId.toLowerCase() : "", keyVersionId: "" },
      };
      let outcome: ItemOutcome<MessageInitShape<O>>;
      let failure: KmsError | undefined;
      try {
        outcome = { status: { code: status.OK, message: "", errorCode: "" }, response: await single(item, itemCtx, s) };
      } catch (err) {
        failure = asKmsError(err, s.log, { requestId: itemCtx.requestId, operation });
        if (failure.code === ErrorCode.InvalidParameter) failure = new KmsError(failure.code, `items[${i}].${failure.message}`);
        outcome = { status: outcomeOf(failure) };
      }
      const audit = s.audit.append(auditEventOf(itemCtx, s.clock(), failure));
      return { outcome, audit };
    }),
  );
  // Every item's row is durable before any answer leaves (they go in the same group commits).
  const audits = await Promise.allSettled(outcomes.map((o) => o.audit));
  if (audits.some((a) => a.status === "rejected")) throw unavailable("audit log");
  return outcomes.map((o) => o.outcome);
}

export const batchEncrypt: Handler<typeof kms.BatchEncryptRequestSchema, typeof kms.BatchEncryptResponseSchema> = async (req, ctx, s) => ({
  results: await runItems(req.items, ctx, s, encrypt, "Encrypt"),
});

export const batchDecrypt: Handler<typeof kms.BatchDecryptRequestSchema, typeof kms.BatchDecryptResponseSchema> = async (req, ctx, s) => ({
  results: await runItems(req.items, ctx, s, decrypt, "Decrypt"),
});

export const batchGenerateDataKey: Handler<typeof kms.BatchGenerateDataKeyRequestSchema, typeof kms.BatchGenerateDataKeyResponseSchema> = async (
  req,
  ctx,
  s,
) => ({
  results: await runItems(req.items, ctx, s, generateDataKey, "GenerateDataKey"),
});
