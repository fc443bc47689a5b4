// Spans through @opentelemetry/api only: without a registered SDK (startTelemetry not called, or no
// OTEL_EXPORTER_OTLP_ENDPOINT) every call here is a no-op.
import { SpanKind, SpanStatusCode, context, propagation, trace } from "@opentelemetry/api";
import type { Attributes, Context, Span } from "@opentelemetry/api";

export const INSTRUMENTATION_NAME = "@kms/telemetry";

/** A proxy: spans it starts go to whichever tracer provider is registered when they start. */
export const tracer = trace.getTracer(INSTRUMENTATION_NAME);

export interface SpanOptions {
  kind?: SpanKind;
  /** The parent; default: the active context. */
  parent?: Context;
  /**
   * Whether an exception thrown by fn is a failure of this span (recorded, status ERROR). Default:
   * every exception. A server span may say no for the caller's own mistakes (INVALID_ARGUMENT...).
   */
  isError?: (err: unknown) => boolean;
}

/**
 * Runs fn inside a new active span: an exception is recorded and sets the status to ERROR (then
 * rethrown); the span always ends.
 */
export async function withSpan<T>(
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T> | T,
  options: SpanOptions = {},
): Promise<T> {
  const parent = options.parent ?? context.active();
  // Looked up per call rather than through `tracer`: trace.disable() (tests) replaces the global proxy.
  return trace.getTracer(INSTRUMENTATION_NAME).startActiveSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes }, parent, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      if (options.isError?.(err) ?? true) {
        const exception = exceptionOf(err);
        span.recordException(exception);
        span.setStatus({ code: SpanStatusCode.ERROR, message: typeof exception === "string" ? exception : exception.message });
      }
      throw err;
    } finally {
      span.end();
    }
  });
}

/** recordException wants an Error or a string; a gRPC status object is neither. */
function exceptionOf(err: unknown): Error | string {
  if (err instanceof Error) return err;
  const e = err as { code?: unknown; details?: unknown } | null;
  if (e !== null && typeof e === "object" && typeof e.code === "number") return `gRPC status ${e.code}: ${String(e.details ?? "")}`;
  return String(err);
}

/** The trace context (W3C traceparent/tracestate) of `ctx` as headers, e.g. for gRPC metadata. */
export function injectTraceContext(ctx: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier;
}

/** The context whose parent span is the one named by W3C headers (values as grpc-js metadata gives them). */
export function extractTraceContext(headers: Record<string, unknown>, base: Context = context.active()): Context {
  return propagation.extract(base, headers, {
    keys: (carrier) => Object.keys(carrier),
    get: (carrier, key) => {
      const value = carrier[key];
      if (typeof value === "string") return value;
      if (Array.isArray(value) && value.every((v) => typeof v === "string")) return value as string[];
      return undefined;
    },
  });
}

/** trace_id and span_id of the active span, for log lines; empty when there is none (no SDK). */
export function activeTraceIds(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan();
  if (span === undefined) return {};
  const sc = span.spanContext();
  if (!trace.isSpanContextValid(sc)) return {};
  return { trace_id: sc.traceId, span_id: sc.spanId };
}

export { SpanKind, SpanStatusCode };
export type { Attributes, Span };

/**
 * gRPC codes that are the server's fault, which set a server span's status to ERROR (OpenTelemetry's
 * RPC conventions): UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS. The
 * caller's own mistakes (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED...) leave the status unset.
 */
export function isServerError(grpcCode: number): boolean {
  return grpcCode === 2 || grpcCode === 4 || grpcCode === 12 || grpcCode === 13 || grpcCode === 14 || grpcCode === 15;
}
