import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { trace } from "@opentelemetry/api";
import { REDACTION_CENSOR, createJsonLogger } from "./log";
import { withSpan } from "./tracing";

function capture(level: "error" | "warn" | "info" | "debug" = "debug") {
  const lines: string[] = [];
  const logger = createJsonLogger({ service: "test", level, destination: { write: (s: string) => void lines.push(s) } });
  return { logger, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("createJsonLogger", () => {
  afterEach(() => trace.disable());

  it("writes one JSON object per line with level name, ISO time, service and msg", () => {
    const { logger, records } = capture("info");
    logger.info({ requestId: "r-1" }, "hello");
    logger.debug({}, "not at info");
    const [r, ...rest] = records();
    expect(rest).toEqual([]);
    expect(r).toEqual({ level: "info", time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), service: "test", requestId: "r-1", msg: "hello" });
  });

  it("redacts fields named like secrets, at the top level and one level down", () => {
    const { logger, records } = capture();
    logger.warn(
      { plaintext: "p", pin: "1234", key: "k", dataKey: "d", token: "t", authorization: "Bearer x", encryptionContext: { a: "b" }, nested: { material: "m", pin: "5678", ok: 1 }, keyId: "kept" },
      "oops",
    );
    const [r] = records();
    for (const field of ["plaintext", "pin", "key", "dataKey", "token", "authorization", "encryptionContext"]) expect(r![field]).toBe(REDACTION_CENSOR);
    expect(r!["nested"]).toEqual({ material: REDACTION_CENSOR, pin: REDACTION_CENSOR, ok: 1 });
    expect(r!["keyId"]).toBe("kept");
  });

  it("carries the active span's trace_id and span_id", async () => {
    const provider = new NodeTracerProvider();
    provider.register();
    const { logger, records } = capture();
    let ids: { traceId: string; spanId: string } | undefined;
    await withSpan("op", {}, async (span) => {
      ids = span.spanContext();
      logger.info({}, "inside");
    });
    logger.info({}, "outside");
    const [inside, outside] = records();
    expect(inside).toMatchObject({ trace_id: ids!.traceId, span_id: ids!.spanId });
    expect(outside!["trace_id"]).toBeUndefined();
    await provider.shutdown();
  });
});
