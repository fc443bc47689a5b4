// The one wrapper every RPC goes through, in this order:
//   check the peer's budget of failed authentications (RESOURCE_EXHAUSTED before any token is verified,
//   see peer-throttle.ts)
//   → identify the caller (UNAUTHENTICATED before anything is parsed)
//   → take from the caller's rate-limit bucket (RESOURCE_EXHAUSTED, see limits.ts)
//   → parse the raw request (a malformed message is INVALID_ARGUMENT, not grpc-js's INTERNAL)
//   → a batch takes one more token per further item (limits.ts)
//   → run the handler (which checks the key policy) → write the audit row → reply.
// The audit row is durable before the reply: if it cannot be written the caller gets UNAVAILABLE
// instead of the answer (fail-closed). A key change writes its row in its own transaction instead
// (audited-change.ts), so the change does not happen without it. Refusals (UNAUTHENTICATED, Throttling)
// are audited in aggregate (refusals.ts), so that a flood of them costs a few rows, not one each.
// Anything thrown becomes a status through toStatus().
import { randomUUID } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { create, toBinary } from "@bufbuild/protobuf";
import { Metadata } from "@grpc/grpc-js";
import type { sendUnaryData, ServerUnaryCall, UntypedHandleCall } from "@grpc/grpc-js";
import { ERROR_CODE_KEY, ErrorCode, InternalError, KmsError, deadlineExceeded, invalidArgument, statusName, toStatus, unavailable } from "@kms/errors";
import { isDatabaseUnavailable, isQueryCancelled, withDeadline } from "@kms/db";
import { isUuid } from "@kms/key-rules";
import type { Authenticator } from "./auth/authenticate";
import { MAX_BATCH_ITEMS } from "./handlers/batch";
import { throttleHoldMs } from "./limits";
import { peerOf } from "./peer-throttle";
import type { Release } from "./limits";
import type { CallContext, Services } from "./context";
import { describeError } from "./log";
import { traceRpc } from "./rpc-telemetry";

export const REQUEST_ID_KEY = "kms-request-id";

export type Handler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: CallContext,
  services: Services,
) => Promise<MessageInitShape<O>>;


export function unaryHandler<I extends DescMessage, O extends DescMessage>(
  method: DescMethod & { input: I; output: O },
  handler: Handler<I, O>,
  services: Services,
  authenticator: Authenticator,
): UntypedHandleCall {
  return (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
    const deadline = call.getDeadline();
    const ctx: CallContext = {
      requestId: randomUUID(),
      operation: method.name,
      principal: "",
      mutualTls: false,
      encryptionContext: {},
      deadline: deadline instanceof Date ? deadline : Number.isFinite(deadline) ? new Date(deadline) : undefined,
      audit: { keyId: "", keyVersionId: "" },
    };
    const header = new Metadata();
    header.set(REQUEST_ID_KEY, ctx.requestId);
    call.sendMetadata(header);
    const certificate = call.getAuthContext().sslPeerCertificate;
    const peer = peerOf(call.getPeer(), certificate);
    const authenticate = () => authenticator.authenticate(call.metadata, certificate);
    const authenticated = (services.peerThrottle ? services.peerThrottle.authenticate(peer, authenticate) : authenticate()).then((caller) => {
      ctx.principal = caller.principal;
      ctx.mutualTls = caller.mutualTls;
    });
    // One span, request count and latency per call (rpc-telemetry.ts).
    void traceRpc(ctx, call.metadata, services, () => run(method, handler, services, call.request, ctx, authenticated, peer)).then(
      (reply) => callback(null, reply),
      (failure: ReturnType<typeof toStatus>) => callback(failure),
    );
  };
}

