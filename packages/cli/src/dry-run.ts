// --dry-run and --grant-token, for the commands whose RPCs take them (docs/grants.md). A dry run that
// would succeed prints so and exits 0; one that would fail is reported as the real call's failure would
// be (same stderr line, same exit code), so scripts branch on it the same way.
import type { Command } from "commander";
import type { DryRunMethod, KmsClient } from "@kms/client";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { kms } from "@kms/proto";
import { printJson } from "./output";

export interface CheckOptions {
  dryRun?: boolean;
  grantToken?: string[];
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** Adds --dry-run, and --grant-token unless the RPC has no grant_tokens. */
export function checkOptions(command: Command, grantTokens = true): Command {
  command.option("--dry-run", "check only (authorization, key state, input): nothing is done; exit 0 if the call would succeed");
  if (grantTokens) command.option("--grant-token <token>", "a grant token from `kms grant create` (repeatable): usable at once on every replica", collect);
  return command;
}

export function grantTokensOf(opts: CheckOptions): { grantTokens: string[] } | Record<string, never> {
  return opts.grantToken ? { grantTokens: opts.grantToken } : {};
}

type Methods = (typeof kms.KeyManagementService)["method"];

/** Runs the dry run of `method(request)` and reports it; throws the error the real call would get. */
export async function reportDryRun<K extends DryRunMethod>(client: KmsClient, json: boolean, method: K, request: MessageInitShape<Methods[K]["input"]>): Promise<void> {
  const result = await client.dryRun(method, request);
  if (!result.wouldSucceed) throw result.error;
  if (json) printJson({ dryRun: true, wouldSucceed: true });
  else process.stdout.write("dry run: the call would succeed (nothing was done)\n");
}
