// `npm run bench`: the service measured side by side with the limits it runs on, in the same run
// (absolute figures drift from run to run on a shared machine; the ratios are what compare):
//   - a bare grpc-js echo server: same payload, same h2load load; its CPU per call; its latency at 1 in
//     flight with the same grpc-js client as the service's
//   - SoftHSM's own signing and AES-GCM rates through pkcs11js (raw-softhsm.ts)
//   - one replica, for two replicas on one database and one audit chain
// Prints each figure (the targets of issue 20) with its ratio and target, saves the run as JSON and SVG
// under bench/results/. Not a test: nothing here fails on a figure.
import { create, toBinary } from "@bufbuild/protobuf";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { createPromiseClient, kms, kmsResources } from "@kms/proto";
import { ensureSoftHsmToken } from "@kms/softhsm";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";
import { chartSvg } from "./chart";
import { measure, startEcho } from "./children";
import { cpuMeter } from "./cpu";
import { createBenchDatabase } from "./database";
import { ECHO_PATH } from "./echo-server";
import { ceilingFigure, ceilingRatioFigure, formatFigures, overheadFigure, ratioFigure } from "./figures";
import type { Figure } from "./figures";
import { h2load } from "./h2load";
import type { H2loadResult } from "./h2load";
import type { LoadResult } from "./load";
import type { RawArgs } from "./raw-softhsm";
import { gitCommit, machine } from "./report";
import { sampleRss } from "./rss";
import { startStack } from "./stack";
import type { Stack } from "./stack";

const { KeySpec, KeyUsage, ProtectionLevel, DataKeySpec, SigningAlgorithm } = kmsResources;

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!(n > 0)) throw new Error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
  return n;
}

const settings = {
  seconds: positive("KMS_BENCH_SECONDS", 5),
  warmupSeconds: 1,
  /** Concurrent streams h2load keeps open on its connection. */
  streams: positive("KMS_BENCH_STREAMS", 64),
  /** Sequential calls of the 1-in-flight rows (after a tenth as many unmeasured). */
  sequentialCalls: positive("KMS_BENCH_CALLS", 2000),
  plaintextBytes: 256,
  batchItems: 100,
  workerSessions: 8,
  callMode: (process.env.KMS_PKCS11_CALL_MODE || "inline") as "inline" | "thread-pool",
};
const adminUrl = process.env.KMS_BENCH_DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";

