// The AWS KMS-compatible listener (KMS_AWS_LISTEN): HTTPS with the gRPC listener's certificate, or plain
// HTTP on loopback in dev mode. It takes only what the AWS JSON 1.1 protocol sends — POST / with
// Content-Type application/x-amz-json-1.1, X-Amz-Target TrentService.<Operation>, a body of at most
// 1 MiB — and refuses anything else before any work is done. Each accepted request is one call of the
// AWS front (front.ts). Request and reply bodies are zeroed once done with (they may carry plaintexts).
import { createServer as createHttpServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { AwsConfig, TlsConfig } from "@kms/config";
import type { Services } from "../../context";
import { peerOfAddress } from "../../peer-throttle";
import { AccessKeys } from "./access-keys";
import { Arns } from "./arns";
import { AwsFront } from "./front";
import type { AwsAnswer } from "./front";
import { SigV4Verifier } from "./sigv4";
import { OPERATION_NAME } from "./table";

/** AWS KMS's requests are a few KiB (a 32 KiB policy at most); nothing legitimate comes near this. */
export const MAX_BODY_BYTES = 1024 * 1024;
const CONTENT_TYPE = "application/x-amz-json-1.1";
const TARGET_PREFIX = "TrentService.";

export interface AwsListener {
  /** host:port it is bound to. */
  address: string;
  /** The endpoint to give AWS clients: http(s)://host:port. */
  endpoint: string;
  accessKeys: AccessKeys;
  /** Stops accepting; resolves when the calls in progress have been answered. */
  close(): Promise<void>;
  /** Drops every connection, in progress or not (the end of the shutdown grace period). */
  forceClose(): void;
}

export async function startAwsListener(services: Services, config: AwsConfig, tls: TlsConfig | undefined): Promise<AwsListener> {
  const accessKeys = new AccessKeys(config.accessKeysFile, services.log);
  const verifier = new SigV4Verifier({ region: config.region, lookup: (id) => accessKeys.get(id), clock: services.clock });
  const front = new AwsFront(services, verifier, new Arns(config.region, config.accountId));
  const handler = (req: IncomingMessage, res: ServerResponse) => void serve(front, req, res).catch(() => res.destroy()); // a broken connection
  const server: Server = tls ? createHttpsServer({ cert: tls.cert, key: tls.key, minVersion: "TLSv1.2" }, handler) : createHttpServer(handler);
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  const host = config.listen.host;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.listen.port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  accessKeys.watch();
  const { port } = server.address() as AddressInfo;
  const address = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  return {
    address,
    endpoint: `${tls ? "https" : "http"}://${address}`,
    accessKeys,
    close: () =>
      new Promise<void>((resolve) => {
        accessKeys.stop();
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
    forceClose: () => server.closeAllConnections(),
  };
}

async function serve(front: AwsFront, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const refusal = refuse(req);
  if (refusal) {
    req.resume();
    send(res, { httpStatus: refusal.httpStatus, requestId: "", body: Buffer.from(JSON.stringify({ __type: refusal.type, message: refusal.message })) });
    return;
  }
  const body = await readBody(req);
  if (body === undefined) {
    send(res, { httpStatus: 413, requestId: "", body: Buffer.from(JSON.stringify({ __type: "RequestEntityTooLarge", message: `the body is larger than ${MAX_BODY_BYTES} bytes` })) });
    return;
  }
  const headers: Record<string, string> = {};
  for (const [name, values] of Object.entries(req.headersDistinct)) if (values) headers[name] = values.join(",");
  const operation = headers["x-amz-target"]!.slice(TARGET_PREFIX.length);
  const answer = await front.call(operation, { method: "POST", path: "/", headers, body }, peerOfAddress(req.socket.remoteAddress ?? "unknown"));
  body.fill(0);
  send(res, answer);
}

/** Requests the AWS JSON protocol never sends, answered before anything is read or verified. */
function refuse(req: IncomingMessage): { httpStatus: number; type: string; message: string } | undefined {
  if (req.method !== "POST") return { httpStatus: 405, type: "UnknownOperationException", message: "only POST / is served" };
  if (req.url !== "/") return { httpStatus: 404, type: "UnknownOperationException", message: "only POST / is served (no other path, no query string)" };
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== CONTENT_TYPE) return { httpStatus: 415, type: "UnsupportedMediaType", message: `Content-Type must be ${CONTENT_TYPE}` };
  const target = req.headers["x-amz-target"];
  if (typeof target !== "string" || !target.startsWith(TARGET_PREFIX) || !OPERATION_NAME.test(target.slice(TARGET_PREFIX.length))) {
    return { httpStatus: 400, type: "UnknownOperationException", message: "X-Amz-Target must be TrentService.<Operation>" };
  }
  const length = Number(req.headers["content-length"] ?? "0");
  if (length > MAX_BODY_BYTES) return { httpStatus: 413, type: "RequestEntityTooLarge", message: `the body is larger than ${MAX_BODY_BYTES} bytes` };
  return undefined;
}

/** The whole body, or undefined once it passes MAX_BODY_BYTES (the chunks read so far are zeroed). */
function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      chunks.push(chunk);
      if (size > MAX_BODY_BYTES) {
        for (const c of chunks) c.fill(0);
        chunks.length = 0;
        req.removeAllListeners("data");
        req.resume();
        resolve(undefined);
      }
    });
    req.on("end", () => {
      if (size > MAX_BODY_BYTES) return;
      const body = Buffer.concat(chunks, size);
      for (const c of chunks) c.fill(0);
      resolve(body);
    });
    req.on("error", reject);
  });
}

function send(res: ServerResponse, answer: AwsAnswer): void {
  res.writeHead(answer.httpStatus, {
    "content-type": CONTENT_TYPE,
    "content-length": answer.body.length,
    ...(answer.requestId ? { "x-amzn-requestid": answer.requestId } : {}),
  });
  res.end(answer.body, () => answer.body.fill(0));
}
