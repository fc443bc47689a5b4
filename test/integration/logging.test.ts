// Logs and traces of the real processes: with KMS_LOG_LEVEL=debug, after Encrypt, Decrypt,
// GenerateDataKey and failing calls, neither service's output holds the plaintext, a data key or the
// PIN, and every log line is JSON with a level. With OTEL_EXPORTER_OTLP_ENDPOINT pointing at a small
// local collector, both services export their spans over OTLP/HTTP.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { status } from "@grpc/grpc-js";
import type { ServiceProcess } from "@kms/dev-stack";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { Stack } from "../harness";

const { DataKeySpec, ProtectionLevel } = kmsResources;

/** Everything a process writes from now on (the harness keeps only the last ~200 lines). */
function captureOutput(proc: ServiceProcess): () => string {
  const before = proc.output(); // the start-up lines
  const chunks: string[] = [];
  for (const stream of [proc.child.stdout, proc.child.stderr]) stream?.on("data", (chunk: Buffer | string) => chunks.push(chunk.toString()));
  return () => `${before}\n${chunks.join("")}`;
}

/** The ways a secret could show up in a line of text. */
function encodings(secret: Buffer): string[] {
  return [secret.toString("hex"), secret.toString("hex").toUpperCase(), secret.toString("base64"), secret.toString("base64url")];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("logs at debug level", () => {
  let stack: Stack;
  let apiOutput: () => string;
  let workerOutput: () => string;

  beforeAll(async () => {
    stack = await startStack({ env: { KMS_LOG_LEVEL: "debug" } });
    apiOutput = captureOutput(stack.api);
    workerOutput = captureOutput(stack.worker);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("hold no plaintext, data key, encryption-context value or PIN, and are JSON lines with a level", async () => {
    const marker = Buffer.from(`PLAINTEXT-MARKER-${randomBytes(12).toString("hex")}`);
    const contextValue = `ctx-${randomBytes(8).toString("hex")}`;
    const dataKeys: Buffer[] = [];

    for (const protectionLevel of [ProtectionLevel.HSM, ProtectionLevel.SOFTWARE]) {
      const keyId = (await stack.client.createKey({ description: "logging", protectionLevel })).keyMetadata!.keyId;
      const enc = await stack.client.encrypt({ keyId, plaintext: marker, encryptionContext: { tenant: contextValue } });
      const dec = await stack.client.decrypt({ ciphertextBlob: enc.ciphertextBlob, encryptionContext: { tenant: contextValue } });
      expect(Buffer.from(dec.plaintext)).toEqual(marker);
      const dk = await stack.client.generateDataKey({ keyId, keySpec: DataKeySpec.AES_256, encryptionContext: { tenant: contextValue } });
      dataKeys.push(Buffer.from(dk.plaintext));
      const dkDec = await stack.client.decrypt({ ciphertextBlob: dk.ciphertextBlob, encryptionContext: { tenant: contextValue } });
      expect(Buffer.from(dkDec.plaintext)).toEqual(dataKeys.at(-1));

      // Failures: a tampered blob, the right blob under another context, bad input, an unknown key.
      const tampered = Buffer.from(enc.ciphertextBlob);
      tampered[tampered.length - 1]! ^= 1;
      let err = await grpcError(stack.client.decrypt({ ciphertextBlob: tampered, encryptionContext: { tenant: contextValue } }));
      expect([err.code, errorCode(err.metadata)]).toEqual([status.INVALID_ARGUMENT, "InvalidCiphertext"]);
      err = await grpcError(stack.client.decrypt({ ciphertextBlob: enc.ciphertextBlob, encryptionContext: { tenant: "other" } }));
      expect([err.code, errorCode(err.metadata)]).toEqual([status.INVALID_ARGUMENT, "InvalidCiphertext"]);
      err = await grpcError(stack.client.decrypt({ ciphertextBlob: randomBytes(64) }));
      expect([err.code, errorCode(err.metadata)]).toEqual([status.INVALID_ARGUMENT, "InvalidCiphertext"]);
      err = await grpcError(stack.client.encrypt({ keyId, plaintext: Buffer.concat([marker, Buffer.alloc(7000)]) }));
      expect([err.code, errorCode(err.metadata)]).toEqual([status.INVALID_ARGUMENT, "InvalidParameter"]);
    }
    const err = await grpcError(stack.client.encrypt({ keyId: "00000000-0000-4000-8000-000000000000", plaintext: marker }));
    expect(err.code).toBe(status.NOT_FOUND);
    await sleep(200); // let the last lines arrive

    const api = apiOutput();
    const worker = workerOutput();
    const pin = readFileSync(stack.workerEnv.KMS_PKCS11_PIN_FILE!, "utf8").trim();
    expect(pin.length).toBeGreaterThanOrEqual(4);
    const secrets: [string, string][] = [
      ["plaintext", marker.toString("utf8")],
      ...encodings(marker).map((e): [string, string] => ["plaintext (encoded)", e]),
      ...dataKeys.flatMap((k) => encodings(k).map((e): [string, string] => ["data key", e])),
      ["encryption-context value", contextValue],
      ["PIN", pin],
    ];
    const outputs: [string, string][] = [
      ["kms-api", api],
      ["hsm-worker", worker],
    ];
    for (const [name, output] of outputs) {
      for (const [what, secret] of secrets) expect([name, what, output.includes(secret)]).toEqual([name, what, false]);
    }

    // Every log line is a JSON object with a level; the debug lines name each call and its outcome.
    const records = (output: string) =>
      output
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((line) => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(line);
          } catch {
            parsed = undefined;
          }
          expect([line, typeof (parsed as { level?: unknown } | undefined)?.level]).toEqual([line, "string"]);
          return parsed as Record<string, unknown>;
        });
    const apiRecords = records(api);
    const workerRecords = records(worker);
    const rpcLines = apiRecords.filter((r) => r["msg"] === "rpc");
    expect(rpcLines.filter((r) => r["method"] === "Encrypt" && r["status"] === "OK").length).toBe(2);
    expect(rpcLines.filter((r) => r["method"] === "Decrypt" && r["errorCode"] === "InvalidCiphertext").length).toBe(6);
    expect(rpcLines.find((r) => r["method"] === "GenerateDataKey")).toMatchObject({ level: "debug", service: "kms-api", status: "OK", keyId: expect.any(String) });
    expect(workerRecords.some((r) => r["msg"] === "hsm operation" && r["level"] === "debug")).toBe(true);
    expect(workerRecords.some((r) => typeof r["msg"] === "string" && (r["msg"] as string).startsWith("hsm-worker listening"))).toBe(true);
  });
});

interface ExportedSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: { key: string; value: Record<string, unknown> }[];
}
interface Received {
  service: string;
  span: ExportedSpan;
}

