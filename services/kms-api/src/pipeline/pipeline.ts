// The operation pipeline every call goes through, whichever front it came in by, in this order:
//   identify   the peer's budget of failed authentications first (RESOURCE_EXHAUSTED before any token is
//              verified, peer-throttle.ts), then the caller (UNAUTHENTICATED before anything is parsed)
//   limit      the caller's rate-limit bucket (RESOURCE_EXHAUSTED, limits.ts); a batch's further items
//              take one token each once the request is decoded
//   decode     the front's request (malformed: INVALID_ARGUMENT naming the field); then the CRC32Cs
//              it came with (a mismatch: INVALID_ARGUMENT, Rejected.ChecksumMismatch, before any key use)
//   handle     the handler, which authorizes against the key policy, or else a grant, as it looks the key
//              up (keys.ts), its queries bounded by the call's deadline; a dry run stops before the
//              operation itself (dry-run.ts)
//   encode     the response's CRC32Cs are filled, the front serialises the reply; then the secrets the operation declared are zeroed
//   audit      the row is durable before the reply: if it cannot be written the caller gets UNAVAILABLE
//              instead of the answer (fail-closed). A key change wrote its row with the change
//              (audited-change.ts). UNAUTHENTICATED and Throttled are audited in aggregate
//              (refusals.ts), so a flood of them costs a few rows, not one each.
// A call ends with the encoded reply or a KmsError; the front turns the latter into its own status.
import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, InternalError, KmsError, unavailable } from "@kms/errors";
import { withDeadline } from "@kms/db";
import { checkRequestChecksums, fillResponseChecksums } from "@kms/integrity";
import { isUuid } from "@kms/key-rules";
import type { CallContext, Services } from "../context";
import { throttleHoldMs } from "../limits";
import type { Release } from "../limits";
import { describeError } from "@kms/telemetry";
import { checkGrantTokens } from "../grant-tokens";
import type { Operation } from "./operation";
import { asKmsError, auditEventOf, statusOf } from "./outcome";

export interface Caller {
  principal: string;
  /** The principal came from a trusted client certificate (kms:MutualTLS), not from a token. */
  mutualTls: boolean;
}

/** What a front hands the pipeline for one call. */
export interface IncomingCall<I extends DescMessage> {
  /** Who is calling, for the per-peer throttle and aggregated refusals (an address, or a certificate). */
  peer: string;
  /** Authenticates the caller (rejects with UNAUTHENTICATED). May have started before the call reached here. */
  identify: () => Promise<Caller>;
  /** The request in the operation's message type (throws INVALID_ARGUMENT naming the field). */
  decode: () => MessageShape<I>;
}

/** A fresh context for one call of `operation`; `auditOperation` is the name its audit row records. */
export function newCallContext(requestId: string, operation: string, deadline: Date | undefined, auditOperation = operation): CallContext {
  return {
    requestId,
    operation,
    principal: "",
    mutualTls: false,
    encryptionContext: {},
    deadline,
    audit: { operation: auditOperation, keyId: "", keyVersionId: "" },
  };
}

/**
 * Refusals a flood can cause at no cost to itself: audited in aggregate (refusals.ts). PERMISSION_DENIED
 * keeps a row per call: it names the key that was asked for, and the caller's rate limit bounds it.
 */
const AGGREGATED_REFUSALS: ReadonlySet<string> = new Set([ErrorCode.Unauthenticated, ErrorCode.Throttled]);

export class OperationPipeline {
  constructor(private readonly services: Services) {}

  async invoke<I extends DescMessage, O extends DescMessage>(
    op: Operation<I, O>,
    ctx: CallContext,
    call: IncomingCall<I>,
    encode: (response: MessageInitShape<O>) => Uint8Array,
  ): Promise<Uint8Array> {
    const s = this.services;
    s.calls.count++;
    try {
      return await this.run(op, ctx, call, encode);
    } finally {
      s.calls.count--;
    }
  }

