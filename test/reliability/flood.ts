// Measurement, not a test: does a flood from one principal leave the others' latency alone?
//   npx tsc -p test/reliability && node test/reliability/dist/reliability/flood.js
// (after `npx tsc -b`; needs Postgres and SoftHSM2 like the integration tests). Starts a stack with bearer
// JWTs, then measures "alice" (a steady ALICE_RATE Encrypts a second, default 200, open loop: she does
// not slow down when the service does) alone and with "mallory" flooding (64 clients in a closed loop),
// in alternating windows, once with the rate limit in force and once with it lifted. Prints p50/p99 of
// alice and what mallory got.
//
// Mallory runs in a process of his own, started and warmed up once per replica, so that neither his 64
// client loops nor his process's start-up (module loading, JIT) land on alice's client or inside her
// windows: on a real deployment the flooder's CPU is not the service's.
//
//   FLOOD_SECONDS   window length (default 10)
//   FLOOD_ROUNDS    alternating pairs of windows, alone then flooded (default 3); each side's percentiles
//                   pool all its windows, so that drift over the run falls on both sides
//   FLOOD_RATE      the per-principal limit (default 1000/s), above alice's rate; FLOOD_BURST its bucket
//                   size (default: FLOOD_RATE)
//   FLOOD_MODES     "on", "off" or "on,off" (default): which replicas to measure
//   MALLORY_STEADY  n > 0: instead of flooding, mallory keeps to n calls a second, open loop (the control:
//                   what a neighbour within its limit costs alice)
//   FLOOD_DEBUG     1: print each window's slowest calls of alice, with when they started
import { spawn } from "node:child_process";
import type { ChildProcessByStdio } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { Metadata } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import { SignJWT, exportJWK } from "jose";
import { createPromiseClient, kms } from "@kms/proto";
import { startStack } from "../harness";
import type { KmsClient } from "../harness";

const SECONDS = Number(process.env.FLOOD_SECONDS ?? 10);
const ROUNDS = Number(process.env.FLOOD_ROUNDS ?? 3);
const RATE = process.env.FLOOD_RATE ?? "1000";
const ALICE_RATE = Number(process.env.ALICE_RATE ?? 200);
/** The bucket's size: how many calls a principal may make back to back (default: one second's worth). */
const BURST = process.env.FLOOD_BURST ?? RATE;
const MODES = (process.env.FLOOD_MODES ?? "on,off").split(",");
const STEADY = Number(process.env.MALLORY_STEADY ?? 0);

async function main(): Promise<void> {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const bearer = async (sub: string) => {
    const jwt = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "k" }).setIssuer("flood").setAudience("kms").setSubject(sub).setIssuedAt().setExpirationTime("1h").sign(privateKey);
    const md = new Metadata();
    md.set("authorization", `Bearer ${jwt}`);
    return md;
  };
  const stack = await startStack({ env: { KMS_LOG_LEVEL: "error" } });
  try {
    const jwks = path.join(stack.dataDir, "jwks.json");
    writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k", alg: "ES256", use: "sig" }] }));
    const jwt = { KMS_JWT_JWKS_FILE: jwks, KMS_JWT_ISSUER: "flood", KMS_JWT_AUDIENCE: "kms", KMS_ADMINS: "alice,mallory" };
    const replicas = {
      on: () => stack.startReplica({ ...jwt, KMS_RATE_LIMIT_PER_SECOND: RATE, KMS_RATE_LIMIT_BURST: BURST }),
      off: () => stack.startReplica({ ...jwt, KMS_RATE_LIMIT_PER_SECOND: "10000000", KMS_RATE_LIMIT_BURST: "10000000" }),
    };
    const alice = await bearer("alice");
    const mallory = String((await bearer("mallory")).get("authorization")[0]);
    let keyId = "";

    const rows: string[] = [];
    for (const mode of ["on", "off"] as const) {
      if (!MODES.includes(mode)) continue;
      const replica = await replicas[mode]();
      keyId ||= (await replica.client.createKey({}, { metadata: alice })).keyMetadata!.keyId;
      const flooder = await Flooder.start(replica.api.address, mallory, keyId);
      try {
        // Warm-up of both clients and the replica, not measured.
        await Promise.all([window(replica.client, keyId, alice, undefined, 2), flooder.flood(2)]);
        await new Promise((r) => setTimeout(r, 2000)); // mallory's bucket refills, as before every flood
        const alone: Window[] = [];
        const flooded: Window[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          alone.push(await window(replica.client, keyId, alice, undefined, SECONDS));
          flooded.push(await window(replica.client, keyId, alice, flooder, SECONDS));
        }
        const a = summary(alone);
        const f = summary(flooded);
        rows.push(
          `limit ${mode}: alice alone p50 ${a.p50} ms p99 ${a.p99} ms (${a.ok} ok); ` +
            `with mallory ${STEADY > 0 ? `steady at ${STEADY}/s` : "flooding"} p50 ${f.p50} ms p99 ${f.p99} ms (${f.ok} ok) = ${(f.p99 / a.p99).toFixed(2)}x baseline p99; ` +
            `mallory ok ${f.floodOk}, throttled ${f.throttled}; p99 per window alone ${alone.map((x) => x.p99).join("/")}, flooded ${flooded.map((x) => x.p99).join("/")}`,
        );
      } finally {
        flooder.close();
      }
    }
    process.stdout.write(`flood (${ROUNDS} rounds of ${SECONDS} s alone + ${SECONDS} s flooded, rate limit ${RATE}/s per principal, burst ${BURST}, alice ${ALICE_RATE}/s):\n${rows.join("\n")}\n`);
  } finally {
    await stack.stop();
  }
}

