// derive-shared-secret: ECDH between a KEY_AGREEMENT key and a peer's public key (DeriveSharedSecret). The
// peer key is a PEM or DER SubjectPublicKeyInfo file; the raw shared secret is printed in base64 (or
// written raw with --out): it is secret, and not yet a key (put it through HKDF).
import { createPublicKey } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { kms, kmsResources } from "@kms/proto";
import { handler } from "../context";
import { UsageError } from "../exit-codes";
import { asJson, printJson } from "../output";

interface DeriveOptions {
  key: string;
  keyVersion?: string;
  peerKey: string;
  out?: string;
}

/** The peer key as DER SPKI: a PEM file is converted, DER is passed on as it is (the service checks it). */
async function peerKeyDer(file: string): Promise<Buffer> {
  const bytes = await readFile(file);
  if (!bytes.subarray(0, 64).toString("latin1").includes("-----BEGIN")) return bytes;
  try {
    return createPublicKey({ key: bytes, format: "pem" }).export({ type: "spki", format: "der" });
  } catch {
    throw new UsageError(`--peer-key: ${file} is not a PEM public key`);
  }
}

export function registerKeyAgreementCommands(program: Command): void {
  program
    .command("derive-shared-secret")
    .description("ECDH with a KEY_AGREEMENT key and a peer's public key; prints the shared secret in base64 (or writes it raw with --out)")
    .requiredOption("--key <key>", "a KEY_AGREEMENT key id or alias/<name>")
    .requiredOption("--peer-key <file>", "the peer's public key: SubjectPublicKeyInfo, PEM or DER")
    .option("--key-version <id>", "key version (default: the primary)")
    .option("--out <file>", "write the raw shared secret to a file (mode 0600)")
    .action(
      handler(async ({ client, json }, opts: DeriveOptions) => {
        const res = await client.deriveSharedSecret({
          keyId: opts.key,
          keyVersionId: opts.keyVersion ?? "",
          keyAgreementAlgorithm: kmsResources.KeyAgreementAlgorithm.ECDH,
          publicKey: await peerKeyDer(opts.peerKey),
        });
        try {
          if (opts.out) await writeFile(opts.out, res.sharedSecret, { mode: 0o600 });
          if (json) printJson(asJson(kms.KeyManagementService.method.deriveSharedSecret.output, res));
          else if (!opts.out) process.stdout.write(Buffer.from(res.sharedSecret).toString("base64") + "\n");
        } finally {
          res.sharedSecret.fill(0);
        }
      }),
    );
}
