// Spans in the worker: one SERVER span per worker RPC (the child of kms-api's span when the caller sent
// a W3C traceparent), named for the gRPC method, and inside it one span per HSM operation, made by a
// wrapper around the backend (a batch on BatchStream runs many). Attributes: the operation, key version, key spec
// and protection level — never the plaintext, sealed data, AAD or material a request carries.
import type { Metadata } from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { KmsError } from "@kms/errors";
import { kmsResources } from "@kms/proto";
import {
  ATTR_HSM_OPERATION,
  ATTR_KMS_KEY_SPEC,
  ATTR_KMS_KEY_VERSION_ID,
  ATTR_KMS_PROTECTION_LEVEL,
  ATTR_RPC_GRPC_STATUS_CODE,
  ATTR_RPC_METHOD,
  ATTR_RPC_SERVICE,
  ATTR_RPC_SYSTEM,
  SpanKind,
  extractTraceContext,
  isServerError,
  processLogger,
  withSpan,
} from "@kms/telemetry";
import type { Attributes } from "@kms/telemetry";
import type { Backend } from "./backend";

const log = processLogger("hsm-worker");

export const WORKER_SERVICE = "kms.hsm.v1.HsmWorkerService";

interface KeyFields {
  keyVersionId?: string;
  keySpec?: number;
  protectionLevel?: number;
}

/** What a span may say about the key a request uses or makes. */
export function keyAttributes(request: unknown): Attributes {
  const r = (request ?? {}) as KeyFields & { key?: KeyFields; sourceKey?: KeyFields };
  const key = r.key ?? r.sourceKey ?? r;
  const out: Attributes = {};
  if (typeof key.keyVersionId === "string" && key.keyVersionId !== "") out[ATTR_KMS_KEY_VERSION_ID] = key.keyVersionId;
  if (typeof key.keySpec === "number" && key.keySpec !== 0) out[ATTR_KMS_KEY_SPEC] = kmsResources.KeySpec[key.keySpec] ?? String(key.keySpec);
  if (typeof key.protectionLevel === "number" && key.protectionLevel !== 0) {
    out[ATTR_KMS_PROTECTION_LEVEL] = kmsResources.ProtectionLevel[key.protectionLevel] ?? String(key.protectionLevel);
  }
  return out;
}

function codeOf(err: unknown): number {
  return err instanceof KmsError ? err.status : status.INTERNAL;
}

/** Runs one worker operation (a unary call, or one batch of a stream) in its span, and logs it at debug level. */
export async function traceOperation<T>(rpc: string, call: { metadata: Metadata; request: unknown }, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const attributes: Attributes = {
    [ATTR_RPC_SYSTEM]: "grpc",
    [ATTR_RPC_SERVICE]: WORKER_SERVICE,
    [ATTR_RPC_METHOD]: rpc,
    ...keyAttributes(call.request),
  };
  return withSpan(
    `${WORKER_SERVICE}/${rpc}`,
    attributes,
    async (span) => {
      let code: number = status.OK;
      try {
        return await fn();
      } catch (err) {
        code = codeOf(err);
        throw err;
      } finally {
        span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, code);
        log.debug("hsm operation", { operation: rpc, status: status[code] ?? String(code), ms: Math.round(performance.now() - started) });
      }
    },
    { kind: SpanKind.SERVER, parent: extractTraceContext(call.metadata.getMap()), isError: (err) => isServerError(codeOf(err)) },
  );
}

/** Backend methods that do HSM (or software-root) work, and what their spans say about the key. */
const TRACED: Record<string, (args: unknown[]) => Attributes> = {
  generateKeyMaterial: (a) => keyAttributes(a[0]),
  encrypt: (a) => keyAttributes({ key: a[0] }),
  decrypt: (a) => keyAttributes({ key: a[0] }),
  sign: (a) => keyAttributes({ key: a[0] }),
  asymmetricDecrypt: (a) => keyAttributes({ key: a[0] }),
  generateMac: (a) => keyAttributes({ key: a[0] }),
  generateRandom: () => ({}),
  wrapMaterial: () => ({}),
};

/**
 * The backend with a span around each operation ("hsm.encrypt", ...; kms.hsm.operation = the method).
 * Everything else passes through untouched (instanceof still holds).
 */
export function traceBackend<B extends Backend>(backend: B): B {
  return new Proxy(backend, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      const method = value as (...args: unknown[]) => unknown;
      const attributesOf = typeof prop === "string" ? TRACED[prop] : undefined;
      if (attributesOf === undefined) return method.bind(target);
      const name = prop as string;
      return (...args: unknown[]) =>
        withSpan(`hsm.${name}`, { [ATTR_HSM_OPERATION]: name, ...attributesOf(args) }, async () => method.apply(target, args), {
          isError: (err) => isServerError(codeOf(err)),
        });
    },
  });
}
