// Measurement, not a test: does a flood from one principal leave the others' latency alone?
//   npx tsc -p test/reliability && node test/reliability/dist/reliability/flood.js
// (after `npx tsc -b`; needs Postgres and SoftHSM2 like the integration tests). Starts a stack with bearer
// JWTs, then measures "alice" (4 clients, Encrypt in a closed loop) alone, then with "mallory" flooding
// (64 clients), once with mallory's rate limit in force and once with it lifted. Prints p50/p99 of alice
// and what mallory got. FLOOD_SECONDS (default 10) per phase; FLOOD_RATE (default 100/s) is the limit.
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { Metadata } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import { SignJWT, exportJWK } from "jose";
import { startStack } from "../harness";
import type { KmsClient } from "../harness";

const SECONDS = Number(process.env.FLOOD_SECONDS ?? 10);
const RATE = process.env.FLOOD_RATE ?? "100";

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
    const limited = await stack.startReplica({ ...jwt, KMS_RATE_LIMIT_PER_SECOND: RATE, KMS_RATE_LIMIT_BURST: RATE });
    const unlimited = await stack.startReplica({ ...jwt, KMS_RATE_LIMIT_PER_SECOND: "10000000", KMS_RATE_LIMIT_BURST: "10000000" });
    const alice = await bearer("alice");
    const mallory = await bearer("mallory");
    const keyId = (await limited.client.createKey({}, { metadata: alice })).keyMetadata!.keyId;

    const rows: string[] = [];
    for (const [name, client] of [["limit on", limited.client], ["limit off", unlimited.client]] as const) {
      await phase(client, keyId, alice, undefined, 2); // warm-up
      const base = await phase(client, keyId, alice, undefined, SECONDS);
      const flooded = await phase(client, keyId, alice, mallory, SECONDS);
      rows.push(
        `${name}: alice alone p50 ${base.p50} ms p99 ${base.p99} ms (${base.ok} ok); ` +
          `with mallory flooding p50 ${flooded.p50} ms p99 ${flooded.p99} ms (${flooded.ok} ok) = ${(flooded.p99 / base.p99).toFixed(2)}x baseline p99; ` +
          `mallory ok ${flooded.floodOk}, throttled ${flooded.throttled}`,
      );
    }
    process.stdout.write(`flood (${SECONDS} s per phase, rate limit ${RATE}/s per principal):\n${rows.join("\n")}\n`);
  } finally {
    await stack.stop();
  }
}

async function phase(client: KmsClient, keyId: string, alice: Metadata, mallory: Metadata | undefined, seconds: number) {
  const until = Date.now() + seconds * 1000;
  const latencies: number[] = [];
  let floodOk = 0;
  let throttled = 0;
  const plaintext = Buffer.alloc(64, 1);
  const aliceLoop = async () => {
    while (Date.now() < until) {
      const t = performance.now();
      await client.encrypt({ keyId, plaintext }, { metadata: alice, deadline: 30_000 });
      latencies.push(performance.now() - t);
    }
  };
  const floodLoop = async (md: Metadata) => {
    while (Date.now() < until) {
      try {
        await client.encrypt({ keyId, plaintext }, { metadata: md, deadline: 30_000 });
        floodOk++;
      } catch (err) {
        if ((err as ServiceError).code !== 8) throw err;
        throttled++;
      }
    }
  };
  await Promise.all([
    ...Array.from({ length: 4 }, aliceLoop),
    ...(mallory ? Array.from({ length: 64 }, () => floodLoop(mallory)) : []),
  ]);
  latencies.sort((a, b) => a - b);
  const at = (q: number) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]! * 10) / 10;
  return { p50: at(0.5), p99: at(0.99), ok: latencies.length, floodOk, throttled };
}

main().catch((err: unknown) => {
  process.stderr.write(`flood: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
