import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { ATTR_KMS_KEY_ID, ATTR_RPC_METHOD } from "./attributes";
import { activeTraceIds, extractTraceContext, injectTraceContext, isServerError, withSpan } from "./tracing";

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

beforeAll(() => provider.register());
afterEach(() => exporter.reset());
afterAll(async () => {
  await provider.shutdown();
  trace.disable();
});

describe("withSpan", () => {
  it("ends the span with the given attributes and returns fn's value", async () => {
    const value = await withSpan("op", { [ATTR_RPC_METHOD]: "Encrypt", [ATTR_KMS_KEY_ID]: "k-1" }, async () => 42, { kind: SpanKind.SERVER });
    expect(value).toBe(42);
    const [span, ...rest] = exporter.getFinishedSpans();
    expect(rest).toEqual([]);
    expect(span!.name).toBe("op");
    expect(span!.kind).toBe(SpanKind.SERVER);
    expect(span!.attributes).toEqual({ "rpc.method": "Encrypt", "kms.key_id": "k-1" });
    expect(span!.status.code).toBe(SpanStatusCode.UNSET);
    expect(span!.events).toEqual([]);
  });

  it("records the exception, sets status ERROR, ends the span and rethrows the same error", async () => {
    const boom = new TypeError("boom");
    await expect(withSpan("failing", {}, async () => Promise.reject(boom))).rejects.toBe(boom);
    const [span] = exporter.getFinishedSpans();
    expect(span!.status).toEqual({ code: SpanStatusCode.ERROR, message: "boom" });
    expect(span!.events.map((e) => e.name)).toEqual(["exception"]);
    expect(span!.events[0]!.attributes).toMatchObject({ "exception.type": "TypeError", "exception.message": "boom" });
    expect(span!.ended).toBe(true);
  });

  it("records a thrown gRPC status object by its code and details", async () => {
    const failure = { code: 14, details: "HSM worker unavailable" };
    await expect(withSpan("grpc", {}, () => Promise.reject(failure))).rejects.toBe(failure);
    const [span] = exporter.getFinishedSpans();
    expect(span!.status).toEqual({ code: SpanStatusCode.ERROR, message: "gRPC status 14: HSM worker unavailable" });
  });

  it("leaves the status unset when isError says the exception is the caller's mistake", async () => {
    const failure = { code: 3, details: "bad input" };
    await expect(withSpan("client-error", {}, () => Promise.reject(failure), { isError: () => false })).rejects.toBe(failure);
    const [span] = exporter.getFinishedSpans();
    expect(span!.status.code).toBe(SpanStatusCode.UNSET);
    expect(span!.events).toEqual([]);
  });

  it("makes the span active inside fn: log ids and child spans see it", async () => {
    let ids: ReturnType<typeof activeTraceIds> = {};
    await withSpan("parent", {}, async () => {
      await new Promise((r) => setTimeout(r, 1));
      ids = activeTraceIds();
      await withSpan("child", {}, async () => undefined);
    });
    const [child, parent] = exporter.getFinishedSpans();
    expect(ids).toEqual({ trace_id: parent!.spanContext().traceId, span_id: parent!.spanContext().spanId });
    expect(child!.spanContext().traceId).toBe(parent!.spanContext().traceId);
    expect(child!.parentSpanContext?.spanId).toBe(parent!.spanContext().spanId);
  });
});

describe("trace context propagation", () => {
  it("carries the active span to another process as a W3C traceparent", async () => {
    let headers: Record<string, string> = {};
    await withSpan("client", {}, async () => {
      headers = injectTraceContext();
    });
    expect(Object.keys(headers)).toEqual(["traceparent"]);
    // grpc-js gives metadata values as strings (or arrays of them).
    await withSpan("server", {}, async () => undefined, { parent: extractTraceContext({ ...headers, other: Buffer.from("x") }) });
    const [client, server] = exporter.getFinishedSpans();
    expect(headers["traceparent"]).toBe(`00-${client!.spanContext().traceId}-${client!.spanContext().spanId}-01`);
    expect(server!.spanContext().traceId).toBe(client!.spanContext().traceId);
    expect(server!.parentSpanContext?.spanId).toBe(client!.spanContext().spanId);
  });

  it("has no trace ids outside a span", () => {
    expect(activeTraceIds()).toEqual({});
  });
});

describe("isServerError", () => {
  it("is true for the server's faults only", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16].filter(isServerError)).toEqual([2, 4, 12, 13, 14, 15]);
  });
});
