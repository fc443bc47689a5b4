// kms audit list | verify [--checkpoint FILE] | checkpoints
import { readFileSync } from "node:fs";
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { checkpointFromJson, checkpointToJson } from "@kms/audit-chain";
import type { Command } from "commander";
import { kms, kmsResources } from "@kms/proto";
import { handler } from "../context";
import { UsageError, VerificationFailed } from "../exit-codes";
import { asJson, printJson, printRows } from "../output";
import { date, positiveInt } from "../parse";

export function registerAuditCommands(program: Command): void {
  const audit = program.command("audit").description("read and verify the audit trail");

  audit
    .command("list")
    .description("list audit events, oldest first (sequence, time, principal, operation, key, result)")
    .option("--key <uuid>", "only events of this key id")
    .option("--principal <name>", "only events by this principal")
    .option("--operation <rpc>", "only events of this RPC, e.g. Decrypt")
    .option("--since <date>", "events at or after this time (ISO 8601)")
    .option("--until <date>", "events before this time (ISO 8601)")
    .option("--limit <n>", "stop after this many events", "1000")
    .action(
      handler(async ({ client, json }, opts: { key?: string; principal?: string; operation?: string; since?: string; until?: string; limit: string }) => {
        const limit = positiveInt("--limit", opts.limit);
        const events: kmsResources.AuditEvent[] = [];
        let pageToken = "";
        do {
          const page = await client.listAuditEvents({
            keyId: opts.key ?? "",
            principal: opts.principal ?? "",
            operation: opts.operation ?? "",
            ...(opts.since ? { startTime: timestampFromDate(date("--since", opts.since)) } : {}),
            ...(opts.until ? { endTime: timestampFromDate(date("--until", opts.until)) } : {}),
            pageSize: Math.min(1000, limit),
            pageToken,
          });
          events.push(...page.events);
          pageToken = page.nextPageToken;
        } while (pageToken !== "" && events.length < limit);
        const shown = events.slice(0, limit);
        if (json) printJson({ events: shown.map((e) => asJson(kmsResources.AuditEventSchema, e)) });
        else printRows(shown.map((e) => [String(e.sequence), e.time ? timestampDate(e.time).toISOString() : "", e.principal, e.operation, e.keyId, e.resultCode]));
      }),
    );

  audit
    .command("verify")
    .description("check the audit log's hash chain; exit 0 if intact, 3 if not")
    .option("--start <sequence>", "first sequence to check (default: the first)")
    .option("--end <sequence>", "last sequence to check (default: the last)")
    .option("--checkpoint <file>", "a signed checkpoint (JSON, from `kms audit checkpoints --json` or an `audit chain head` log line) the chain must reach")
    .action(
      handler(async ({ client, json }, opts: { start?: string; end?: string; checkpoint?: string }) => {
        const checkpoint = opts.checkpoint === undefined ? undefined : readCheckpoint(opts.checkpoint);
        const res = await client.verifyAuditLog({
          startSequence: BigInt(opts.start ? positiveInt("--start", opts.start) : 0),
          endSequence: BigInt(opts.end ? positiveInt("--end", opts.end) : 0),
          ...(checkpoint ? { checkpoint } : {}),
        });
        if (json) printJson(asJson(kms.KeyManagementService.method.verifyAuditLog.output, res));
        else {
          process.stdout.write(
            res.ok
              ? `ok: ${res.verifiedCount} events verified${res.checkpointMatched ? ", the checkpoint matches" : ""}\n`
              : `BROKEN at sequence ${res.firstBadSequence} (${res.verifiedCount} verified before it): ${res.problem}\n`,
          );
        }
        if (!res.ok) throw new VerificationFailed(`audit log broken at sequence ${res.firstBadSequence}`);
      }),
    );

  audit
    .command("checkpoints")
    .description("list signed checkpoints of the audit chain, newest first, and the key that signs them")
    .option("--limit <n>", "stop after this many checkpoints", "100")
    .action(
      handler(async ({ client, json }, opts: { limit: string }) => {
        const limit = positiveInt("--limit", opts.limit);
        const checkpoints: kmsResources.AuditCheckpoint[] = [];
        let publicKey = "";
        let pageToken = "";
        do {
          const page = await client.listAuditCheckpoints({ pageSize: Math.min(1000, limit), pageToken });
          checkpoints.push(...page.checkpoints);
          publicKey = page.publicKey;
          pageToken = page.nextPageToken;
        } while (pageToken !== "" && checkpoints.length < limit);
        const shown = checkpoints.slice(0, limit).map((c) =>
          checkpointToJson({
            sequence: Number(c.sequence),
            headHash: Buffer.from(c.headHash, "hex"),
            time: c.time ? timestampDate(c.time) : new Date(0),
            keyId: c.keyId,
            signature: Buffer.from(c.signature),
          }),
        );
        if (json) printJson({ checkpoints: shown, publicKey });
        else printRows(shown.map((c) => [String(c.sequence), c.time, c.headHash, c.keyId]));
      }),
    );
}

/** A checkpoint file: checkpointToJson()'s JSON, or an `audit chain head` log line holding it. */
function readCheckpoint(file: string): kmsResources.AuditCheckpoint {
  let c;
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as { checkpoint?: unknown };
    c = checkpointFromJson(parsed.checkpoint ?? parsed);
  } catch (err) {
    throw new UsageError(`--checkpoint ${file}: ${(err as Error).message}`);
  }
  return create(kmsResources.AuditCheckpointSchema, {
    sequence: BigInt(c.sequence),
    headHash: c.headHash.toString("hex"),
    time: timestampFromDate(c.time),
    keyId: c.keyId,
    signature: c.signature,
  });
}
