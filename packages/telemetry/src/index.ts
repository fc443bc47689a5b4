// Observability for both services: span and metric names, span helpers over @opentelemetry/api, the
// metric instruments, the SDK start (only with OTEL_EXPORTER_OTLP_ENDPOINT), and JSON logs (pino).
export * from "./attributes";
export { SpanKind, SpanStatusCode, activeTraceIds, extractTraceContext, injectTraceContext, isServerError, tracer, withSpan } from "./tracing";
export type { Attributes, Span, SpanOptions } from "./tracing";
export {
  METRIC_AUDIT_BATCH_DURATION,
  METRIC_AUDIT_BATCH_SIZE,
  METRIC_CACHE_HITS,
  METRIC_CACHE_HIT_RATIO,
  METRIC_CACHE_MISSES,
  METRIC_HSM_SESSIONS_IN_USE,
  METRIC_HSM_SESSIONS_WAITING,
  METRIC_REQUESTS,
  METRIC_REQUEST_DURATION,
  hitRatio,
  meter,
  observeCache,
  observeHsmSessions,
  recordAuditBatch,
  recordRequest,
} from "./metrics";
export type { CacheCounts, SessionCounts } from "./metrics";
export { OTLP_ENDPOINT_VARIABLE, startTelemetry } from "./sdk";
export type { Telemetry } from "./sdk";
export { REDACTED_FIELDS, REDACTION_CENSOR, createJsonLogger, createLogger, describeError, errorChain, processLogger } from "./log";
export type { JsonLoggerOptions, LogLevel, Logger, PinoLogger, ServiceLogger } from "./log";
