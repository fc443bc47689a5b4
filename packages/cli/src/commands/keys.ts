// Key commands: create, describe, list, enable / disable, rotate, schedule / cancel deletion.
import type { Command } from "commander";
import { kms, kmsResources } from "@kms/proto";
import { handler } from "../context";
import { asJson, printJson, printRows, printText } from "../output";
import { KeySpec, KeyUsage, ProtectionLevel, enumValue, keyValue, positiveInt } from "../parse";

const M = kms.KeyManagementService.method;

/** Every key command answers { key_metadata }: print it as that response (JSON) or as its fields (text). */
function printKey(json: boolean, response: { keyMetadata?: kmsResources.KeyMetadata | undefined }): void {
  const metadata = response.keyMetadata ? asJson(kmsResources.KeyMetadataSchema, response.keyMetadata) : {};
  if (json) printJson({ keyMetadata: metadata });
  else printText(metadata);
}

export function registerKeyCommands(program: Command): void {
  program
    .command("create-key")
    .description("create a customer master key; prints its metadata")
    .option("--description <text>", "description", "")
    .option("--key-spec <spec>", "AES_256 (default), AES_128, RSA_2048, EC_P256, ED25519, HMAC_SHA256, ...")
    .option("--key-usage <usage>", "ENCRYPT_DECRYPT (default for AES), SIGN_VERIFY, GENERATE_VERIFY_MAC, KEY_AGREEMENT")
    .option("--protection-level <level>", "HSM or SOFTWARE")
    .option("--tag <key=value>", "a tag (repeatable)", keyValue)
    .option("--rotate", "enable automatic rotation")
    .action(
      handler(async ({ client, json }, opts: { description: string; keySpec?: string; keyUsage?: string; protectionLevel?: string; tag?: Record<string, string>; rotate?: boolean }) => {
        const res = await client.createKey({
          description: opts.description,
          ...(opts.keySpec ? { keySpec: enumValue(KeySpec, "KEY_SPEC", "--key-spec", opts.keySpec) } : {}),
          ...(opts.keyUsage ? { keyUsage: enumValue(KeyUsage, "KEY_USAGE", "--key-usage", opts.keyUsage) } : {}),
          ...(opts.protectionLevel ? { protectionLevel: enumValue(ProtectionLevel, "PROTECTION_LEVEL", "--protection-level", opts.protectionLevel) } : {}),
          tags: opts.tag ?? {},
          enableAutomaticRotation: opts.rotate === true,
        });
        printKey(json, res);
      }),
    );

  program
    .command("describe-key <key>")
    .description("show a key's metadata (key id or alias/<name>)")
    .action(handler(async ({ client, json }, keyId: string) => printKey(json, await client.describeKey({ keyId }))));

  program
    .command("list-keys")
    .description("list keys, every page (one line per key: id, state, spec, usage, description)")
    .option("--page-size <n>", "keys per request", "100")
    .option("--limit <n>", "stop after this many keys")
    .action(
      handler(async ({ client, json }, opts: { pageSize: string; limit?: string }) => {
        const pageSize = positiveInt("--page-size", opts.pageSize);
        const limit = opts.limit ? positiveInt("--limit", opts.limit) : Infinity;
        const keys: kmsResources.KeyMetadata[] = [];
        let pageToken = "";
        do {
          const page = await client.listKeys({ pageSize, pageToken });
          keys.push(...page.keys);
          pageToken = page.nextPageToken;
        } while (pageToken !== "" && keys.length < limit);
        const shown = keys.slice(0, limit === Infinity ? undefined : limit);
        if (json) printJson({ keys: shown.map((k) => asJson(kmsResources.KeyMetadataSchema, k)) });
        else printRows(shown.map((k) => [k.keyId, kmsResources.KeyState[k.keyState] ?? "", kmsResources.KeySpec[k.keySpec] ?? "", kmsResources.KeyUsage[k.keyUsage] ?? "", k.description]));
      }),
    );

  program
    .command("enable-key <key>")
    .description("enable a disabled key")
    .action(handler(async ({ client, json }, keyId: string) => printKey(json, await client.enableKey({ keyId }))));

  program
    .command("disable-key <key>")
    .description("disable a key (it can no longer encrypt or decrypt)")
    .action(handler(async ({ client, json }, keyId: string) => printKey(json, await client.disableKey({ keyId }))));

  program
    .command("rotate <key>")
    .description("create a new primary key version (CreateKeyVersion); old versions still decrypt")
    .action(
      handler(async ({ client, json }, keyId: string) => {
        const value = asJson(M.createKeyVersion.output, await client.createKeyVersion({ keyId }));
        if (json) printJson(value);
        else printText((value as { keyVersion?: never }).keyVersion ?? {});
      }),
    );

  program
    .command("schedule-deletion <key>")
    .description("schedule a key's deletion after a waiting period")
    .option("--days <n>", "pending window, 7..366 (default 30)")
    .action(
      handler(async ({ client, json }, keyId: string, opts: { days?: string }) => {
        const pendingWindowInDays = opts.days ? positiveInt("--days", opts.days) : 0;
        printKey(json, await client.scheduleKeyDeletion({ keyId, pendingWindowInDays }));
      }),
    );

  program
    .command("cancel-deletion <key>")
    .description("cancel a scheduled deletion (the key comes back disabled)")
    .action(handler(async ({ client, json }, keyId: string) => printKey(json, await client.cancelKeyDeletion({ keyId }))));
}
