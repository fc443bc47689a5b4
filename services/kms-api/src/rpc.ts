// The one wrapper every RPC goes through, in this order:
//   parse the raw request (a malformed message is INVALID_ARGUMENT, not grpc-js's INTERNAL)
//   → identify the caller → run the handler → write the audit row → reply.
// The audit row is durable before the reply: if it cannot be written the caller gets UNAVAILABLE
// instead of the answer (fail-closed). Anything thrown becomes a status through toStatus().
import { randomUUID } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { create, toBinary } from "@bufbuild/protobuf";
import { Metadata, status } from "@grpc/grpc-js";
import type { sendUnaryData, ServerUnaryCall, UntypedHandleCall } from "@grpc/grpc-js";
import { ERROR_CODE_KEY, InternalError, KmsError, invalidArgument, toStatus, unavailable } from "@kms/errors";
import type { CallContext, Services } from "./context";
import { describeError } from "./log";

export const REQUEST_ID_KEY = "kms-request-id";
/** Dev mode has no authentication yet: every caller acts as this principal. */
export const DEV_PRINCIPAL = "dev";

export type Handler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: CallContext,
  services: Services,
) => Promise<MessageInitShape<O>>;

const STATUS_NAMES = Object.fromEntries(Object.entries(status).map(([name, code]) => [code, name])) as Record<number, string>;

export function unaryHandler<I extends DescMessage, O extends DescMessage>(
  method: DescMethod & { input: I; output: O },
  handler: Handler<I, O>,
  services: Services,
): UntypedHandleCall {
  return (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
    const deadline = call.getDeadline();
    const ctx: CallContext = {
      requestId: randomUUID(),
      principal: DEV_PRINCIPAL,
      deadline: deadline instanceof Date ? deadline : Number.isFinite(deadline) ? new Date(deadline) : undefined,
      audit: { keyId: "", keyVersionId: "" },
    };
    const header = new Metadata();
    header.set(REQUEST_ID_KEY, ctx.requestId);
    call.sendMetadata(header);
    void run(method, handler, services, call.request, ctx).then(
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
): Promise<Buffer> {
  let reply: Buffer | undefined;
  let failure: unknown;
  try {
    const request = parse(method.input, bytes);
    noteKeyId(request, ctx);
    const response = await handler(request, ctx, services);
    reply = Buffer.from(toBinary(method.output, create(method.output, response)));
  } catch (err) {
    failure = err;
  }
  const outcome = failure === undefined ? undefined : toStatus(failure);
  if (failure !== undefined && !(failure instanceof KmsError)) {
    services.log.error("request failed", { requestId: ctx.requestId, operation: method.name, ...describeError(failure) });
  }
  try {
    await services.audit.append({
      time: services.clock(),
      requestId: ctx.requestId,
      principal: ctx.principal,
      operation: method.name,
      keyId: ctx.audit.keyId,
      keyVersionId: ctx.audit.keyVersionId,
      resultCode: outcome ? (STATUS_NAMES[outcome.code] ?? String(outcome.code)) : "OK",
      errorCode: outcome ? String(outcome.metadata.get(ERROR_CODE_KEY)[0] ?? "") : "",
    });
  } catch (err) {
    reply?.fill(0); // the answer may hold a data key or plaintext that will never be sent
    services.log.error("audit write failed; request refused", { requestId: ctx.requestId, ...describeError(err) });
    throw toStatus(unavailable("audit log"));
  }
  if (outcome) throw outcome;
  if (reply === undefined) throw toStatus(new InternalError("no reply"));
  return reply;
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Even a request refused before its key is looked up gets an audit row naming the key it asked for. */
function noteKeyId(request: object, ctx: CallContext): void {
  const keyId = (request as { keyId?: unknown }).keyId;
  if (typeof keyId === "string" && UUID.test(keyId)) ctx.audit.keyId = keyId.toLowerCase();
}

function parse<I extends DescMessage>(schema: I, bytes: Buffer): MessageShape<I> {
  try {
    return fromBinary(schema, bytes);
  } catch (err) {
    throw invalidArgument("request", `not a valid ${schema.typeName} message (${err instanceof Error ? err.message : "decode error"})`);
  }
}
