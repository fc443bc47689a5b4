// kms audit list | verify
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Command } from "commander";
import { kms, kmsResources } from "@kms/proto";
import { handler } from "../context";
import { VerificationFailed } from "../exit-codes";
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
    .action(
      handler(async ({ client, json }, opts: { start?: string; end?: string }) => {
        const res = await client.verifyAuditLog({
          startSequence: BigInt(opts.start ? positiveInt("--start", opts.start) : 0),
          endSequence: BigInt(opts.end ? positiveInt("--end", opts.end) : 0),
        });
        if (json) printJson(asJson(kms.KeyManagementService.method.verifyAuditLog.output, res));
        else process.stdout.write(res.ok ? `ok: ${res.verifiedCount} events verified\n` : `BROKEN at sequence ${res.firstBadSequence} (${res.verifiedCount} verified before it)\n`);
        if (!res.ok) throw new VerificationFailed(`audit log broken at sequence ${res.firstBadSequence}`);
      }),
    );
}