  private async run<I extends DescMessage, O extends DescMessage>(
    op: Operation<I, O>,
    ctx: CallContext,
    call: IncomingCall<I>,
    encode: (response: MessageInitShape<O>) => Uint8Array,
  ): Promise<Uint8Array> {
    const s = this.services;
    let reply: Uint8Array | undefined;
    let failure: KmsError | undefined;
    let release: Release | undefined;
    let request: MessageShape<I> | undefined;
    try {
      const caller = await this.identify(call);
      ctx.principal = caller.principal;
      ctx.mutualTls = caller.mutualTls;
      // A flooding principal's call may wait here for its turn (limits.ts).
      const turn = s.rateLimiter?.admit(ctx.principal, ctx.deadline);
      release = turn instanceof Promise ? await turn : turn;
      request = call.decode();
      s.rateLimiter?.chargeBatch(ctx.principal, op.items?.(request) ?? 1);
      const keyId = op.keyId?.(request);
      if (keyId !== undefined && isUuid(keyId)) ctx.audit.keyId = keyId.toLowerCase();
      ctx.encryptionContext = { ...op.encryptionContext?.(request) };
      ctx.dryRun = op.dryRun?.(request) ?? false;
      ctx.grantTokens = checkGrantTokens(op.grantTokens?.(request) ?? []);
      if (op.checksums) checkRequestChecksums(op.checksums, request as Record<string, unknown>);
      const response = await withDeadline(ctx.deadline, () => op.handle(request!, ctx, s));
      // A dry run never answers with a result: its handler stops at dryRunStop().
      if (ctx.dryRun) throw new InternalError(`${op.name}: a dry run got past dryRunStop()`);
      if (op.checksums) fillResponseChecksums(op.checksums, request as Record<string, unknown>, response as Record<string, unknown>);
      reply = encode(response);
      for (const secret of op.responseSecrets?.(response) ?? []) secret?.fill(0); // the reply holds its own copy now
    } catch (err) {
      failure = asKmsError(err, s.log, { requestId: ctx.requestId, operation: ctx.operation });
    }
    release?.(); // the work is done; the audit row is batched with everyone's
    if (request !== undefined) for (const secret of op.requestSecrets?.(request) ?? []) secret?.fill(0);
    if (failure?.code === ErrorCode.Throttled && s.rateLimiter) {
      await new Promise((r) => setTimeout(r, throttleHoldMs(s.rateLimiter!.rejectDelayMs, ctx.deadline)));
    }
    // A change's row committed with the change (audited-change.ts). A failure after it still gets its own.
    if (failure === undefined && ctx.audit.written && reply !== undefined) return reply;
    try {
      await this.audit(ctx, call.peer, failure);
    } catch (err) {
      reply?.fill(0); // the answer may hold a data key or plaintext that will never be sent
      s.log.error("audit write failed; request refused", { requestId: ctx.requestId, ...describeError(err) });
      throw unavailable("audit log");
    }
    if (failure) throw failure;
    if (reply === undefined) throw new KmsError(ErrorCode.Internal, "internal error");
    return reply;
  }

  private identify<I extends DescMessage>(call: IncomingCall<I>): Promise<Caller> {
    const throttle = this.services.peerThrottle;
    return throttle ? throttle.authenticate(call.peer, call.identify) : call.identify();
  }

  private async audit(ctx: CallContext, peer: string, failure: KmsError | undefined): Promise<void> {
    const s = this.services;
    const { resultCode, errorCode } = statusOf(failure);
    if (s.refusals && AGGREGATED_REFUSALS.has(errorCode)) {
      await s.refusals.record({ time: s.clock(), requestId: ctx.requestId, principal: ctx.principal, peer, operation: ctx.audit.operation, resultCode, errorCode });
      return;
    }
    await s.audit.append(auditEventOf(ctx, s.clock(), failure));
  }
}