interface FloodResult {
  ok: number;
  throttled: number;
}

/** Mallory's process: connected and warm; floods on request ("flood <seconds>" in, one JSON line out). */
class Flooder {
  private pending: ((r: FloodResult) => void)[] = [];

  private constructor(private readonly child: ChildProcessByStdio<Writable, Readable, null>, lines: AsyncIterable<string>) {
    void (async () => {
      for await (const line of lines) if (line.startsWith("{")) this.pending.shift()?.(JSON.parse(line) as FloodResult);
    })();
  }

  static async start(address: string, authorization: string, keyId: string): Promise<Flooder> {
    const child = spawn(process.execPath, [__filename, "flood-child", JSON.stringify({ address, authorization, keyId })], { stdio: ["pipe", "pipe", "inherit"] });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.value !== "ready") throw new Error(`flood child did not start (${String(first.value)})`);
    return new Flooder(child, { [Symbol.asyncIterator]: () => lines });
  }

  flood(seconds: number): Promise<FloodResult> {
    return new Promise((resolve, reject) => {
      this.pending.push(resolve);
      this.child.once("exit", (code) => reject(new Error(`flood child exited with ${code}`)));
      this.child.stdin.write(`flood ${seconds}\n`);
    });
  }

  close(): void {
    this.child.removeAllListeners("exit");
    this.child.stdin.end();
  }
}

async function floodChild(args: { address: string; authorization: string; keyId: string }): Promise<void> {
  const client = createPromiseClient(kms.KeyManagementService, args.address);
  const md = new Metadata();
  md.set("authorization", args.authorization);
  await new Promise<void>((resolve, reject) => client.channel.waitForReady(Date.now() + 10_000, (err?: Error) => (err ? reject(err) : resolve())));
  process.stdout.write("ready\n");
  const plaintext = Buffer.alloc(64, 1);
  for await (const line of createInterface({ input: process.stdin })) {
    const until = Date.now() + Number(line.split(" ")[1]) * 1000;
    let ok = 0;
    let throttled = 0;
    const call = () =>
      client.encrypt({ keyId: args.keyId, plaintext }, { metadata: md, deadline: 30_000 }).then(
        () => void ok++,
        (err: unknown) => {
          if ((err as ServiceError).code !== 8) throw err;
          throttled++;
        },
      );
    if (STEADY > 0) {
      const calls: Promise<void>[] = [];
      const started = performance.now();
      for (let i = 0; Date.now() < until; i++) {
        const wait = started + (i * 1000) / STEADY - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        calls.push(call());
      }
      await Promise.all(calls);
    } else {
      const loop = async () => {
        while (Date.now() < until) await call();
      };
      await Promise.all(Array.from({ length: 64 }, loop));
    }
    process.stdout.write(`${JSON.stringify({ ok, throttled })}\n`);
  }
  client.close();
}

interface Window {
  latencies: number[];
  p50: number;
  p99: number;
  ok: number;
  floodOk: number;
  throttled: number;
}

async function window(client: KmsClient, keyId: string, alice: Metadata, flooder: Flooder | undefined, seconds: number): Promise<Window> {
  const flood = flooder?.flood(seconds);
  const until = Date.now() + seconds * 1000;
  const latencies: number[] = [];
  const slowest: [number, number][] = [];
  const plaintext = Buffer.alloc(64, 1);
  // Open loop: one call every 1/ALICE_RATE s, on schedule, however long the earlier ones take.
  const calls: Promise<void>[] = [];
  const started = performance.now();
  for (let i = 0; Date.now() < until; i++) {
    const wait = started + (i * 1000) / ALICE_RATE - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const t = performance.now();
    calls.push(
      client.encrypt({ keyId, plaintext }, { metadata: alice, deadline: 30_000 }).then(() => {
        latencies.push(performance.now() - t);
        slowest.push([performance.now() - t, t - started]);
      }),
    );
  }
  await Promise.all(calls);
  const got = await flood;
  if (process.env.FLOOD_DEBUG) {
    const top = slowest.sort((a, b) => b[0] - a[0]).slice(0, 15);
    process.stderr.write(`${flooder ? "flooded" : "alone"} slowest: ${top.map(([ms, at]) => `${ms.toFixed(1)}@${(at / 1000).toFixed(2)}s`).join(" ")}\n`);
  }
  return { latencies, ...percentiles(latencies), ok: latencies.length, floodOk: got?.ok ?? 0, throttled: got?.throttled ?? 0 };
}

function percentiles(latencies: number[]): { p50: number; p99: number } {
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! * 10) / 10;
  return { p50: at(0.5), p99: at(0.99) };
}

/** All windows of one side together. */
function summary(windows: Window[]) {
  const latencies = windows.flatMap((w) => w.latencies);
  const sum = (f: (w: Window) => number) => windows.reduce((n, w) => n + f(w), 0);
  return { ...percentiles(latencies), ok: latencies.length, floodOk: sum((w) => w.floodOk), throttled: sum((w) => w.throttled) };
}

(process.argv[2] === "flood-child" ? floodChild(JSON.parse(process.argv[3]!)) : main()).catch((err: unknown) => {
  process.stderr.write(`flood: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
