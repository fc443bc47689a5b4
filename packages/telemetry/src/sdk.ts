// The OpenTelemetry SDK is started only when OTEL_EXPORTER_OTLP_ENDPOINT is set. It is required inside
// startTelemetry, so a process without an endpoint never loads it: tracing and metrics are then the
// API's no-ops and cost next to nothing.
//
// What runs: a Node tracer provider (AsyncLocalStorage context, W3C trace-context propagation) with a
// batching OTLP/HTTP span exporter, and a meter provider with a periodic OTLP/HTTP metric exporter.
// The exporters read the standard OTEL_EXPORTER_OTLP_* variables themselves (endpoint, headers,
// certificates, timeout; /v1/traces and /v1/metrics are appended to the endpoint); OTEL_SERVICE_NAME
// and OTEL_RESOURCE_ATTRIBUTES override the resource; the tracer provider reads OTEL_TRACES_SAMPLER(_ARG)
// and the span processor OTEL_BSP_*. The metric reader reads no variable of its own in the JS SDK, so
// OTEL_METRIC_EXPORT_INTERVAL and OTEL_METRIC_EXPORT_TIMEOUT are read here, as the specification says.
import { metrics } from "@opentelemetry/api";

export const OTLP_ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT";
/** How long finished spans wait before being sent in one batch, unless OTEL_BSP_SCHEDULE_DELAY says. */
const SPAN_EXPORT_DELAY_MS = 1000;
/** How often metrics are collected and sent, unless OTEL_METRIC_EXPORT_INTERVAL says. */
const METRIC_EXPORT_INTERVAL_MS = 30_000;

/** A positive whole number of milliseconds from the environment; anything else keeps the default (the spec's rule for a bad value). */
export function millisFromEnv(name: string, fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[name]?.trim();
  if (raw === undefined || !/^[0-9]+$/.test(raw)) return fallback;
  const ms = Number(raw);
  return ms > 0 && Number.isSafeInteger(ms) ? ms : fallback;
}

/** The metric reader's interval and timeout; the timeout may not exceed the interval (the reader throws). */
export function metricExportTiming(env: NodeJS.ProcessEnv = process.env): { exportIntervalMillis: number; exportTimeoutMillis: number } {
  const exportIntervalMillis = millisFromEnv("OTEL_METRIC_EXPORT_INTERVAL", METRIC_EXPORT_INTERVAL_MS, env);
  const exportTimeoutMillis = Math.min(millisFromEnv("OTEL_METRIC_EXPORT_TIMEOUT", 30_000, env), exportIntervalMillis);
  return { exportIntervalMillis, exportTimeoutMillis };
}

export interface Telemetry {
  /** True when the SDK was started (an OTLP endpoint is configured). */
  readonly enabled: boolean;
  /** Sends what is buffered and stops the exporters; call before the process exits. */
  shutdown(): Promise<void>;
}

const DISABLED: Telemetry = { enabled: false, shutdown: async () => {} };

/** Starts the SDK if OTEL_EXPORTER_OTLP_ENDPOINT is set (the exporters read process.env themselves). */
export function startTelemetry(serviceName: string): Telemetry {
  const endpoint = process.env[OTLP_ENDPOINT_VARIABLE];
  if (endpoint === undefined || endpoint === "") return DISABLED;

  /* eslint-disable @typescript-eslint/no-require-imports -- loaded only when telemetry is on */
  const { NodeTracerProvider, BatchSpanProcessor } = require("@opentelemetry/sdk-trace-node") as typeof import("@opentelemetry/sdk-trace-node");
  const { MeterProvider, PeriodicExportingMetricReader } = require("@opentelemetry/sdk-metrics") as typeof import("@opentelemetry/sdk-metrics");
  const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-http") as typeof import("@opentelemetry/exporter-trace-otlp-http");
  const { OTLPMetricExporter } = require("@opentelemetry/exporter-metrics-otlp-http") as typeof import("@opentelemetry/exporter-metrics-otlp-http");
  const { defaultResource, detectResources, envDetector, resourceFromAttributes } = require("@opentelemetry/resources") as typeof import("@opentelemetry/resources");
  /* eslint-enable @typescript-eslint/no-require-imports */

  const resource = defaultResource()
    .merge(resourceFromAttributes({ "service.name": serviceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  const tracerProvider = new NodeTracerProvider({
    resource,
    // An explicit option would override OTEL_BSP_SCHEDULE_DELAY, so ours is only the default.
    spanProcessors: [
      new BatchSpanProcessor(new OTLPTraceExporter(), process.env.OTEL_BSP_SCHEDULE_DELAY ? {} : { scheduledDelayMillis: SPAN_EXPORT_DELAY_MS }),
    ],
  });
  tracerProvider.register();
  const meterProvider = new MeterProvider({
    resource,
    readers: [new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter(), ...metricExportTiming() })],
  });
  metrics.setGlobalMeterProvider(meterProvider);

  return {
    enabled: true,
    async shutdown() {
      await Promise.allSettled([tracerProvider.shutdown(), meterProvider.shutdown()]);
    },
  };
}
