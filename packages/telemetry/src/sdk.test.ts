import { metrics, trace } from "@opentelemetry/api";

const ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT";
const SDK_MODULES = ["@opentelemetry/sdk-trace-node", "@opentelemetry/sdk-metrics", "@opentelemetry/exporter-trace-otlp-http", "@opentelemetry/exporter-metrics-otlp-http"];

afterEach(() => {
  delete process.env[ENDPOINT];
  trace.disable();
  metrics.disable();
  for (const m of SDK_MODULES) jest.dontMock(m);
  jest.resetModules();
});

describe("startTelemetry", () => {
  it("loads no SDK module and stays a no-op without OTEL_EXPORTER_OTLP_ENDPOINT", async () => {
    delete process.env[ENDPOINT];
    // Any SDK module load fails the test.
    for (const m of SDK_MODULES) {
      jest.doMock(m, () => {
        throw new Error(`${m} was loaded`);
      });
    }
    const { startTelemetry, withSpan, activeTraceIds } = require("./index") as typeof import("./index");
    const telemetry = startTelemetry("kms-test");
    expect(telemetry.enabled).toBe(false);
    expect(await withSpan("noop", {}, async () => activeTraceIds())).toEqual({});
    await telemetry.shutdown();
  });

  // The export itself (OTLP/HTTP to a local collector) is tested against the real kms-api process in
  // test/integration/logging.test.ts: the exporter loads node:http by dynamic import(), which jest's
  // CommonJS sandbox refuses.
  it("registers a tracer and a meter provider when OTEL_EXPORTER_OTLP_ENDPOINT is set", async () => {
    process.env[ENDPOINT] = "http://127.0.0.1:9"; // never reached: nothing is exported before shutdown
    const { startTelemetry, withSpan, activeTraceIds } = require("./index") as typeof import("./index");
    const api = require("@opentelemetry/api") as typeof import("@opentelemetry/api");
    const telemetry = startTelemetry("kms-test");
    expect(telemetry.enabled).toBe(true);
    const ids = await withSpan("op", {}, async () => activeTraceIds());
    expect(ids).toEqual({ trace_id: expect.stringMatching(/^[0-9a-f]{32}$/), span_id: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(api.metrics.getMeterProvider().constructor.name).toBe("MeterProvider");
    api.trace.disable(); // drop the span before shutdown tries to send it
    await telemetry.shutdown();
  });
});

describe("metricExportTiming", () => {
  const { metricExportTiming } = require("./sdk") as typeof import("./sdk");
  it("reads OTEL_METRIC_EXPORT_INTERVAL and OTEL_METRIC_EXPORT_TIMEOUT in milliseconds", () => {
    expect(metricExportTiming({ OTEL_METRIC_EXPORT_INTERVAL: "5000", OTEL_METRIC_EXPORT_TIMEOUT: "2000" })).toEqual({ exportIntervalMillis: 5000, exportTimeoutMillis: 2000 });
  });
  it("keeps the defaults (30 s) when unset or not a positive whole number", () => {
    for (const bad of [undefined, "", "0", "-5", "1.5", "10s", "abc"]) {
      expect(metricExportTiming({ OTEL_METRIC_EXPORT_INTERVAL: bad })).toEqual({ exportIntervalMillis: 30_000, exportTimeoutMillis: 30_000 });
    }
  });
  it("never lets the timeout exceed the interval", () => {
    expect(metricExportTiming({ OTEL_METRIC_EXPORT_INTERVAL: "500" })).toEqual({ exportIntervalMillis: 500, exportTimeoutMillis: 500 });
  });
});