const cleanups: Array<() => Promise<void> | void> = [];
async function cleanUp(): Promise<void> {
  for (let next = cleanups.pop(); next; next = cleanups.pop()) {
    try {
      await next();
    } catch (err) {
      console.error(`bench: cleanup failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

function encode<D extends DescMessage>(schema: D, init: MessageInitShape<D>): Buffer {
  return Buffer.from(toBinary(schema, create(schema, init)));
}

const rpc = (name: string) => `/${kms.KeyManagementService.typeName}/${name}`;

interface Throughput extends H2loadResult {
  /** CPU ms per call of each of `pids` (throughput's argument), over the measured window. */
  cpuPerCall: number[];
}

/** h2load on one connection; `pids`: processes whose CPU per call to count (from the end of the warm-up). */
async function throughput(address: string, methodPath: string, request: Buffer, pids: number[] = []): Promise<Throughput> {
  process.stderr.write(`bench: ${methodPath} ...\n`);
  // h2load measures from the end of its warm-up; so does the meter (a few ms apart, of seconds).
  const meter = new Promise<ReturnType<typeof cpuMeter>>((resolve) => setTimeout(() => resolve(cpuMeter(pids)), settings.warmupSeconds * 1000));
  const r = await h2load({ address, path: methodPath, request, seconds: settings.seconds, warmupSeconds: settings.warmupSeconds, streams: settings.streams, connections: 1 });
  const cpu = (await meter).stop();
  if (r.failed > 0) throw new Error(`${methodPath}: ${r.failed} HTTP/2 requests failed`);
  return { ...r, cpuPerCall: cpu.map((ms) => ms / Math.max(1, r.requests)) };
}

function rawRate(args: RawArgs): Promise<number> {
  process.stderr.write(`bench: raw SoftHSM ${args.algorithm} ...\n`);
  const child = spawn(process.execPath, [path.join(__dirname, "raw-softhsm.js"), JSON.stringify(args)], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve((JSON.parse(out) as { opsPerSec: number }).opsPerSec) : reject(new Error(`raw-softhsm exited with ${code}`))));
  });
}

/** Sequential calls (1 in flight) from a grpc-js client in its own process: the latency a caller feels alone. */
function oneInFlight(address: string, methodPath: string, request: Buffer): Promise<LoadResult> {
  process.stderr.write(`bench: ${methodPath} at 1 in flight, ${settings.sequentialCalls} calls ...\n`);
  const calls = settings.sequentialCalls;
  return measure({ address, path: methodPath, request: request.toString("base64"), concurrency: 1, channels: 1, warmupSeconds: 0, seconds: 0, deadlineMs: 10_000, calls, warmupCalls: Math.ceil(calls / 10) });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "kms-bench-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const payload = randomBytes(settings.plaintextBytes);

  // The limits first, each alone on the machine.
  const echo = await startEcho();
  cleanups.push(echo.stop);
  const echoRow = await throughput(echo.address, ECHO_PATH, payload, [echo.pid]);
  const echoOps = echoRow.opsPerSec;
  const echoCpuPerCall = echoRow.cpuPerCall[0]!;
  const echoAlone = await oneInFlight(echo.address, ECHO_PATH, payload);
  await echo.stop();

  const token = ensureSoftHsmToken(path.join(dir, "softhsm"), "kms-bench");
  const raw = (algorithm: RawArgs["algorithm"]) =>
    rawRate({ module: token.module, confPath: token.confPath, pinFile: token.pinFile, label: token.label, algorithm, sessions: settings.workerSessions, seconds: settings.seconds, warmupSeconds: settings.warmupSeconds, callMode: settings.callMode });
  const rawEcdsa = await raw("ECDSA_P256");
  const rawRsa = await raw("RSA_2048_PSS");
  const rawGcmEncrypt = await raw("AES_GCM_ENCRYPT");
  const rawGcmDecrypt = await raw("AES_GCM_DECRYPT");

  const database = await createBenchDatabase(adminUrl);
  cleanups.push(database.drop);
  let stack: Stack | undefined;
  let replica: Stack | undefined;
  const figures: Figure[] = [];
  try {
    stack = await startStack(dir, database.url);
    cleanups.push(stack.stop);
    const client = createPromiseClient(kms.KeyManagementService, stack.address);
    cleanups.push(() => client.close());
    const address = stack.address;

    const aes = async (protectionLevel: kmsResources.ProtectionLevel) =>
      (await client.createKey({ description: "bench", keySpec: KeySpec.AES_256, protectionLevel })).keyMetadata!.keyId;
    const hsmKey = await aes(ProtectionLevel.HSM);
    const softwareKey = await aes(ProtectionLevel.SOFTWARE);
    const signer = async (keySpec: kmsResources.KeySpec) =>
      (await client.createKey({ description: "bench", keySpec, keyUsage: KeyUsage.SIGN_VERIFY, protectionLevel: ProtectionLevel.HSM })).keyMetadata!.keyId;
    const ecKey = await signer(KeySpec.EC_P256);
    const rsaKey = await signer(KeySpec.RSA_2048);
    const encryptionContext = { purpose: "bench" };
    const sql = postgres(database.url, { max: 1, onnotice: () => {} });
    cleanups.push(() => sql.end());
    const [{ before }] = (await sql`SELECT coalesce(max(sequence), 0)::text AS before FROM audit_events`) as unknown as [{ before: string }];

    const rss = sampleRss(stack.pids);
    const encryptReq = (keyId: string) => encode(kms.EncryptRequestSchema, { keyId, plaintext: payload, encryptionContext });
    const decryptReq = async (keyId: string) =>
      encode(kms.DecryptRequestSchema, { ciphertextBlob: (await client.encrypt({ keyId, plaintext: payload, encryptionContext })).ciphertextBlob, encryptionContext });
    const dataKeyReq = (keyId: string) => encode(kms.GenerateDataKeyRequestSchema, { keyId, keySpec: DataKeySpec.AES_256, encryptionContext });

    const encRow = await throughput(address, rpc("Encrypt"), encryptReq(hsmKey), stack.pids);
    const encHsm = encRow.opsPerSec;
    const [apiCpuPerEncrypt, workerCpuPerEncrypt] = encRow.cpuPerCall as [number, number];
    const decHsm = (await throughput(address, rpc("Decrypt"), await decryptReq(hsmKey))).opsPerSec;
    const gdkHsm = (await throughput(address, rpc("GenerateDataKey"), dataKeyReq(hsmKey))).opsPerSec;
    figures.push(ratioFigure("Encrypt 256 B, HSM AES-256 key, audited / echo", "ops/s", encHsm, echoOps, 0.4));
    figures.push(ratioFigure("Decrypt 256 B, HSM key / echo", "ops/s", decHsm, echoOps, 0.4));
    figures.push(ratioFigure("GenerateDataKey AES_256, HSM key / echo", "ops/s", gdkHsm, echoOps, 0.35));
    figures.push(ceilingRatioFigure("kms-api CPU per Encrypt / echo server's per call", "ms", apiCpuPerEncrypt, echoCpuPerCall, 2));

    const digest = randomBytes(32);
    const ecOps = (await throughput(address, rpc("AsymmetricSign"), encode(kms.AsymmetricSignRequestSchema, { keyId: ecKey, algorithm: SigningAlgorithm.ECDSA_SHA_256, input: { case: "digest", value: digest } }))).opsPerSec;
    const rsaOps = (await throughput(address, rpc("AsymmetricSign"), encode(kms.AsymmetricSignRequestSchema, { keyId: rsaKey, algorithm: SigningAlgorithm.RSA_PSS_SHA_256, input: { case: "digest", value: digest } }))).opsPerSec;
    figures.push(ratioFigure("AsymmetricSign ECDSA P-256, HSM key / raw SoftHSM", "ops/s", ecOps, rawEcdsa, 0.3));
    figures.push(ratioFigure("AsymmetricSign RSA-2048 PSS, HSM key / raw SoftHSM", "ops/s", rsaOps, rawRsa, 0.85));

    const n = settings.batchItems;
    const batchEnc = encode(kms.BatchEncryptRequestSchema, { items: Array.from({ length: n }, () => ({ keyId: hsmKey, plaintext: payload, encryptionContext })) });
    const blob = (await client.encrypt({ keyId: hsmKey, plaintext: payload, encryptionContext })).ciphertextBlob;
    const batchDec = encode(kms.BatchDecryptRequestSchema, { items: Array.from({ length: n }, () => ({ ciphertextBlob: blob, encryptionContext })) });
    const batchEncItems = (await throughput(address, rpc("BatchEncrypt"), batchEnc)).opsPerSec * n;
    const batchDecItems = (await throughput(address, rpc("BatchDecrypt"), batchDec)).opsPerSec * n;
    figures.push(ratioFigure(`BatchEncrypt items/s (${n} a call) / raw SoftHSM AES-GCM encrypt`, "items/s", batchEncItems, rawGcmEncrypt, 0.6));
    figures.push(ratioFigure(`BatchDecrypt items/s (${n} a call) / raw SoftHSM AES-GCM decrypt`, "items/s", batchDecItems, rawGcmDecrypt, 0.6));

    const alone = await oneInFlight(address, rpc("Encrypt"), encryptReq(hsmKey));
    figures.push(overheadFigure("Encrypt p50 at 1 in flight / echo p50, same client", "ms", alone.p50Ms, echoAlone.p50Ms, 0.7));
    figures.push(ceilingFigure("Encrypt p99 at 1 in flight (limit: echo p99)", "ms", alone.p99Ms, 3, echoAlone.p99Ms));

    process.stderr.write("bench: Encrypt at 64 in flight (grpc-js client) ...\n");
    const latency = await measure({
      address,
      path: rpc("Encrypt"),
      request: encryptReq(hsmKey).toString("base64"),
      concurrency: 64,
      channels: 1,
      warmupSeconds: settings.warmupSeconds,
      seconds: settings.seconds,
      deadlineMs: 10_000,
    });
    figures.push(ceilingRatioFigure("Encrypt p99 / p50 at 64 calls in flight", "ms", latency.p99Ms, latency.p50Ms, 2.5));

    // SOFTWARE keys, for reference (no target).
    const encSw = (await throughput(address, rpc("Encrypt"), encryptReq(softwareKey))).opsPerSec;
    // One replica again, warm and just before two: the Encrypt row above ran first after start-up.
    const oneReplica = (await throughput(address, rpc("Encrypt"), encryptReq(hsmKey))).opsPerSec;
    const peakRss = rss.stop();
    figures.push(ceilingFigure("RSS of kms-api + hsm-worker under that load", "MB", peakRss / 1e6, 300));

    // Two replicas, each with its own worker (same token and root key), on one database and one audit
    // chain, each under the load one replica had just before.
    replica = await startStack(dir, database.url, [], 1);
    cleanups.push(replica.stop);
    const replicaAddress = replica.address;
    const [one, two] = await Promise.all([address, replicaAddress].map((a) => throughput(a, rpc("Encrypt"), encryptReq(hsmKey))));
    figures.push(ratioFigure("Encrypt on two replicas, combined / one replica", "ops/s", one!.opsPerSec + two!.opsPerSec, oneReplica, 0.85));
    const verified = await client.verifyAuditLog({});
    figures.push(ceilingFigure(`audit chain breaks after it (VerifyAuditLog, ${verified.verifiedCount} rows)`, "breaks", verified.ok ? 0 : 1, 0));
    if (!verified.ok) console.error(`bench: audit chain broken at sequence ${verified.firstBadSequence}: ${verified.problem}`);

    const [{ errors }] = (await sql`SELECT count(*)::int AS errors FROM audit_events WHERE sequence > ${before} AND result_code <> 'OK'`) as unknown as [{ errors: number }];
    const report = {
      date: new Date().toISOString(),
      commit: gitCommit(path.resolve(__dirname, "..")),
      machine: machine(),
      settings,
      limits: {
        echoOpsPerSec: echoOps,
        echoCpuMsPerCall: echoCpuPerCall,
        echoOneInFlight: { p50Ms: echoAlone.p50Ms, p99Ms: echoAlone.p99Ms },
        rawSoftHsmEcdsaP256PerSec: rawEcdsa,
        rawSoftHsmRsa2048PssPerSec: rawRsa,
        rawSoftHsmAesGcmEncryptPerSec: rawGcmEncrypt,
        rawSoftHsmAesGcmDecryptPerSec: rawGcmDecrypt,
      },
      reference: {
        encryptSoftwareKeyOpsPerSec: encSw,
        encryptP50Ms: latency.p50Ms,
        encryptP99Ms: latency.p99Ms,
        workerCpuMsPerEncrypt: workerCpuPerEncrypt,
        oneReplicaOpsPerSec: oneReplica,
        replicasOpsPerSec: [one!.opsPerSec, two!.opsPerSec],
      },
      auditedErrors: errors,
      figures,
    };
    const m = report.machine;
    const f = (v: number) => v.toFixed(0);
    console.log(`machine: ${m.cpu} x ${m.cpus}, node ${m.node}, ${m.platform}`);
    console.log(`commit:  ${report.commit}; h2load, 1 connection, ${settings.streams} streams, ${settings.seconds} s per row after ${settings.warmupSeconds} s warm-up; ${settings.sequentialCalls} calls at 1 in flight`);
    console.log(`limits:  echo ${f(echoOps)} ops/s, ${echoCpuPerCall.toFixed(3)} ms CPU per call, at 1 in flight p50 ${echoAlone.p50Ms.toFixed(2)} / p99 ${echoAlone.p99Ms.toFixed(2)} ms;`);
    console.log(`         raw SoftHSM (${settings.workerSessions} sessions) ECDSA P-256 ${f(rawEcdsa)}/s, RSA-2048 PSS ${f(rawRsa)}/s, AES-GCM (${settings.callMode}) encrypt ${f(rawGcmEncrypt)}/s, decrypt ${f(rawGcmDecrypt)}/s\n`);
    console.log(formatFigures(figures));
    console.log(`\nfor reference: Encrypt with a SOFTWARE key ${f(encSw)} ops/s; Encrypt at 64 in flight p50 ${latency.p50Ms.toFixed(2)} / p99 ${latency.p99Ms.toFixed(2)} ms; ` +
      `hsm-worker CPU per Encrypt ${workerCpuPerEncrypt.toFixed(3)} ms; the two replicas ${f(one!.opsPerSec)} + ${f(two!.opsPerSec)} ops/s`);
    console.log(`calls the service answered with an error during the windows (from its audit trail): ${errors}`);

    const results = path.resolve(__dirname, "..", "results");
    mkdirSync(results, { recursive: true });
    const base = path.join(results, `${report.date.replace(/[:.]/g, "-")}-${report.commit}`);
    writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(`${base}.svg`, chartSvg(`kms bench ${report.commit} · ${report.date.slice(0, 16)} · ${m.cpus} × ${m.cpu}`, figures));
    copyFileSync(`${base}.json`, path.join(results, "latest.json"));
    copyFileSync(`${base}.svg`, path.join(results, "latest.svg"));
    console.log(`\nwritten: ${path.relative(process.cwd(), base)}.{json,svg} (and results/latest.*)`);
    if (errors > 0) throw new Error(`${errors} calls failed during the measured windows; the figures are not comparable`);
  } catch (err) {
    if (stack) console.error(`bench: service output (tail):\n${stack.output().slice(-4000)}`);
    if (replica) console.error(`bench: second replica's output (tail):\n${replica.output().slice(-2000)}`);
    throw err;
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    console.error(`bench: ${signal}, stopping`);
    process.exitCode = 130;
    void cleanUp().finally(() => process.exit());
  });
}

main()
  .catch((err: unknown) => {
    console.error(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  })
  .then(() => cleanUp())
  .finally(() => process.exit());