/** A minimal OTLP/HTTP (JSON) collector: keeps every span posted to /v1/traces, and the bodies posted to /v1/metrics. */
async function startCollector(): Promise<{ server: Server; url: string; spans: Received[]; bodies: string[]; metricBodies: string[] }> {
  const spans: Received[] = [];
  const bodies: string[] = [];
  const metricBodies: string[] = [];
  const server = createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => (body += c));
    req.on("end", () => {
      bodies.push(body);
      if (req.url === "/v1/metrics") metricBodies.push(body);
      if (req.url === "/v1/traces") {
        const doc = JSON.parse(body) as {
          resourceSpans: { resource: { attributes: ExportedSpan["attributes"] }; scopeSpans: { spans: ExportedSpan[] }[] }[];
        };
        for (const rs of doc.resourceSpans) {
          const service = String(rs.resource.attributes.find((a) => a.key === "service.name")?.value["stringValue"]);
          for (const ss of rs.scopeSpans) for (const span of ss.spans) spans.push({ service, span });
        }
      }
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, bodies, metricBodies };
}

function attribute(span: ExportedSpan, key: string): unknown {
  const v = span.attributes.find((a) => a.key === key)?.value;
  return v === undefined ? undefined : (v["stringValue"] ?? v["intValue"] ?? v["boolValue"]);
}

