// `node services/kms-api/dist/verify-restore.js [--json]` (also `kms admin verify-restore`): checks a
// restored database against the worker's HSM before traffic reaches them (restore-check.ts), in kms-api's
// environment: DATABASE_URL, KMS_WORKER_SOCKET (or KMS_DATA_DIR). Prints what it found (one JSON object
// with --json) and exits 0 when the restore is usable, 3 when something is missing or broken, 1 when the
// check could not run (no database, no worker, HSM unavailable). It only reads; see docs/operations.md.
import { connect } from "@kms/db";
import { toolEnvironment } from "./reconcile";
import { checkRestore } from "./restore-check";
import type { RestoreReport } from "./restore-check";
import { WorkerClient } from "./worker-client";

/** Each worker call checks up to 50 versions (an RSA unwrap takes milliseconds): longer than an ordinary call. */
const WORKER_DEADLINE_MS = 60_000;

export async function verifyRestore(env: NodeJS.ProcessEnv = process.env): Promise<RestoreReport> {
  const { databaseUrl, workerSocket } = toolEnvironment(env);
  const worker = new WorkerClient(workerSocket, WORKER_DEADLINE_MS);
  const sql = connect(databaseUrl, { max: 1 });
  try {
    return await checkRestore(sql, worker);
  } finally {
    worker.close();
    await sql.end({ timeout: 5 });
  }
}

export function describeReport(r: RestoreReport): string {
  const v = r.keyVersions;
  const a = r.audit;
  const checkpoint = a.lastCheckpoint === null ? "no signed checkpoint yet" : `through the signed checkpoint at sequence ${a.lastCheckpoint.sequence}`;
  const lines = [
    `worker: ${r.worker.description}; root key ${r.worker.rootKeyId || "(none)"}${r.worker.legacyRootKeyId ? `, legacy root ${r.worker.legacyRootKeyId}` : ""}` +
      (r.worker.retiringRootKeyIds.length > 0 ? `, retiring roots ${r.worker.retiringRootKeyIds.join(", ")}` : ""),
    `key versions: ${v.ok} of ${v.checked} unwrap under the worker's roots`,
    `audit chain: ${a.ok ? `${a.verifiedCount} events verified, ${checkpoint}` : `BROKEN at sequence ${a.firstBadSequence}: ${a.problem}`}`,
  ];
  lines.push(r.ok ? "ok: the restore is usable" : `PROBLEMS (${r.problems.length}):`, ...r.problems.map((p) => `  - ${p}`));
  return lines.join("\n") + "\n";
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const json = args.includes("--json");
  const unknown = args.filter((a) => a !== "--json");
  if (unknown.length > 0) {
    process.stderr.write(`usage: verify-restore [--json] (unknown: ${unknown.join(" ")})\n`);
    process.exit(1);
  }
  verifyRestore().then(
    (report) => {
      process.stdout.write(json ? JSON.stringify(report) + "\n" : describeReport(report));
      process.exit(report.ok ? 0 : 3);
    },
    (err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(json ? JSON.stringify({ error: { message } }) + "\n" : `verify-restore: could not run: ${message}\n`);
      process.exit(1);
    },
  );
}
