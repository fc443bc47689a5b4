// kms admin verify-restore: unlike every other command it does not call kms-api. It needs what kms-api
// itself has (the database and the worker's socket), so it runs kms-api's verify-restore
// (services/kms-api/dist/verify-restore.js) here, in kms-api's environment, and exits with its code.
//
// kms admin rotate-root calls kms-api's RotateRootKey (KMS_ADMINS only) until the rotation is finished:
// each call is one step of the rotation row in the database, so this loop holds no state of its own and a
// run killed anywhere resumes when started again.
import { spawn } from "node:child_process";
import path from "node:path";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Command } from "commander";
import { kms } from "@kms/proto";
import { handler } from "../context";
import { ExitWith, UsageError } from "../exit-codes";
import { printJson } from "../output";
import { positiveInt } from "../parse";

const HELP = `
Runs locally, not through --address: start it where kms-api runs (its pod or host), with kms-api's
environment: DATABASE_URL and KMS_WORKER_SOCKET (or KMS_DATA_DIR), the worker started on the restored
token with KMS_CREATE_ROOT_KEY=false. It only reads.

Checks every key version's material unwraps under a root key the worker holds (without using it), the
audit chain verifies through its last signed checkpoint, and what reconcile checks (stray token objects,
keys without a primary version). Exit codes: 0 the restore is usable, 3 problems found (each named, e.g. a
missing root key id), 1 the check could not run. See docs/operations.md.`;

/** kms-api's verify-restore script, from the installed @kms/kms-api (a workspace of this repository). */
function verifyRestoreScript(): string {
  let manifest: string;
  try {
    manifest = require.resolve("@kms/kms-api/package.json");
  } catch {
    throw new UsageError("kms admin verify-restore needs kms-api installed beside the CLI (run it where kms-api runs, or `node services/kms-api/dist/verify-restore.js`)");
  }
  return path.join(path.dirname(manifest), "dist", "verify-restore.js");
}

const ROTATE_HELP = `
Calls kms-api (--address) as a principal in KMS_ADMINS. Makes a new root key set on the worker's token,
re-wraps every key version under it inside the worker or the HSM (never in the clear outside), then, once
KMS_ROOT_RETIRE_DELAY_MS has passed, destroys the old roots that no version names. Started again, it
resumes the unfinished rotation. HSM-level versions made under the old root cannot move (their material is
non-extractable): the old root set is kept for them, and the output says how many and why. Progress goes to
stderr; the final state (new and old root ids, counts) to stdout. Exit codes: 0 done (old roots gone), 3 done
but the old root set is kept (retained versions), 4 not an admin, 5 unavailable. See docs/operations.md.`;

const STATE_NAMES: Record<number, string> = {
  [kms.RootRotationState.REWRAPPING]: "rewrapping",
  [kms.RootRotationState.RETIRING]: "retiring",
  [kms.RootRotationState.RETAINING]: "retaining",
  [kms.RootRotationState.DONE]: "done",
};

function rotationJson(r: kms.RotateRootKeyResponse) {
  return {
    rotationId: r.rotationId,
    state: STATE_NAMES[r.state] ?? String(r.state),
    newRootKeyId: r.newRootKeyId,
    oldRootKeyId: r.oldRootKeyId,
    legacyRootKeyId: r.legacyRootKeyId,
    rewrappedVersions: Number(r.rewrappedVersions),
    remainingVersions: Number(r.remainingVersions),
    retainedVersions: Number(r.retainedVersions),
    retainedReason: r.retainedReason,
    destroyedRootKeyIds: r.destroyedRootKeyIds,
    sourceRootKeyId: r.sourceRootKeyId,
  };
}

function describeRotation(r: ReturnType<typeof rotationJson>): string {
  const lines = [
    `root rotation ${r.rotationId}: ${r.state}`,
    `new root key ${r.newRootKeyId}; old root key ${r.oldRootKeyId}${r.legacyRootKeyId ? `, legacy root ${r.legacyRootKeyId}` : ""}`,
    `re-wrapped ${r.rewrappedVersions} key version(s); old roots destroyed: ${r.destroyedRootKeyIds.join(", ") || "none"}`,
  ];
  if (r.sourceRootKeyId !== "") {
    lines.push(
      r.state === "done"
        ? `moved off the source root file ${r.sourceRootKeyId}: nothing names it now. The worker cannot destroy a file: unset KMS_SOURCE_ROOT_KEY_FILE, restart the worker, and delete the file (and its backups once no older Postgres backup needs them)`
        : `moving SOFTWARE keys off the source root file ${r.sourceRootKeyId} (KMS_SOURCE_ROOT_KEY_FILE): keep it until this is done`,
    );
  }
  if (r.retainedVersions > 0) lines.push(`KEPT: ${r.retainedVersions} key version(s) stay under old root(s) still on the token: ${r.retainedReason}`);
  return lines.join("\n") + "\n";
}

export function registerAdminCommands(program: Command): void {
  const admin = program.command("admin").description("operator tasks run where kms-api runs");

  admin
    .command("verify-restore")
    .description("check a restored database and HSM before traffic reaches them; exit 0 if usable, 3 if not, 1 if it could not run")
    .addHelpText("after", HELP)
    .action(async (_opts: unknown, command: Command) => {
      const json = command.optsWithGlobals<{ json?: boolean }>().json === true;
      const child = spawn(process.execPath, [verifyRestoreScript(), ...(json ? ["--json"] : [])], { stdio: "inherit", env: process.env });
      const code = await new Promise<number>((resolve, reject) => {
        child.once("error", reject);
        child.once("exit", (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)));
      });
      if (code !== 0) throw new ExitWith(code);
    });

  admin
    .command("rotate-root")
    .description("rotate the HSM root key: re-wrap every key version under a new root, retire the old one (admins; resumable)")
    .option("--batch-size <n>", "key versions re-wrapped per step (1-100)", "50")
    .addHelpText("after", ROTATE_HELP)
    .action(
      handler(async ({ client, json }, opts: { batchSize: string }) => {
        const batchSize = positiveInt("--batch-size", opts.batchSize);
        let rotationId = "";
        let steps = 0;
        for (;;) {
          const r = await client.rotateRootKey({ rotationId, batchSize });
          rotationId = r.rotationId;
          steps++;
          const state = STATE_NAMES[r.state] ?? String(r.state);
          process.stderr.write(`rotate-root: step ${steps}: ${state}, ${r.rewrappedVersions} re-wrapped, ${r.remainingVersions} under old roots (${r.retainedVersions} kept)\n`);
          if (r.state === kms.RootRotationState.DONE || r.state === kms.RootRotationState.RETAINING) {
            const out = rotationJson(r);
            if (json) printJson(out);
            else process.stdout.write(describeRotation(out));
            if (r.state === kms.RootRotationState.RETAINING) throw new ExitWith(3);
            return;
          }
          if (r.state === kms.RootRotationState.RETIRING && r.retireTime !== undefined) {
            // Old roots stay usable until replicas' caches and in-flight calls have drained.
            const wait = timestampDate(r.retireTime).getTime() - Date.now();
            if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(wait + 50, 5000)));
          }
        }
      }),
    );
}
