// `npm run bench`: measures a bare grpc-js echo server, then Encrypt, Decrypt and GenerateDataKey on
// one HSM and one SOFTWARE key of a freshly started kms-api, each in its own window, and prints the
// figures next to each other. Not a test: there are no thresholds yet.
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { createPromiseClient, kms, kmsResources } from "@kms/proto";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { measure, startEcho } from "./children";
import { createBenchDatabase } from "./database";
import { ECHO_PATH } from "./echo-server";
import type { LoadArgs } from "./load";
import { formatTable, gitCommit, machine, writeReport } from "./report";
import type { Report, Row } from "./report";
import { startStack } from "./stack";
import type { Stack } from "./stack";

const PLAINTEXT_BYTES = 256;
const { KeySpec, ProtectionLevel, DataKeySpec } = kmsResources;

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!(n > 0)) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

const settings = {
  concurrency: positive("KMS_BENCH_CONCURRENCY", 32),
  channels: positive("KMS_BENCH_CHANNELS", 1),
  warmupSeconds: 1,
  seconds: positive("KMS_BENCH_SECONDS", 5),
  plaintextBytes: PLAINTEXT_BYTES,
};
const adminUrl = process.env.KMS_BENCH_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";

/** Cleanups run last-in first-out, once, whether the run ends, fails or is interrupted. */
const cleanups: Array<() => Promise<void> | void> = [];
let cleaning: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (let next = cleanups.pop(); next; next = cleanups.pop()) {
      try {
        await next();
      } catch (err) {
        console.error(`bench: cleanup failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  })();
  return cleaning;
}
let interrupted = false;
const interruption = new AbortController();

/** Encodes a request once; the load generator resends these bytes. */
function encode<D extends DescMessage>(schema: D, init: MessageInitShape<D>): string {
  return Buffer.from(toBinary(schema, create(schema, init))).toString("base64");
}

function loadArgs(address: string, method: { name: string }, request: string): LoadArgs {
  const { concurrency, channels, warmupSeconds, seconds } = settings;
  const path = method.name === "Echo" ? ECHO_PATH : `/${kms.KeyManagementService.typeName}/${method.name}`;
  return { address, path, request, concurrency, channels, warmupSeconds, seconds, deadlineMs: 10_000 };
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const add = async (operation: string, protection: string, args: LoadArgs) => {
    process.stderr.write(`bench: ${operation} ${protection} ...\n`);
    const result = await measure(args, interruption.signal);
    const echo = rows[0]?.opsPerSec ?? result.opsPerSec;
    rows.push({ operation, protection, ...result, ratioToEcho: result.opsPerSec / echo });
  };

  // The baseline first, alone on the machine.
  const echo = await startEcho();
  cleanups.push(echo.stop);
  await add("Echo", "-", loadArgs(echo.address, { name: "Echo" }, randomBytes(PLAINTEXT_BYTES).toString("base64")));
  await echo.stop();

  const dir = mkdtempSync(path.join(os.tmpdir(), "kms-bench-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const database = await createBenchDatabase(adminUrl);
  cleanups.push(database.drop);
  let stack: Stack | undefined;
  try {
    stack = await startStack(dir, database.url);
    cleanups.push(stack.stop);
    const client = createPromiseClient(kms.KeyManagementService, stack.address);
    cleanups.push(() => client.close());
    const method = kms.KeyManagementService.method;

    // Random and never printed: the figures must not depend on what the plaintext looks like.
    const plaintext = randomBytes(PLAINTEXT_BYTES);
    const encryptionContext = { purpose: "bench" };
    for (const level of [ProtectionLevel.HSM, ProtectionLevel.SOFTWARE]) {
      const protection = ProtectionLevel[level];
      const created = await client.createKey({ description: "bench", keySpec: KeySpec.AES_256, protectionLevel: level });
      const keyId = created.keyMetadata?.keyId;
      if (!keyId) throw new Error(`CreateKey ${protection} returned no key id`);

      const encrypt = encode(kms.EncryptRequestSchema, { keyId, plaintext, encryptionContext });
      await add("Encrypt", protection, loadArgs(stack.address, method.encrypt, encrypt));

      // Decrypt needs a real ciphertext of this key.
      const { ciphertextBlob } = await client.encrypt({ keyId, plaintext, encryptionContext });
      const decrypt = encode(kms.DecryptRequestSchema, { ciphertextBlob, encryptionContext });
      await add("Decrypt", protection, loadArgs(stack.address, method.decrypt, decrypt));

      const dataKey = encode(kms.GenerateDataKeyRequestSchema, { keyId, keySpec: DataKeySpec.AES_256, encryptionContext });
      await add("GenerateDataKey", protection, loadArgs(stack.address, method.generateDataKey, dataKey));
    }
  } catch (err) {
    if (stack && !interrupted) console.error(`bench: service output (tail):\n${stack.output().slice(-4000)}`);
    throw err;
  }

  const report: Report = {
    date: new Date().toISOString(),
    commit: gitCommit(path.resolve(__dirname, "..")),
    machine: machine(),
    settings,
    rows,
  };
  console.log(formatTable(report));
  console.log(`\nwritten: ${path.relative(process.cwd(), writeReport(path.resolve(__dirname, "..", "results"), report))}`);
  const errors = rows.reduce((sum, r) => sum + r.errors, 0);
  if (errors > 0) throw new Error(`${errors} calls failed during the measured windows; the figures above are not comparable`);
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    // What fails after this point fails because the services are being stopped: not worth printing.
    interrupted = true;
    interruption.abort();
    console.error(`bench: ${signal}, stopping`);
    process.exitCode = 130;
    void cleanUp().finally(() => process.exit());
  });
}

main()
  .catch((err: unknown) => {
    if (interrupted) return;
    console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  })
  .then(() => cleanUp())
  .finally(() => process.exit());
