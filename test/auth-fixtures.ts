// Certificates, principals and helpers the caller-identity tests share (auth.test.ts,
// auth-identities.test.ts): one private CA for clients, and a stranger CA nobody trusts.
import { readFileSync } from "node:fs";
import net from "node:net";
import { credentials } from "@grpc/grpc-js";
import { startApi } from "@kms/dev-stack";
import { createPromiseClient, kms } from "@kms/proto";
import { startStack } from "./harness";
import type { KmsClient, Stack } from "./harness";
import { issue, makeCa } from "./certs";

export const ALICE = "spiffe://example.org/ns/apps/sa/alice";
// A principal from a certificate's CN is "cn:" + the CN, so that no CN can pose as a URI SAN.
export const BOB = "cn:bob";
export const ADMIN = "spiffe://example.org/ns/kms/sa/admin";
export const CAROL = "spiffe://example.org/ns/apps/sa/carol";

/** A fresh CA and the certificates the tests present (files in a temporary directory). */
function makeAuthPki() {
  const pki = makeCa("clients");
  const strangers = makeCa("strangers");
  return {
    pki,
    server: issue(pki, "server", { cn: "kms", sans: "IP:127.0.0.1,DNS:localhost" }),
    alice: issue(pki, "alice", { cn: "ignored-when-uri-san", sans: `URI:${ALICE}` }),
    bob: issue(pki, "bob", { cn: "bob" }),
    carol: issue(pki, "carol", { sans: `URI:${CAROL}` }),
    admin: issue(pki, "admin", { cn: "kms-admin", sans: `URI:${ADMIN}` }),
    // The attack of finding 10: no URI SAN, and a CN spelled like the SPIFFE admin's id.
    fakeAdmin: issue(pki, "fake-admin", { cn: ADMIN }),
    twoUris: issue(pki, "two", { sans: "URI:spiffe://a/x,URI:spiffe://a/y" }),
    expired: issue(pki, "expired", { cn: "late", days: -1 }),
    stranger: issue(strangers, "stranger", { cn: "stranger" }),
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** A TLS client trusting `caCert`, showing `who`'s certificate (or none). */
function tlsClient(caCert: string, address: string, who: { cert: string; key: string } | undefined): KmsClient {
  const creds = who ? credentials.createSsl(readFileSync(caCert), readFileSync(who.key), readFileSync(who.cert)) : credentials.createSsl(readFileSync(caCert));
  return createPromiseClient(kms.KeyManagementService, address, creds);
}

/** stack.apiEnv without the dev-mode switch (or another variable) the harness sets for its plaintext stack. */
function apiEnvWithout(stack: Stack, name: string, env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const out = { ...stack.apiEnv, ...env };
  delete out[name];
  return out;
}

/** kms-api's answer to a configuration: "started" (then stopped), or why it exited before it was ready. */
export async function startOutcome(env: NodeJS.ProcessEnv): Promise<string> {
  try {
    const api = await startApi(env, { timeoutMs: 15000 });
    await api.stop();
    return "started";
  } catch (err) {
    return (err as Error).message;
  }
}

export const refusedWith = (line: string) => `kms-api exited with code 1 before it was ready; its output:\nkms-api: configuration error: ${line}`;

/**
 * One test file's stack (started before its tests, stopped after them) and a fresh PKI, with the
 * helpers above bound to them.
 */
export function useAuthStack() {
  let stack: Stack | undefined;
  const certs = makeAuthPki();
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });
  return {
    ...certs,
    get stack(): Stack {
      return stack!;
    },
    tlsClient: (address: string, who: { cert: string; key: string } | undefined) => tlsClient(certs.pki.caCert, address, who),
    apiEnvWithout: (name: string, env: NodeJS.ProcessEnv = {}) => apiEnvWithout(stack!, name, env),
  };
}
