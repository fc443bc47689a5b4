// generate-data-key-pair: an RSA or EC key pair whose private key is encrypted under a symmetric key
// (GenerateDataKeyPair, or GenerateDataKeyPairWithoutPlaintext with --without-plaintext).
import type { Command } from "commander";
import { kms } from "@kms/proto";
import { handler } from "../context";
import { asJson, printJson, printText } from "../output";
import { KeySpec, enumValue, keyValue } from "../parse";

interface PairOptions {
  key: string;
  spec: string;
  context?: Record<string, string>;
  withoutPlaintext?: boolean;
}

export function registerDataKeyPairCommands(program: Command): void {
  program
    .command("generate-data-key-pair")
    .description("make a key pair: public key (SPKI DER), private key (PKCS#8 DER) encrypted under --key and in plaintext, base64")
    .requiredOption("--key <key>", "a symmetric key id or alias/<name>: it encrypts the private key")
    .requiredOption("--spec <spec>", "RSA_2048, RSA_3072, RSA_4096, EC_P256, EC_P384 or EC_P256K")
    .option("--context <key=value>", "encryption context entry (repeatable); needed again to decrypt the private key", keyValue)
    .option("--without-plaintext", "no plaintext private key (GenerateDataKeyPairWithoutPlaintext)")
    .action(
      handler(async ({ client, json }, opts: PairOptions) => {
        const request = { keyId: opts.key, keyPairSpec: enumValue(KeySpec, "KEY_SPEC", "--spec", opts.spec), encryptionContext: opts.context ?? {} };
        const M = kms.KeyManagementService.method;
        let value;
        if (opts.withoutPlaintext) {
          value = asJson(M.generateDataKeyPairWithoutPlaintext.output, await client.generateDataKeyPairWithoutPlaintext(request));
        } else {
          const res = await client.generateDataKeyPair(request);
          value = asJson(M.generateDataKeyPair.output, res);
          res.privateKeyPlaintext.fill(0);
        }
        if (json) printJson(value);
        else printText(value);
      }),
    );
}
