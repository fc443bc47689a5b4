// Measurement, not a test: does a flood from one principal leave the others' latency alone?
//   npx tsc -p test/reliability && node test/reliability/dist/reliability/flood.js
// (after `npx tsc -b`; needs Postgres and SoftHSM2 like the integration tests). Starts a stack with bearer
// JWTs, then measures "alice" (a steady ALICE_RATE Encrypts a second, default 200, open loop: she does
// not slow down when the service does) alone, then with "mallory" flooding (64 clients in a closed loop),
// once with the rate limit in force and once with it lifted. Mallory runs in a process of his own, so
// that his 64 client loops do not slow alice's client down instead of the service. Prints p50/p99 of alice and what mallory
// got. FLOOD_SECONDS (default 10) per phase; FLOOD_RATE (default 1000/s) is the per-principal limit,
// above alice's rate, and FLOOD_BURST its bucket size (default: FLOOD_RATE).
import { spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { Metadata } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import { SignJWT, exportJWK } from "jose";
import { createPromiseClient, kms } from "@kms/proto";
import { startStack } from "../harness";
import type { KmsClient } from "../harness";

const SECONDS = Number(process.env.FLOOD_SECONDS ?? 10);
const RATE = process.env.FLOOD_RATE ?? "1000";
const ALICE_RATE = Number(process.env.ALICE_RATE ?? 200);
/** The bucket's size: how many calls a principal may make back to back (default: one second's worth). */
const BURST = process.env.FLOOD_BURST ?? RATE;

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
    const limited = await stack.startReplica({ ...jwt, KMS_RATE_LIMIT_PER_SECOND: RATE, KMS_RATE_LIMIT_BURST: BURST });
    const unlimited = await stack.startReplica({ ...jwt, KMS_RATE_LIMIT_PER_SECOND: "10000000", KMS_RATE_LIMIT_BURST: "10000000" });
    const alice = await bearer("alice");
    const mallory = String((await bearer("mallory")).get("authorization")[0]);
    const keyId = (await limited.client.createKey({}, { metadata: alice })).keyMetadata!.keyId;

    const rows: string[] = [];
    for (const [name, replica] of [["limit on", limited], ["limit off", unlimited]] as const) {
      const client = replica.client;
      await phase(client, keyId, alice, undefined, 2); // warm-up
      const base = await phase(client, keyId, alice, undefined, SECONDS);
      const flooded = await phase(client, keyId, alice, { address: replica.api.address, authorization: mallory }, SECONDS);
      rows.push(
        `${name}: alice alone p50 ${base.p50} ms p99 ${base.p99} ms (${base.ok} ok); ` +
          `with mallory flooding p50 ${flooded.p50} ms p99 ${flooded.p99} ms (${flooded.ok} ok) = ${(flooded.p99 / base.p99).toFixed(2)}x baseline p99; ` +
          `mallory ok ${flooded.floodOk}, throttled ${flooded.throttled}`,
      );
    }
    process.stdout.write(`flood (${SECONDS} s per phase, rate limit ${RATE}/s per principal, burst ${BURST}, alice ${ALICE_RATE}/s):\n${rows.join("\n")}\n`);
  } finally {
    await stack.stop();
  }
}

interface Flooder {
  address: string;
  authorization: string;
}

/** Mallory's 64 closed-loop clients, in a child process; resolves to what he got. */
function floodFromChild(flooder: Flooder, keyId: string, seconds: number): Promise<{ ok: number; throttled: number }> {
  const child = spawn(process.execPath, [__filename, "flood-child", JSON.stringify({ ...flooder, keyId, seconds })], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out) as { ok: number; throttled: number }) : reject(new Error(`flood child exited with ${code}`))));
  });
}

async function floodChild(args: Flooder & { keyId: string; seconds: number }): Promise<void> {
  const client = createPromiseClient(kms.KeyManagementService, args.address);
  const md = new Metadata();
  md.set("authorization", args.authorization);
  const until = Date.now() + args.seconds * 1000;
  const plaintext = Buffer.alloc(64, 1);
  let ok = 0;
  let throttled = 0;
  const loop = async () => {
    while (Date.now() < until) {
      try {
        await client.encrypt({ keyId: args.keyId, plaintext }, { metadata: md, deadline: 30_000 });
        ok++;
      } catch (err) {
        if ((err as ServiceError).code !== 8) throw err;
        throttled++;
      }
    }
  };
  await Promise.all(Array.from({ length: 64 }, loop));
  client.close();
  process.stdout.write(JSON.stringify({ ok, throttled }));
}

async function phase(client: KmsClient, keyId: string, alice: Metadata, mallory: Flooder | undefined, seconds: number) {
  const until = Date.now() + seconds * 1000;
  const latencies: number[] = [];
  const plaintext = Buffer.alloc(64, 1);
  // Open loop: one call every 1/ALICE_RATE s, on schedule, however long the earlier ones take.
  const aliceCalls: Promise<void>[] = [];
  const aliceSchedule = async () => {
    const started = performance.now();
    for (let i = 0; Date.now() < until; i++) {
      const due = started + (i * 1000) / ALICE_RATE;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const t = performance.now();
      aliceCalls.push(client.encrypt({ keyId, plaintext }, { metadata: alice, deadline: 30_000 }).then(() => void latencies.push(performance.now() - t)));
    }
    await Promise.all(aliceCalls);
  };
  const [, flood] = await Promise.all([aliceSchedule(), mallory ? floodFromChild(mallory, keyId, seconds) : undefined]);
  const floodOk = flood?.ok ?? 0;
  const throttled = flood?.throttled ?? 0;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! * 10) / 10;
  return { p50: at(0.5), p99: at(0.99), ok: latencies.length, floodOk, throttled };
}

(process.argv[2] === "flood-child" ? floodChild(JSON.parse(process.argv[3]!)) : main()).catch((err: unknown) => {
  process.stderr.write(`flood: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
