// sign / verify / get-public-key. For every algorithm but Ed25519 and ML-DSA the CLI hashes the input itself
// and sends the digest, so files of any size can be signed; Ed25519 and ML-DSA sign the message (at most
// 4096 bytes), ML-DSA also a precomputed external μ (--external-mu).
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { kms } from "@kms/proto";
import { handler } from "../context";
import { UsageError, VerificationFailed } from "../exit-codes";
import { openInput, readAll } from "../io";
import { checkOptions, grantTokensOf, reportDryRun } from "../dry-run";
import type { CheckOptions } from "../dry-run";
import { asJson, printJson } from "../output";
import { SigningAlgorithm, enumValue } from "../parse";

const MAX_MESSAGE = 4096;

const HASH: Partial<Record<kms.AsymmetricSignRequest["algorithm"], string>> = {
  [SigningAlgorithm.RSA_PSS_SHA_256]: "sha256",
  [SigningAlgorithm.RSA_PKCS1_SHA_256]: "sha256",
  [SigningAlgorithm.ECDSA_SHA_256]: "sha256",
  [SigningAlgorithm.ECDSA_SHA_384]: "sha384",
};

interface SignOptions {
  key: string;
  algorithm: string;
  keyVersion?: string;
  in: string;
  digest?: string;
  externalMu?: string;
}

/** The request's `input` oneof: a digest (given, or computed here) or, for Ed25519, the message. */
async function signingInput(opts: SignOptions) {
  const algorithm = enumValue(SigningAlgorithm, "SIGNING_ALGORITHM", "--algorithm", opts.algorithm);
  const hash = HASH[algorithm];
  if (opts.externalMu !== undefined) {
    if (algorithm !== SigningAlgorithm.ML_DSA_SHAKE_256) throw new UsageError("--external-mu is only for ML_DSA_SHAKE_256");
    if (!/^([0-9a-fA-F]{2})+$/.test(opts.externalMu)) throw new UsageError("--external-mu: expected hex");
    return { algorithm, input: { case: "externalMu" as const, value: Buffer.from(opts.externalMu, "hex") } };
  }
  if (opts.digest !== undefined) {
    if (hash === undefined) throw new UsageError(`--digest does not apply to ${SigningAlgorithm[algorithm]}: it signs the message`);
    if (!/^([0-9a-fA-F]{2})+$/.test(opts.digest)) throw new UsageError("--digest: expected hex");
    return { algorithm, input: { case: "digest" as const, value: Buffer.from(opts.digest, "hex") } };
  }
  const input = openInput(opts.in);
  if (hash === undefined) {
    const message = await readAll(input, MAX_MESSAGE).catch((err: unknown) => {
      throw err instanceof RangeError ? new UsageError(`${SigningAlgorithm[algorithm]} signs messages of at most ${MAX_MESSAGE} bytes`) : err;
    });
    return { algorithm, input: { case: "message" as const, value: message } };
  }
  const digest = createHash(hash);
  for await (const chunk of input) digest.update(chunk as Buffer);
  return { algorithm, input: { case: "digest" as const, value: digest.digest() } };
}

function signingOptions(command: Command): Command {
  return checkOptions(command)
    .requiredOption("--key <key>", "key id or alias/<name>")
    .requiredOption("--algorithm <alg>", "RSA_PSS_SHA_256, RSA_PKCS1_SHA_256, ECDSA_SHA_256, ECDSA_SHA_384, ED25519 or ML_DSA_SHAKE_256")
    .option("--key-version <id>", "key version (default: the primary)")
    .option("--in <file>", "message file, - for stdin", "-")
    .option("--digest <hex>", "a precomputed digest instead of --in (not for ED25519 or ML_DSA_SHAKE_256)")
    .option("--external-mu <hex>", "ML_DSA_SHAKE_256: a precomputed 64-byte external μ instead of --in");
}

export function registerSigningCommands(program: Command): void {
  signingOptions(program.command("sign"))
    .description("sign a message; prints the signature in base64 (or writes it raw with --out)")
    .option("--out <file>", "write the raw signature to a file")
    .action(
      handler(async ({ client, json }, opts: SignOptions & CheckOptions & { out?: string }) => {
        const request = { keyId: opts.key, keyVersionId: opts.keyVersion ?? "", ...grantTokensOf(opts), ...(await signingInput(opts)) };
        if (opts.dryRun) return reportDryRun(client, json, "asymmetricSign", request);
        const res = await client.asymmetricSign(request);
        if (opts.out) await writeFile(opts.out, res.value);
        if (json) printJson(asJson(kms.KeyManagementService.method.asymmetricSign.output, res));
        else if (!opts.out) process.stdout.write(Buffer.from(res.value).toString("base64") + "\n");
      }),
    );

  signingOptions(program.command("verify"))
    .description("verify a signature; exit 0 if valid, 3 if not")
    .option("--signature <base64>", "the signature, base64")
    .option("--signature-file <file>", "the signature, raw bytes")
    .action(
      handler(async ({ client, json }, opts: SignOptions & CheckOptions & { signature?: string; signatureFile?: string }) => {
        if ((opts.signature === undefined) === (opts.signatureFile === undefined)) throw new UsageError("give exactly one of --signature and --signature-file");
        const value = opts.signatureFile ? await readFile(opts.signatureFile) : Buffer.from(opts.signature!, "base64");
        const request = { keyId: opts.key, keyVersionId: opts.keyVersion ?? "", value, ...grantTokensOf(opts), ...(await signingInput(opts)) };
        if (opts.dryRun) return reportDryRun(client, json, "asymmetricVerify", request);
        const res = await client.asymmetricVerify(request);
        if (json) printJson({ valid: res.value, keyId: res.keyId, keyVersionId: res.keyVersionId });
        else process.stdout.write(res.value ? "valid\n" : "invalid\n");
        if (!res.value) throw new VerificationFailed("signature is not valid");
      }),
    );

  program
    .command("get-public-key <key>")
    .description("print a key's public key (PEM)")
    .option("--key-version <id>", "key version (default: the primary)")
    .action(
      handler(async ({ client, json }, keyId: string, opts: { keyVersion?: string }) => {
        const res = await client.getPublicKey({ keyId, keyVersionId: opts.keyVersion ?? "" });
        if (json) printJson(asJson(kms.KeyManagementService.method.getPublicKey.output, res));
        else process.stdout.write(res.publicKey.endsWith("\n") ? res.publicKey : res.publicKey + "\n");
      }),
    );
}
