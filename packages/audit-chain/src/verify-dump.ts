#!/usr/bin/env node
// kms-audit-verify DUMP.sql [--checkpoint FILE --public-key FILE] — verifies the audit hash chain in a
// plain-format pg_dump, offline. With a signed checkpoint (JSON, as `kms audit checkpoints --json` or the
// `audit chain head` log line gives it) and the checkpoint key (PEM, from ListAuditCheckpoints), the chain
// must also reach the checkpoint with the same hash: a cut or wiped tail fails.
// Exit 0: the chain is intact; 1: it is broken (the first bad row is printed); 2: usage or read error.
import { readFileSync } from "node:fs";
import { checkpointFromJson, verifyCheckpoint } from "./checkpoint";
import type { SignedCheckpoint } from "./checkpoint";
import { ChainVerifier } from "./index";
import { readDump } from "./dump";

const USAGE =
  "usage: kms-audit-verify DUMP.sql [--checkpoint CHECKPOINT.json --public-key KEY.pem]\n" +
  "       (pg_dump --format=plain, or COPY audit_events TO STDOUT)\n";

function parseArgs(argv: string[]): { file: string; checkpoint?: string; publicKey?: string } | undefined {
  const out: { file?: string; checkpoint?: string; publicKey?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--checkpoint" || a === "--public-key") {
      const v = argv[++i];
      if (v === undefined) return undefined;
      if (a === "--checkpoint") out.checkpoint = v;
      else out.publicKey = v;
    } else if (out.file === undefined) out.file = a;
    else return undefined;
  }
  if (out.file === undefined || (out.checkpoint === undefined) !== (out.publicKey === undefined)) return undefined;
  return out as { file: string; checkpoint?: string; publicKey?: string };
}

function main(argv: string[]): number {
  const args = parseArgs(argv);
  if (!args) {
    process.stderr.write(USAGE);
    return 2;
  }
  let dump;
  let checkpoint: SignedCheckpoint | undefined;
  let publicKey: string | undefined;
  try {
    dump = readDump(readFileSync(args.file === "-" ? 0 : args.file, "utf8"));
    if (args.checkpoint && args.publicKey) {
      checkpoint = checkpointFromJson(JSON.parse(readFileSync(args.checkpoint, "utf8")));
      publicKey = readFileSync(args.publicKey, "utf8");
    }
  } catch (err) {
    process.stderr.write(`kms-audit-verify: cannot read input: ${(err as Error).message}\n`);
    return 2;
  }
  if (checkpoint && publicKey && !verifyCheckpoint(checkpoint, publicKey)) {
    process.stdout.write(JSON.stringify({ verifiedCount: 0, ok: false, firstBadSequence: 0, problem: "the checkpoint's signature does not verify with the public key", checkpointMatched: false }) + "\n");
    return 1;
  }
  const verifier = new ChainVerifier(undefined, checkpoint);
  for (const row of dump.rows) if (!verifier.add(row)) break;
  const result = verifier.result(dump.head);
  process.stdout.write(JSON.stringify(result) + "\n");
  return result.ok ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
