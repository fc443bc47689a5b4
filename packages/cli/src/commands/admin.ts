// kms admin verify-restore: unlike every other command it does not call kms-api. It needs what kms-api
// itself has (the database and the worker's socket), so it runs kms-api's verify-restore
// (services/kms-api/dist/verify-restore.js) here, in kms-api's environment, and exits with its code.
import { spawn } from "node:child_process";
import path from "node:path";
import type { Command } from "commander";
import { ExitWith, UsageError } from "../exit-codes";

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
}
