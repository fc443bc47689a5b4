// kms grant create | list | list-retirable | retire | revoke (docs/grants.md).
import type { Command } from "commander";
import { kms } from "@kms/proto";
import { handler } from "../context";
import { checkOptions, reportDryRun } from "../dry-run";
import type { CheckOptions } from "../dry-run";
import { UsageError } from "../exit-codes";
import { asJson, printJson, printRows, printText } from "../output";
import { keyValue } from "../parse";

const M = kms.KeyManagementService.method;
const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerGrantCommands(program: Command): void {
  const grant = program.command("grant").description("grants: let another principal use a key for some operations");

  checkOptions(
    grant
      .command("create <key>")
      .description("grant --grantee the --operation(s) on a key; prints the grant id and token")
      .requiredOption("--grantee <principal>", "who may use the key")
      .requiredOption("--operation <name>", "Encrypt, Decrypt, GenerateDataKey, ... (repeatable)", collect)
      .option("--retiring <principal>", "who may retire the grant")
      .option("--context-equals <key=value>", "only with exactly this encryption context (repeatable)", keyValue)
      .option("--context-subset <key=value>", "only with an encryption context holding these pairs (repeatable)", keyValue)
      .option("--name <name>", "a name: the same name and terms again give the same grant"),
    false,
  ).action(
    handler(
      async (
        { client, json },
        keyId: string,
        opts: CheckOptions & { grantee: string; operation: string[]; retiring?: string; contextEquals?: Record<string, string>; contextSubset?: Record<string, string>; name?: string },
      ) => {
        if (opts.contextEquals && opts.contextSubset) throw new UsageError("give --context-equals or --context-subset, not both");
        const request = {
          keyId,
          granteePrincipal: opts.grantee,
          operations: opts.operation,
          retiringPrincipal: opts.retiring ?? "",
          name: opts.name ?? "",
          constraints: { encryptionContextEquals: opts.contextEquals ?? {}, encryptionContextSubset: opts.contextSubset ?? {} },
        };
        if (opts.dryRun) return reportDryRun(client, json, "createGrant", request);
        const value = asJson(M.createGrant.output, await client.createGrant(request));
        json ? printJson(value) : printText(value);
      },
    ),
  );

  grant
    .command("list <key>")
    .description("the key's grants, every page (grant id, grantee, operations, retiring principal, name)")
    .option("--grantee <principal>", "only grants to this principal")
    .action(
      handler(async ({ client, json }, keyId: string, opts: { grantee?: string }) => {
        const grants: kms.Grant[] = [];
        let pageToken = "";
        do {
          const page = await client.listGrants({ keyId, pageSize: 1000, pageToken, granteePrincipal: opts.grantee ?? "" });
          grants.push(...page.grants);
          pageToken = page.nextPageToken;
        } while (pageToken !== "");
        if (json) printJson({ grants: grants.map((g) => asJson(kms.GrantSchema, g)) });
        else printRows(grants.map((g) => [g.grantId, g.granteePrincipal, g.operations.join(","), g.retiringPrincipal, g.name]));
      }),
    );

  grant
    .command("list-retirable")
    .description("grants the caller (or, for KMS_ADMINS, --principal) may retire, every page")
    .option("--principal <principal>", "another retiring principal (KMS_ADMINS only)")
    .action(
      handler(async ({ client, json }, opts: { principal?: string }) => {
        const grants: kms.Grant[] = [];
        let pageToken = "";
        do {
          const page = await client.listRetirableGrants({ retiringPrincipal: opts.principal ?? "", pageSize: 1000, pageToken });
          grants.push(...page.grants);
          pageToken = page.nextPageToken;
        } while (pageToken !== "");
        if (json) printJson({ grants: grants.map((g) => asJson(kms.GrantSchema, g)) });
        else printRows(grants.map((g) => [g.grantId, g.keyId, g.granteePrincipal, g.operations.join(",")]));
      }),
    );

  checkOptions(
    grant
      .command("retire")
      .description("retire a grant, by --token or by --key and --grant-id")
      .option("--token <token>", "the grant token")
      .option("--key <key>", "the grant's key")
      .option("--grant-id <id>", "the grant id"),
    false,
  ).action(
    handler(async ({ client, json }, opts: CheckOptions & { token?: string; key?: string; grantId?: string }) => {
      if ((opts.token === undefined) === (opts.key === undefined && opts.grantId === undefined)) throw new UsageError("give --token, or --key and --grant-id");
      const request = { grantToken: opts.token ?? "", keyId: opts.key ?? "", grantId: opts.grantId ?? "" };
      if (opts.dryRun) return reportDryRun(client, json, "retireGrant", request);
      const value = asJson(M.retireGrant.output, await client.retireGrant(request));
      json ? printJson(value) : printText(value);
    }),
  );

  checkOptions(grant.command("revoke <key> <grant-id>").description("revoke a grant of a key (kms:RevokeGrant)"), false).action(
    handler(async ({ client, json }, keyId: string, grantId: string, opts: CheckOptions) => {
      if (opts.dryRun) return reportDryRun(client, json, "revokeGrant", { keyId, grantId });
      await client.revokeGrant({ keyId, grantId });
      if (json) printJson({ revoked: grantId });
    }),
  );
}
