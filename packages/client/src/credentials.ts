// Channel credentials for a kms-api client (the CLI, the Kubernetes KMS plugin): TLS with the CA that
// signed kms-api's certificate, a client certificate for mutual TLS, and/or a bearer JWT read from a file.
import { readFile } from "node:fs/promises";
import { Metadata, credentials } from "@grpc/grpc-js";
import type { ChannelCredentials } from "@grpc/grpc-js";

export interface ClientTls {
  /** CA bundle (PEM) that kms-api's server certificate chains to. */
  ca: Buffer;
  /** Client certificate and its private key (PEM), both or neither: mutual TLS. */
  cert?: Buffer;
  key?: Buffer;
  /** File holding a bearer JWT (e.g. a projected service-account token), sent as `authorization: Bearer`. */
  tokenFile?: string;
}

/** How long a token read from its file is reused: projected tokens are rewritten well before they expire. */
export const TOKEN_FILE_REREAD_MS = 60_000;

/**
 * TLS credentials for `tls`, or undefined for plaintext (kms-api's loopback dev mode). A bearer token
 * needs TLS: grpc-js sends call credentials only over a secure channel, and so should anyone.
 */
export function clientCredentials(tls: ClientTls | undefined): ChannelCredentials | undefined {
  if (!tls) return undefined;
  const channel = credentials.createSsl(tls.ca, tls.key ?? null, tls.cert ?? null);
  if (tls.tokenFile === undefined) return channel;
  const token = tokenFromFile(tls.tokenFile);
  return credentials.combineChannelCredentials(
    channel,
    credentials.createFromMetadataGenerator((_params, callback) => {
      token().then(
        (jwt) => {
          const metadata = new Metadata();
          metadata.set("authorization", `Bearer ${jwt}`);
          callback(null, metadata);
        },
        (err: Error) => callback(err),
      );
    }),
  );
}

/** The token in `file`, re-read at most every TOKEN_FILE_REREAD_MS (rotated tokens are picked up). */
export function tokenFromFile(file: string, now: () => number = Date.now): () => Promise<string> {
  let cached: { token: string; readAt: number } | undefined;
  return async () => {
    if (cached && now() - cached.readAt < TOKEN_FILE_REREAD_MS) return cached.token;
    const token = (await readFile(file, "utf8")).trim();
    if (token === "") throw new Error(`the token file ${file} is empty`);
    cached = { token, readAt: now() };
    return token;
  };
}
