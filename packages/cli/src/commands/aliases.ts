// kms alias create | update | delete | list
import type { Command } from "commander";
import { kms, kmsResources } from "@kms/proto";
import { handler } from "../context";
import { asJson, printJson, printRows, printText } from "../output";

const M = kms.KeyManagementService.method;

export function registerAliasCommands(program: Command): void {
  const alias = program.command("alias").description("manage aliases (alias/<name> → key)");

  alias
    .command("create <alias> <key>")
    .description("point a new alias at a key")
    .action(
      handler(async ({ client, json }, aliasName: string, keyId: string) => {
        const value = asJson(M.createAlias.output, await client.createAlias({ aliasName, keyId }));
        json ? printJson(value) : printText((value as { alias?: never }).alias ?? {});
      }),
    );

  alias
    .command("update <alias> <key>")
    .description("point an existing alias at another key")
    .action(
      handler(async ({ client, json }, aliasName: string, keyId: string) => {
        const value = asJson(M.updateAlias.output, await client.updateAlias({ aliasName, keyId }));
        json ? printJson(value) : printText((value as { alias?: never }).alias ?? {});
      }),
    );

  alias
    .command("delete <alias>")
    .description("delete an alias (the key stays)")
    .action(
      handler(async ({ client, json }, aliasName: string) => {
        await client.deleteAlias({ aliasName });
        if (json) printJson({ deleted: aliasName });
      }),
    );

  alias
    .command("list")
    .description("list aliases, every page (alias, key id)")
    .option("--key <key>", "only the aliases of this key")
    .action(
      handler(async ({ client, json }, opts: { key?: string }) => {
        const aliases: kmsResources.Alias[] = [];
        let pageToken = "";
        do {
          const page = opts.key ? await client.listAliasesByKeyId({ keyId: opts.key, pageSize: 1000, pageToken }) : await client.listAliases({ pageSize: 1000, pageToken });
          aliases.push(...page.aliases);
          pageToken = page.nextPageToken;
        } while (pageToken !== "");
        if (json) printJson({ aliases: aliases.map((a) => asJson(kmsResources.AliasSchema, a)) });
        else printRows(aliases.map((a) => [a.aliasName, a.keyId]));
      }),
    );
}