describe("with OTEL_EXPORTER_OTLP_ENDPOINT", () => {
  let stack: Stack;
  let collector: Awaited<ReturnType<typeof startCollector>>;
  let apiOutput: () => string;

  beforeAll(async () => {
    collector = await startCollector();
    stack = await startStack({
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        KMS_LOG_LEVEL: "debug",
        // Metrics every 300 ms instead of the default 30 s, and a resource attribute: both standard SDK variables.
        OTEL_METRIC_EXPORT_INTERVAL: "300",
        OTEL_RESOURCE_ATTRIBUTES: "deployment.environment=kms-it",
      },
    });
    apiOutput = captureOutput(stack.api);
  });
  afterAll(async () => {
    await stack?.stop();
    await new Promise((r) => collector?.server.close(r));
  });

  it("exports a span per RPC from kms-api and per HSM operation from the worker", async () => {
    const marker = Buffer.from(`OTLP-MARKER-${randomBytes(12).toString("hex")}`);
    const keyId = (await stack.client.createKey({ description: "otlp", protectionLevel: ProtectionLevel.HSM })).keyMetadata!.keyId;
    await stack.client.encrypt({ keyId, plaintext: marker, encryptionContext: { tenant: "otlp-context-value" } });
    const err = await grpcError(stack.client.decrypt({ ciphertextBlob: randomBytes(64) }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);

    // Spans go out in batches about every second.
    const found = (pred: (r: Received) => boolean) => collector.spans.find(pred);
    const encryptSpan = () => found((r) => r.service === "kms-api" && r.span.name === "kms.v1.KeyManagementService/Encrypt");
    const hsmSpan = () => found((r) => r.service === "hsm-worker" && r.span.name === "hsm.encrypt");
    for (let i = 0; i < 100 && (encryptSpan() === undefined || hsmSpan() === undefined || found((r) => r.span.name.endsWith("/Decrypt")) === undefined); i++) {
      await sleep(100);
    }
    const api = encryptSpan()!.span;
    expect(attribute(api, "rpc.method")).toBe("Encrypt");
    expect(Number(attribute(api, "rpc.grpc.status_code"))).toBe(status.OK);
    expect(attribute(api, "kms.key_id")).toBe(keyId);
    expect(attribute(api, "kms.request_id")).toMatch(/^[0-9a-f-]{36}$/);
    const decrypt = found((r) => r.service === "kms-api" && r.span.name === "kms.v1.KeyManagementService/Decrypt")!.span;
    expect(Number(attribute(decrypt, "rpc.grpc.status_code"))).toBe(status.INVALID_ARGUMENT);
    expect(attribute(decrypt, "kms.error_code")).toBe("InvalidCiphertext");

    const hsm = hsmSpan()!.span;
    expect(attribute(hsm, "kms.hsm.operation")).toBe("encrypt");
    expect(attribute(hsm, "kms.key_spec")).toBe("AES_256");
    expect(attribute(hsm, "kms.protection_level")).toBe("HSM");

    // The debug line of the Encrypt call carries its span's trace id.
    const line = apiOutput()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((r) => r["msg"] === "rpc" && r["method"] === "Encrypt");
    expect(line).toMatchObject({ trace_id: api.traceId, span_id: api.spanId });

    // Nothing secret was exported.
    const exported = collector.bodies.join("\n");
    for (const secret of [marker.toString("utf8"), ...encodings(marker), "otlp-context-value"]) expect(exported.includes(secret)).toBe(false);
  });

  it("sends metrics every OTEL_METRIC_EXPORT_INTERVAL, with OTEL_RESOURCE_ATTRIBUTES on the resource", async () => {
    await stack.client.generateRandom({ numberOfBytes: 8 });
    // With the default 30 s interval nothing would arrive within this 10 s bound.
    const has = (text: string) => collector.metricBodies.some((b) => b.includes(text));
    for (let i = 0; i < 100 && !(has('"kms.requests"') && has('"kms.hsm.sessions.in_use"')); i++) await sleep(100);
    expect({ apiMetrics: has('"kms.requests"'), workerMetrics: has('"kms.hsm.sessions.in_use"') }).toEqual({ apiMetrics: true, workerMetrics: true });
    const resourceAttribute = { key: "deployment.environment", value: { stringValue: "kms-it" } };
    const doc = JSON.parse(collector.metricBodies[0]!) as { resourceMetrics: { resource: { attributes: unknown[] } }[] };
    expect(doc.resourceMetrics[0]!.resource.attributes).toContainEqual(resourceAttribute);
  });
});
