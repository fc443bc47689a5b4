#!/usr/bin/env node
// kms-audit-verify DUMP.sql — verifies the audit hash chain in a plain-format pg_dump, offline.
// Exit 0: the chain is intact; 1: it is broken (the first bad row is printed); 2: usage or read error.
import { readFileSync } from "node:fs";
import { ChainVerifier } from "./index";
import { readDump } from "./dump";

function main(argv: string[]): number {
  const file = argv[0];
  if (!file || argv.length !== 1) {
    process.stderr.write("usage: kms-audit-verify DUMP.sql   (pg_dump --format=plain, or COPY audit_events TO STDOUT)\n");
    return 2;
  }
  let dump;
  try {
    dump = readDump(readFileSync(file === "-" ? 0 : file, "utf8"));
  } catch (err) {
    process.stderr.write(`kms-audit-verify: cannot read ${file}: ${(err as Error).message}\n`);
    return 2;
  }
  const verifier = new ChainVerifier();
  for (const row of dump.rows) if (!verifier.add(row)) break;
  const result = verifier.result(dump.head);
  process.stdout.write(JSON.stringify(result) + "\n");
  return result.ok ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
