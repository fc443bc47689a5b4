// The telemetry of one RPC, around the pipeline's invoke() (grpc.ts): a SERVER span named for the method (the child of
// the caller's W3C traceparent, if it sent one), the request counter and latency histogram, and a
// debug log line. Attributes are metadata only: never the plaintext, the data key or the values of the
// encryption context.
import type { Metadata } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import {
  ATTR_KMS_ERROR_CODE,
  ATTR_KMS_KEY_ID,
  ATTR_KMS_KEY_VERSION_ID,
  ATTR_KMS_REQUEST_ID,
  ATTR_RPC_GRPC_STATUS_CODE,
  ATTR_RPC_METHOD,
  ATTR_RPC_SERVICE,
  ATTR_RPC_SYSTEM,
  SpanKind,
  extractTraceContext,
  isServerError,
  recordRequest,
  withSpan,
} from "@kms/telemetry";
import { ERROR_CODE_KEY, statusName } from "@kms/errors";
import type { CallContext, Services } from "../context";

export const API_SERVICE = "kms.v1.KeyManagementService";


/** What the gRPC front rejects with: a grpc-js status (toStatus()). */
interface StatusLike {
  code?: unknown;
  metadata?: Metadata;
}

function codeOf(failure: unknown): number {
  const code = (failure as StatusLike | undefined)?.code;
  return typeof code === "number" ? code : status.UNKNOWN;
}

export async function traceRpc<T>(ctx: CallContext, metadata: Metadata, services: Services, run: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const method = ctx.operation;
  return withSpan(
    `${API_SERVICE}/${method}`,
    { [ATTR_RPC_SYSTEM]: "grpc", [ATTR_RPC_SERVICE]: API_SERVICE, [ATTR_RPC_METHOD]: method, [ATTR_KMS_REQUEST_ID]: ctx.requestId },
    async (span) => {
      let code: number = status.OK;
      let errorCode = "";
      try {
        return await run();
      } catch (failure) {
        code = codeOf(failure);
        const e = (failure as StatusLike).metadata?.get(ERROR_CODE_KEY)[0];
        errorCode = typeof e === "string" ? e : "";
        throw failure;
      } finally {
        const ms = performance.now() - started;
        const codeName = statusName(code);
        span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, code);
        if (ctx.audit.keyId !== "") span.setAttribute(ATTR_KMS_KEY_ID, ctx.audit.keyId);
        if (ctx.audit.keyVersionId !== "") span.setAttribute(ATTR_KMS_KEY_VERSION_ID, ctx.audit.keyVersionId);
        if (errorCode !== "") span.setAttribute(ATTR_KMS_ERROR_CODE, errorCode);
        recordRequest(method, codeName, ms);
        services.log.debug("rpc", {
          requestId: ctx.requestId,
          method,
          status: codeName,
          ...(errorCode !== "" ? { errorCode } : {}),
          ...(ctx.audit.keyId !== "" ? { keyId: ctx.audit.keyId } : {}),
          ms: Math.round(ms),
        });
      }
    },
    { kind: SpanKind.SERVER, parent: extractTraceContext(metadata.getMap()), isError: (failure) => isServerError(codeOf(failure)) },
  );
}