async function run<I extends DescMessage, O extends DescMessage>(
  method: DescMethod & { input: I; output: O },
  handler: Handler<I, O>,
  services: Services,
  bytes: Buffer,
  ctx: CallContext,
  authenticated: Promise<void>,
  peer: string,
): Promise<Buffer> {
  let reply: Buffer | undefined;
  let failure: unknown;
  let release: Release | undefined;
  try {
    await authenticated;
    // RESOURCE_EXHAUSTED before any work; a flooding principal's call may wait for its turn (limits.ts).
    const turn = services.rateLimiter?.admit(ctx.principal, ctx.deadline);
    release = turn instanceof Promise ? await turn : turn;
    const request = parse(method.input, bytes);
    services.rateLimiter?.chargeBatch(ctx.principal, batchItems(request));
    noteKeyId(request, ctx);
    ctx.encryptionContext = contextOf(request);
    // Its queries end by the call's deadline (packages/db/src/deadline.ts).
    const response = await withDeadline(ctx.deadline, () => handler(request, ctx, services));
    reply = Buffer.from(toBinary(method.output, create(method.output, response)));
    wipePlaintexts(response); // serialised: the copies the worker's answer left here are no longer needed
  } catch (err) {
    // A database that cannot be reached is the caller's UNAVAILABLE (retry is safe), not a bug.
    failure = !(err instanceof KmsError) && isDatabaseUnavailable(err) ? unavailable("database") : err;
    // A statement Postgres stopped at the deadline or the statement ceiling: nothing took effect, and
    // the same call would time out again (not UNAVAILABLE, which invites an immediate retry).
    if (isQueryCancelled(failure)) failure = deadlineExceeded("database");
  }
  release?.(); // the work is done; the audit row is batched with everyone's
  bytes.fill(0); // the request may have carried plaintext; the parsed message is done with
  if (failure instanceof KmsError && failure.code === ErrorCode.Throttled && services.rateLimiter) {
    await new Promise((r) => setTimeout(r, throttleHoldMs(services.rateLimiter!.rejectDelayMs, ctx.deadline)));
  }
  const outcome = failure === undefined ? undefined : toStatus(failure);
  if (failure !== undefined && !(failure instanceof KmsError)) {
    services.log.error("request failed", { requestId: ctx.requestId, operation: method.name, ...describeError(failure) });
  }
  // A change's row committed with the change (audited-change.ts). A failure after it still gets its own.
  if (outcome === undefined && ctx.audit.written && reply !== undefined) return reply;
  try {
    const resultCode = outcome ? statusName(outcome.code) : "OK";
    const errorCode = outcome ? String(outcome.metadata.get(ERROR_CODE_KEY)[0] ?? "") : "";
    if (services.refusals && AGGREGATED_REFUSALS.has(errorCode)) {
      await services.refusals.record({ time: services.clock(), requestId: ctx.requestId, principal: ctx.principal, peer, operation: method.name, resultCode, errorCode });
    } else {
      await services.audit.append({
        time: services.clock(),
        requestId: ctx.requestId,
        principal: ctx.principal,
        operation: method.name,
        keyId: ctx.audit.keyId,
        keyVersionId: ctx.audit.keyVersionId,
        encryptionContext: ctx.encryptionContext,
        resultCode,
        errorCode,
      });
    }
  } catch (err) {
    reply?.fill(0); // the answer may hold a data key or plaintext that will never be sent
    services.log.error("audit write failed; request refused", { requestId: ctx.requestId, ...describeError(err) });
    throw toStatus(unavailable("audit log"));
  }
  if (outcome) throw outcome;
  if (reply === undefined) throw toStatus(new InternalError("no reply"));
  return reply;
}


/**
 * Refusals a flood can cause at no cost to itself: audited in aggregate (refusals.ts). PERMISSION_DENIED
 * keeps a row per call: it names the key that was asked for, and the caller's rate limit bounds it.
 */
const AGGREGATED_REFUSALS: ReadonlySet<string> = new Set([ErrorCode.Unauthenticated, ErrorCode.Throttled]);

/** How many tokens a request costs beyond its first: a batch's items count one each (limits.ts). */
function batchItems(request: object): number {
  const items = (request as { items?: unknown }).items;
  // More than a batch may hold is refused by its handler (INVALID_ARGUMENT), not counted here.
  return Array.isArray(items) && items.length <= MAX_BATCH_ITEMS ? items.length : 1;
}

/** Even a request refused before its key is looked up gets an audit row naming the key it asked for. */
function noteKeyId(request: object, ctx: CallContext): void {
  const keyId = (request as { keyId?: unknown }).keyId;
  if (typeof keyId === "string" && isUuid(keyId)) ctx.audit.keyId = keyId.toLowerCase();
}

/**
 * Zeroes the plaintext fields of a reply (Decrypt, GenerateDataKey, AsymmetricDecrypt and the batch
 * results), which are views into the worker's response. The serialised reply itself belongs to grpc-js
 * until it is written, so it is not touched.
 */
function wipePlaintexts(message: unknown): void {
  if (typeof message !== "object" || message === null) return;
  const m = message as { plaintext?: unknown; results?: unknown; response?: unknown };
  if (m.plaintext instanceof Uint8Array) m.plaintext.fill(0);
  if (Array.isArray(m.results)) for (const r of m.results) wipePlaintexts((r as { response?: unknown }).response);
}

/** The request's encryption context (ReEncrypt: the destination's), stored as given in the audit row. */
function contextOf(request: object): Record<string, string> {
  const r = request as { encryptionContext?: Record<string, string>; destinationEncryptionContext?: Record<string, string> };
  return { ...(r.encryptionContext ?? r.destinationEncryptionContext ?? {}) };
}

function parse<I extends DescMessage>(schema: I, bytes: Buffer): MessageShape<I> {
  try {
    return fromBinary(schema, bytes);
  } catch (err) {
    throw invalidArgument("request", `not a valid ${schema.typeName} message (${err instanceof Error ? err.message : "decode error"})`);
  }
}
