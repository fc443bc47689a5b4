#!/usr/bin/env node
// Plays kube-apiserver once against a running plugin, for operators and the by-hand steps of
// docs/kubernetes-encryption.md: Status, then an Encrypt + Decrypt of a random 32-byte seed.
//   node services/kube-kms-plugin/dist/probe.js unix:///path/to/kms.sock
import { randomBytes, timingSafeEqual } from "node:crypto";
import { createPromiseClient } from "@kms/proto";
import { k8sKmsV2 } from "@kms/proto/internal";

async function main(target: string | undefined): Promise<number> {
  if (!target?.startsWith("unix://")) {
    process.stderr.write("usage: probe.js unix:///path/to/kms.sock\n");
    return 2;
  }
  const client = createPromiseClient(k8sKmsV2.KeyManagementService, target);
  try {
    const status = await client.status({}, { deadline: 10_000 });
    process.stdout.write(`${JSON.stringify({ status: { version: status.version, healthz: status.healthz, keyId: status.keyId } })}\n`);
    const seed = randomBytes(32);
    const encrypted = await client.encrypt({ plaintext: seed, uid: `probe-${Date.now()}` }, { deadline: 10_000 });
    const decrypted = await client.decrypt({ ciphertext: encrypted.ciphertext, keyId: encrypted.keyId, uid: `probe-${Date.now()}`, annotations: encrypted.annotations }, { deadline: 10_000 });
    const same = decrypted.plaintext.length === seed.length && timingSafeEqual(decrypted.plaintext, seed);
    process.stdout.write(`${JSON.stringify({ encrypt: { keyId: encrypted.keyId, ciphertextBytes: encrypted.ciphertext.length }, roundTrip: same ? "ok" : "mismatch" })}\n`);
    return status.healthz === "ok" && same && encrypted.keyId === status.keyId ? 0 : 1;
  } catch (err) {
    process.stderr.write(`probe failed: ${(err as Error).message}\n`);
    return 1;
  } finally {
    client.close();
  }
}

main(process.argv[2]).then((code) => process.exit(code));
