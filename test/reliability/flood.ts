// Measurement, not a test: does a flood from one principal leave the others' latency alone?
//   npx tsc -p test/reliability && node test/reliability/dist/reliability/flood.js
// (after `npx tsc -b`; needs Postgres and SoftHSM2 like the integration tests). Starts a stack with bearer
// JWTs, then measures "alice" (a steady ALICE_RATE Encrypts a second, default 200, open loop: she does
// not slow down when the service does) in three kinds of window, interleaved: alone; beside mallory
// keeping to his limit (open loop at FLOOD_RATE calls a second: the neighbour the limit allows, the
// control); and beside mallory flooding (64 clients in a closed loop). Once with the rate limit in force
// and once with it lifted. Prints p50/p99 of alice and what mallory got: flood / alone is the figure the
// issue asks for, flood / neighbour says how much of it the limit could have prevented.
//
// Mallory runs in a process of his own, started and warmed up once per replica, so that neither his 64
// client loops nor his process's start-up (module loading, JIT) land on alice's client or inside her
// windows: on a real deployment the flooder's CPU is not the service's.
//
//   FLOOD_SECONDS   window length (default 10)
//   FLOOD_ROUNDS    rounds of windows, alone, neighbour, flooded (default 3); each kind's percentiles pool
//                   all its windows, so that drift over the run falls on every kind
//   FLOOD_RATE      the per-principal limit (default 1000/s), above alice's rate; FLOOD_BURST its bucket
//                   size (default: FLOOD_RATE)
//   FLOOD_MODES     "on", "off" or "on,off" (default): which replicas to measure
//   MALLORY_STEADY  the neighbour's rate (default: FLOOD_RATE); 0 leaves the neighbour windows out
//   FLOOD_ECHO      1: a fourth kind of window, beside mallory's process calling the benchmark's bare
//                   grpc-js echo server (bench/src/echo-server.ts, a process of its own) at the
//                   neighbour's rate: what those calls cost alice on this machine if the service were
//                   free (a machine control, not a KMS figure)
//   FLOOD_DEBUG     1: print each window's slowest calls of alice, with when they started
import { spawn } from "node:child_process";
import type { ChildProcessByStdio } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { Client, Metadata, credentials } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import { SignJWT, exportJWK } from "jose";
import { createPromiseClient, kms } from "@kms/proto";
// The benchmark's bare grpc-js echo server (its own process), for the FLOOD_ECHO control.
import { startEcho } from "@kms/bench/dist/children";
import { ECHO_PATH } from "@kms/bench/dist/echo-server";
import { startStack } from "../harness";
import type { KmsClient } from "../harness";

const SECONDS = Number(process.env.FLOOD_SECONDS ?? 10);
const ROUNDS = Number(process.env.FLOOD_ROUNDS ?? 3);
const RATE = process.env.FLOOD_RATE ?? "1000";
const ALICE_RATE = Number(process.env.ALICE_RATE ?? 200);
/** The bucket's size: how many calls a principal may make back to back (default: one second's worth). */
const BURST = process.env.FLOOD_BURST ?? RATE;
const MODES = (process.env.FLOOD_MODES ?? "on,off").split(",");
const STEADY = Number(process.env.MALLORY_STEADY ?? RATE);
const ECHO = process.env.FLOOD_ECHO === "1" && STEADY > 0;

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
      const echo = ECHO ? await startEcho() : undefined;
      const flooder = await Flooder.start(replica.api.address, mallory, keyId, echo?.address).catch(async (err: unknown) => {
        await echo?.stop(); // not left running when mallory's process fails to start
        throw err;
      });
      try {
        // Warm-up of both clients and the replica, not measured.
        await Promise.all([window(replica.client, keyId, alice, undefined, 2), flooder.run("flood", 2)]);
        await new Promise((r) => setTimeout(r, 2000)); // mallory's bucket refills, as before every flood
        const alone: Window[] = [];
        const neighbour: Window[] = [];
        const flooded: Window[] = [];
        const echoed: Window[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          alone.push(await window(replica.client, keyId, alice, undefined, SECONDS));
          if (STEADY > 0) neighbour.push(await window(replica.client, keyId, alice, { flooder, kind: `steady ${STEADY}` }, SECONDS));
          flooded.push(await window(replica.client, keyId, alice, { flooder, kind: "flood" }, SECONDS));
          if (ECHO) echoed.push(await window(replica.client, keyId, alice, { flooder, kind: `echo ${STEADY}` }, SECONDS));
        }
        const a = summary(alone);
        const n = summary(neighbour);
        const f = summary(flooded);
        const e = summary(echoed);
        const perWindow = (ws: Window[]) => ws.map((x) => x.p99).join("/");
        rows.push(
          `limit ${mode}: alice alone p50 ${a.p50} ms p99 ${a.p99} ms (${a.ok} ok); ` +
            (STEADY > 0 ? `beside mallory at ${STEADY}/s p50 ${n.p50} ms p99 ${n.p99} ms = ${(n.p99 / a.p99).toFixed(2)}x alone; ` : "") +
            `beside mallory flooding p50 ${f.p50} ms p99 ${f.p99} ms (${f.ok} ok) = ${(f.p99 / a.p99).toFixed(2)}x alone` +
            (STEADY > 0 ? `, ${(f.p99 / n.p99).toFixed(2)}x beside the neighbour` : "") +
            (ECHO ? `; beside ${STEADY} calls/s to a bare echo server p50 ${e.p50} ms p99 ${e.p99} ms = ${(e.p99 / a.p99).toFixed(2)}x alone` : "") +
            `; mallory flooding: ok ${f.floodOk}, throttled ${f.throttled}; p99 per window alone ${perWindow(alone)}` +
            (STEADY > 0 ? `, neighbour ${perWindow(neighbour)}` : "") +
            `, flooded ${perWindow(flooded)}`,
        );
      } finally {
        flooder.close();
        await echo?.stop();
      }
    }
    const kinds = STEADY > 0 ? `alone, neighbour, flooded${ECHO ? ", echo neighbour" : ""}` : "alone, flooded";
    process.stdout.write(`flood (${ROUNDS} rounds of ${SECONDS} s windows ${kinds}, rate limit ${RATE}/s per principal, burst ${BURST}, alice ${ALICE_RATE}/s):\n${rows.join("\n")}\n`);
  } finally {
    await stack.stop();
  }
}

