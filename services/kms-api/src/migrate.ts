// One-shot migration entry (Kubernetes init container or Job): applies pending schema migrations to
// DATABASE_URL and exits. It never starts the server. kms-api also migrates at start, under the same
// advisory lock, so running both is safe.
import { ConfigError, checkDatabaseTls } from "@kms/config";
import { connect, migrate } from "@kms/db";

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url || !/^postgres(ql)?:\/\//.test(url)) {
    process.stderr.write("kms-api migrate: configuration error: DATABASE_URL: must be set to a postgres:// URL\n");
    process.exit(1);
  }
  try {
    checkDatabaseTls(process.env, url);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`kms-api migrate: configuration error: ${err.message}\n`);
    process.exit(1);
  }
  const sql = connect(url, { max: 1 });
  try {
    const applied = await migrate(sql);
    process.stdout.write(JSON.stringify({ level: "info", service: "kms-api", msg: "migrations applied", applied }) + "\n");
  } finally {
    await sql.end({ timeout: 5 });
  }
}

main().catch((err: unknown) => {
  // The message only: a postgres error's fields may quote the URL.
  const message = err instanceof Error ? `${err.name}: ${err.message}` : "unknown error";
  process.stderr.write(JSON.stringify({ level: "error", service: "kms-api", msg: "migration failed", error: message }) + "\n");
  process.exit(1);
});
