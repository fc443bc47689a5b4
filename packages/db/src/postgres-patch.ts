// Start-up check that patches/postgres+3.4.9.patch is applied to the postgres.js that will run.
// `npm ci --ignore-scripts` (or an image built without the postinstall step) would otherwise ship the
// unpatched library silently, and with it a process that dies when a backend goes away mid-transaction.
import { readFileSync } from "node:fs";
import path from "node:path";

/** Text the patch adds to each file it changes (see patches/README.md). */
const MARKERS: Record<string, string> = {
  "cjs/src/connection.js": "Local patch (porsager/postgres#1208, as #1209)",
  "cjs/src/index.js": "Local patch: once the transaction's connection has closed",
};

/** The package folder of the postgres.js this process loads (its CommonJS entry is cjs/src/index.js). */
function installedPostgresDir(): string {
  return path.resolve(path.dirname(require.resolve("postgres")), "..", "..");
}

/** The files of the installed postgres.js that lack the patch (empty when it is applied). */
export function unpatchedPostgresFiles(packageDir = installedPostgresDir()): string[] {
  return Object.entries(MARKERS)
    .filter(([file, marker]) => !readFileSync(path.join(packageDir, file), "utf8").includes(marker))
    .map(([file]) => file);
}

/** Throws, naming the files, when the installed postgres.js is not the patched one. */
export function assertPostgresPatched(packageDir?: string): void {
  const missing = unpatchedPostgresFiles(packageDir);
  if (missing.length > 0) {
    throw new Error(`postgres.js is not patched (${missing.join(", ")}): run \`npm ci\` with its postinstall step (patches/README.md)`);
  }
}
