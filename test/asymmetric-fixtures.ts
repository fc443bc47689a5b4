// What the asymmetric-key tests share (asymmetric.test.ts, asymmetric-encryption.test.ts): both
// protection levels, key creation that checks what it got, and the openssl CLI on scratch files.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { kmsResources } from "@kms/proto";
import { startStack } from "./harness";
import type { Stack } from "./harness";

export const LEVELS = [
  ["HSM", kmsResources.ProtectionLevel.HSM],
  ["SOFTWARE", kmsResources.ProtectionLevel.SOFTWARE],
] as const;

async function createKey(stack: Stack, keySpec: kmsResources.KeySpec, keyUsage: kmsResources.KeyUsage, protectionLevel: kmsResources.ProtectionLevel) {
  const { keyMetadata } = await stack.client.createKey({ keySpec, keyUsage, protectionLevel });
  expect(keyMetadata?.keySpec).toBe(keySpec);
  expect(keyMetadata?.protectionLevel).toBe(protectionLevel);
  return keyMetadata!;
}

/** Runs the openssl CLI on files in a scratch directory under `tmp`; throws (with openssl's output) when it exits non-zero. */
function openssl(tmp: string, args: string[], files: Record<string, Uint8Array | string>): string {
  const dir = mkdtempSync(path.join(tmp, "ossl-"));
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  try {
    return execFileSync("openssl", args, { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** As openssl(), returning the file `output` it wrote. */
function opensslBinary(tmp: string, args: string[], files: Record<string, Uint8Array | string>, output: string): Buffer {
  const dir = mkdtempSync(path.join(tmp, "ossl-"));
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), content);
  try {
    execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
    return readFileSync(path.join(dir, output));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** s of a DER ECDSA signature SEQUENCE { INTEGER r, INTEGER s } (short-form lengths: our curves). */
export function derS(signature: Uint8Array): bigint {
  const sig = Buffer.from(signature);
  const rLength = sig[3]!;
  const sStart = 4 + rLength;
  const sLength = sig[sStart + 1]!;
  return BigInt(`0x${sig.subarray(sStart + 2, sStart + 2 + sLength).toString("hex")}`);
}

/**
 * One test file's stack and scratch directory (started before its tests, stopped after them), with the
 * helpers above bound to them.
 */
export function useAsymmetricStack() {
  let stack: Stack | undefined;
  let tmp = "";
  jest.setTimeout(120_000);
  beforeAll(async () => {
    stack = await startStack();
    tmp = mkdtempSync(path.join(os.tmpdir(), "kms-asym-it-"));
  });
  afterAll(async () => {
    await stack?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });
  return {
    get stack(): Stack {
      return stack!;
    },
    createKey: (keySpec: kmsResources.KeySpec, keyUsage: kmsResources.KeyUsage, protectionLevel: kmsResources.ProtectionLevel) =>
      createKey(stack!, keySpec, keyUsage, protectionLevel),
    openssl: (args: string[], files: Record<string, Uint8Array | string>) => openssl(tmp, args, files),
    opensslBinary: (args: string[], files: Record<string, Uint8Array | string>, output: string) => opensslBinary(tmp, args, files, output),
  };
}