interface FloodResult {
  ok: number;
  throttled: number;
}

/**
 * Mallory's process: connected and warm; loads the service on request, one JSON line out per line in:
 * "flood <seconds>" (64 clients in a closed loop) or "steady <rate> <seconds>" (open loop at that rate).
 */
class Flooder {
  private pending: ((r: FloodResult) => void)[] = [];

  private constructor(private readonly child: ChildProcessByStdio<Writable, Readable, null>, lines: AsyncIterable<string>) {
    void (async () => {
      for await (const line of lines) if (line.startsWith("{")) this.pending.shift()?.(JSON.parse(line) as FloodResult);
    })();
  }

  static async start(address: string, authorization: string, keyId: string, echoAddress?: string): Promise<Flooder> {
    const child = spawn(process.execPath, [__filename, "flood-child", JSON.stringify({ address, authorization, keyId, echoAddress })], { stdio: ["pipe", "pipe", "inherit"] });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.value !== "ready") throw new Error(`flood child did not start (${String(first.value)})`);
    return new Flooder(child, { [Symbol.asyncIterator]: () => lines });
  }

  run(kind: string, seconds: number): Promise<FloodResult> {
    return new Promise((resolve, reject) => {
      this.pending.push(resolve);
      this.child.once("exit", (code) => reject(new Error(`flood child exited with ${code}`)));
      this.child.stdin.write(`${kind} ${seconds}\n`);
    });
  }

  close(): void {
    this.child.removeAllListeners("exit");
    this.child.stdin.end();
  }
}

async function floodChild(args: { address: string; authorization: string; keyId: string; echoAddress?: string }): Promise<void> {
  const client = createPromiseClient(kms.KeyManagementService, args.address);
  const echo = args.echoAddress ? new Client(args.echoAddress, credentials.createInsecure()) : undefined;
  const md = new Metadata();
  md.set("authorization", args.authorization);
  const ready = (channel: { waitForReady: Client["waitForReady"] }) =>
    new Promise<void>((resolve, reject) => channel.waitForReady(Date.now() + 10_000, (err?: Error) => (err ? reject(err) : resolve())));
  await ready(client.channel);
  if (echo) await ready(echo);
  process.stdout.write("ready\n");
  const plaintext = Buffer.alloc(64, 1);
  // About the size of mallory's Encrypt request, for the echo control.
  const echoRequest = Buffer.alloc(120, 1);
  for await (const line of createInterface({ input: process.stdin })) {
    const words = line.split(" ");
    const steady = words[0] === "steady" || words[0] === "echo" ? Number(words[1]) : 0;
    const until = Date.now() + Number(words[words.length - 1]) * 1000;
    let ok = 0;
    let throttled = 0;
    const callEcho = () =>
      new Promise<void>((resolve, reject) =>
        echo!.makeUnaryRequest(ECHO_PATH, identity, identity, echoRequest, { deadline: Date.now() + 30_000 }, (err) => (err ? reject(err) : resolve(void ok++))),
      );
    const call = () =>
      words[0] === "echo" ? callEcho() : client.encrypt({ keyId: args.keyId, plaintext }, { metadata: md, deadline: 30_000 }).then(
        () => void ok++,
        (err: unknown) => {
          if ((err as ServiceError).code !== 8) throw err;
          throttled++;
        },
      );
    if (steady > 0) {
      const calls: Promise<void>[] = [];
      const started = performance.now();
      for (let i = 0; Date.now() < until; i++) {
        const wait = started + (i * 1000) / steady - performance.now();
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
  echo?.close();
}

const identity = (bytes: Buffer) => bytes;

interface Window {
  latencies: number[];
  p50: number;
  p99: number;
  ok: number;
  floodOk: number;
  throttled: number;
}

async function window(client: KmsClient, keyId: string, alice: Metadata, mallory: { flooder: Flooder; kind: string } | undefined, seconds: number): Promise<Window> {
  const flood = mallory?.flooder.run(mallory.kind, seconds);
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
    process.stderr.write(`${mallory?.kind ?? "alone"} slowest: ${top.map(([ms, at]) => `${ms.toFixed(1)}@${(at / 1000).toFixed(2)}s`).join(" ")}\n`);
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
