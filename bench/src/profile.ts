// `npm run bench:profile -- <Method>`: CPU cost per request of each process under h2load load (as fast as
// the service answers, or paced with KMS_BENCH_RPS), and optionally V8 CPU profiles (KMS_PROFILE_DIR).
// CPU ms per request, unlike ops/s, hardly depends on what else runs on the machine, so it compares
// changes even on a busy box.
import { create, toBinary } from "@bufbuild/protobuf";
import { createPromiseClient, kms, kmsResources } from "@kms/proto";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";
import { cpuMs, cpuOfCommand, machineBusyMs } from "./cpu";
import { createBenchDatabase } from "./database";
import { h2load } from "./h2load";
import { startStack } from "./stack";

const adminUrl = process.env.KMS_BENCH_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";
const seconds = Number(process.env.KMS_BENCH_SECONDS || 5);
const streams = Number(process.env.KMS_BENCH_STREAMS || 64);
/**
 * KMS_BENCH_RPS: a paced load of that many calls a second instead of as many as the service answers.
 * At low rates each call goes through alone, and pays every process's wake-up by itself.
 */
const rps = Number(process.env.KMS_BENCH_RPS || 0);

/** Peak resident set of a process so far, in MB (VmHWM). */
function peakRssMb(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return kb ? Math.round(Number(kb[1]) / 1024) : 0;
}

async function main(): Promise<void> {
  const method = process.argv[2] ?? "Encrypt";
  const dir = mkdtempSync(path.join(os.tmpdir(), "kms-profile-"));
  const database = await createBenchDatabase(adminUrl);
  const profileDir = process.env.KMS_PROFILE_DIR;
  const stack = await startStack(dir, database.url, profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : []);
  const client = createPromiseClient(kms.KeyManagementService, stack.address);
  try {
    const keyId = (await client.createKey({ description: "profile", keySpec: kmsResources.KeySpec.AES_256, protectionLevel: kmsResources.ProtectionLevel.HSM })).keyMetadata!.keyId;
    const plaintext = randomBytes(256);
    const encryptionContext = { purpose: "bench" };
    const n = Number(process.env.KMS_BATCH_ITEMS || 100);
    const requests: Record<string, () => Promise<Uint8Array>> = {
      Encrypt: async () => toBinary(kms.EncryptRequestSchema, create(kms.EncryptRequestSchema, { keyId, plaintext, encryptionContext })),
      Decrypt: async () => toBinary(kms.DecryptRequestSchema, create(kms.DecryptRequestSchema, { ciphertextBlob: (await client.encrypt({ keyId, plaintext, encryptionContext })).ciphertextBlob, encryptionContext })),
      GenerateDataKey: async () => toBinary(kms.GenerateDataKeyRequestSchema, create(kms.GenerateDataKeyRequestSchema, { keyId, keySpec: kmsResources.DataKeySpec.AES_256, encryptionContext })),
      BatchEncrypt: async () => toBinary(kms.BatchEncryptRequestSchema, create(kms.BatchEncryptRequestSchema, { items: Array.from({ length: n }, () => ({ keyId, plaintext, encryptionContext })) })),
      "AsymmetricSign-ECDSA": () => signRequest(kmsResources.KeySpec.EC_P256, kmsResources.SigningAlgorithm.ECDSA_SHA_256),
      "AsymmetricSign-RSA": () => signRequest(kmsResources.KeySpec.RSA_2048, kmsResources.SigningAlgorithm.RSA_PSS_SHA_256),
    };
    async function signRequest(keySpec: kmsResources.KeySpec, algorithm: kmsResources.SigningAlgorithm): Promise<Uint8Array> {
      const signKey = (await client.createKey({ description: "profile", keySpec, keyUsage: kmsResources.KeyUsage.SIGN_VERIFY, protectionLevel: kmsResources.ProtectionLevel.HSM })).keyMetadata!.keyId;
      return toBinary(kms.AsymmetricSignRequestSchema, create(kms.AsymmetricSignRequestSchema, { keyId: signKey, algorithm, input: { case: "digest", value: randomBytes(32) } }));
    }
    const make = requests[method];
    if (!make) throw new Error(`unknown method ${method}; one of ${Object.keys(requests).join(", ")}`);
    const request = Buffer.from(await make());
    const stats = postgres(database.url, { max: 1, onnotice: () => {} });
    const transactions = async () => {
      await new Promise((r) => setTimeout(r, 1200)); // backends report their counts at most once a second
      const [row] = await stats<{ n: string }[]>`SELECT (xact_commit + xact_rollback)::text AS n FROM pg_stat_database WHERE datname = current_database()`;
      return Number(row!.n);
    };
    const target = { address: stack.address, path: `/${kms.KeyManagementService.typeName}/${method.split("-")[0]}`, request, warmupSeconds: 0, streams, connections: 1 };
    // A paced run would leave the code cold (interpreted, not yet optimised) for most of its calls: warm
    // it up at full speed first, as the unpaced run's own first second does.
    if (rps > 0) await h2load({ ...target, seconds: 3 });
    const transactionsBefore = await transactions();
    const before = stack.pids.map(cpuMs);
    const machineBefore = machineBusyMs();
    const postgresBefore = cpuOfCommand("postgres");
    const r = await h2load({ ...target, seconds, rps });
    const after = stack.pids.map(cpuMs);
    const [apiRss, workerRss] = stack.pids.map(peakRssMb);
    const machine = machineBusyMs() - machineBefore;
    const postgresMs = cpuOfCommand("postgres") - postgresBefore;
    const transactionsDuring = (await transactions()) - transactionsBefore;
    const [failed] = await stats<{ n: number; codes: string | null }[]>`
      SELECT count(*)::int AS n, string_agg(DISTINCT error_code, ',') AS codes FROM audit_events WHERE result_code <> 'OK'`;
    await stats.end();

    const items = method.startsWith("Batch") ? n : 1;
    const per = (i: number) => ((after[i]! - before[i]!) / (r.requests * items)).toFixed(3);
    console.log(`${method}: ${r.opsPerSec.toFixed(0)} calls/s (${(r.opsPerSec * items).toFixed(0)} items/s), ${r.failed} failed, ${failed!.n} gRPC errors ${failed!.codes ?? ""}; CPU ms per item: kms-api ${per(0)}, hsm-worker ${per(1)}, ` +
        `Postgres ${(postgresMs / (r.requests * items)).toFixed(3)}, ` +
        `Postgres transactions per item ${(transactionsDuring / (r.requests * items)).toFixed(3)}, ` +
        `everything else (h2load, the rest of the machine) ${((machine - postgresMs - (after[0]! - before[0]!) - (after[1]! - before[1]!)) / (r.requests * items)).toFixed(3)}; ` +
        `peak RSS: kms-api ${apiRss} MB, hsm-worker ${workerRss} MB`);
  } finally {
    client.close();
    if (process.env.KMS_PROFILE_OUTPUT) console.log(stack.output());
    await stack.stop();
    await database.drop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
