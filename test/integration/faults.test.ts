// Faults under load, each with the mixed load running (test/reliability/mixed-load.ts) and a final sweep:
//   - the worker SIGKILLed again and again: in-flight calls end UNAVAILABLE (never INTERNAL, never past
//     their deadline), service resumes when the worker is back, nothing acknowledged is lost;
//   - kms-api cut off from its worker (socket removed, worker stopped): UNAVAILABLE fast, no duplicate
//     key versions, recovery within seconds;
//   - Postgres taken away (through a TCP proxy; the shared server keeps running): no request acknowledged
//     without its audit row, no key or version lost, the audit chain verifies end to end.
// Recovery times are printed (and bounded generously: CI machines are slow and shared).
import { rmSync } from "node:fs";
import { status } from "@grpc/grpc-js";
import { connect } from "@kms/db";
import { startApi } from "@kms/dev-stack";
import { createPromiseClient, kms, kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { KmsClient, Stack } from "../harness";
import { MixedLoad, summary } from "../reliability/mixed-load";
import { startTcpProxy } from "../tcp-proxy";

jest.setTimeout(150_000);

const RECOVERY_BOUND_MS = 15_000;

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Milliseconds until an Encrypt on `client` succeeds again, counted from `since`. */
async function recovery(client: KmsClient, keyId: string, since: number): Promise<number> {
  for (;;) {
    try {
      await client.encrypt({ keyId, plaintext: Buffer.from("probe") }, { deadline: 15_000 });
      return Date.now() - since;
    } catch (err) {
      expect((err as { code: number }).code).toBe(status.UNAVAILABLE);
      if (Date.now() - since > 60_000) throw new Error(`no recovery within 60 s: ${(err as Error).message}`);
      await sleep(50);
    }
  }
}

function expectClean(report: MixedLoad["report"]): void {
  expect(report.unexpectedSamples).toEqual([]);
  expect({ lost: report.lost, mismatched: report.mismatched, unexpected: report.unexpected }).toEqual({ lost: 0, mismatched: 0, unexpected: 0 });
  expect(report.swept).toBe(report.acknowledgedCiphertexts);
  // The only failure allowed while faults come and go.
  expect(Object.keys(report.failures).filter((name) => name !== "UNAVAILABLE")).toEqual([]);
}

it("worker SIGKILLed 3 times under load: only UNAVAILABLE meanwhile, recovers, 0 lost", async () => {
  const load = new MixedLoad({ client: stack.client, durationMs: 20_000, concurrency: 8, keyCount: 4, allowed: [status.UNAVAILABLE] });
  await load.createKeys();
  const running = load.run();
  const recoveries: number[] = [];
  for (let i = 0; i < 3; i++) {
    await sleep(3000);
    stack.worker.kill("SIGKILL");
    await stack.worker.exited;
    const killedAt = Date.now();
    await sleep(500); // calls meanwhile must end UNAVAILABLE
    await stack.startWorker();
    recoveries.push(await recovery(stack.client, load.keyIds[0]!, killedAt));
  }
  const report = await running;
  process.stdout.write(`worker SIGKILL x3: recovery after kill (ms) ${recoveries.join(", ")}; ${summary(report)}\n`);
  expectClean(report);
  expect(report.failures.UNAVAILABLE ?? 0).toBeGreaterThan(0);
  for (const ms of recoveries) expect(ms).toBeLessThan(RECOVERY_BOUND_MS);
});

it("kms-api cut off from its worker (socket removed, worker stopped): fast UNAVAILABLE, no duplicate versions, recovers", async () => {
  const keyId = (await stack.client.createKey({ protectionLevel: kmsResources.ProtectionLevel.HSM })).keyMetadata!.keyId;
  const { ciphertextBlob } = await stack.client.encrypt({ keyId, plaintext: Buffer.from("before") });
  const versionsBefore = (await stack.client.listKeyVersions({ keyId })).keyVersions.length;

  rmSync(stack.worker.socketPath, { force: true });
  stack.worker.kill("SIGSTOP");
  const cutAt = Date.now();
  try {
    const slowest: number[] = [];
    for (const call of [
      () => stack.client.encrypt({ keyId, plaintext: Buffer.from("during") }, { deadline: 20_000 }),
      () => stack.client.decrypt({ ciphertextBlob }, { deadline: 20_000 }),
      () => stack.client.createKeyVersion({ keyId }, { deadline: 20_000 }),
      () => stack.client.createKeyVersion({ keyId }, { deadline: 20_000 }),
    ]) {
      const t = Date.now();
      const err = await grpcError(call());
      expect([err.code, errorCode(err.metadata)]).toEqual([status.UNAVAILABLE, "ServiceUnavailable"]);
      slowest.push(Date.now() - t);
    }
    // Bounded by the worker deadline (3 s in the harness), far inside the callers' 20 s.
    for (const ms of slowest) expect(ms).toBeLessThan(10_000);
    process.stdout.write(`partition: UNAVAILABLE after (ms) ${slowest.join(", ")}\n`);
  } finally {
    // Heal: the stopped worker goes, a new one makes the socket again.
    stack.worker.kill("SIGKILL");
    await stack.worker.exited;
  }
  const healAt = Date.now();
  await stack.startWorker();
  const ms = await recovery(stack.client, keyId, healAt);
  process.stdout.write(`partition: recovered ${ms} ms after the worker came back (${healAt - cutAt} ms cut)\n`);
  expect(ms).toBeLessThan(RECOVERY_BOUND_MS);

  expect((await stack.client.listKeyVersions({ keyId })).keyVersions.length).toBe(versionsBefore);
  await stack.client.createKeyVersion({ keyId });
  expect((await stack.client.listKeyVersions({ keyId })).keyVersions.length).toBe(versionsBefore + 1);
  expect(Buffer.from((await stack.client.decrypt({ ciphertextBlob })).plaintext).toString()).toBe("before");
});

it("Postgres cut twice under load: no acknowledged request without its audit row, nothing lost, chain verifies", async () => {
  const proxy = await startTcpProxy(Number(new URL(stack.db.url).port || 5432));
  const url = new URL(stack.db.url);
  url.port = String(proxy.port);
  // A replica of our own behind the proxy. It must ride out the cuts: postgres.js 3.4.9 threw from a timer
  // when a connection dropped in the middle of a transaction (porsager/postgres#1208) and kms-api exited,
  // 0-2 times a run. patches/postgres+3.4.9.patch fixes that; any exit now fails the test.
  const env = { ...stack.apiEnv, DATABASE_URL: url.toString(), KMS_DB_NOTIFICATIONS: "false" };
  const api = await startApi(env);
  const client = createPromiseClient(kms.KeyManagementService, api.address);
  let stopping = false;
  let exit: string | undefined;
  void api.exited.then((code) => {
    if (!stopping) exit = `kms-api exited (${code}):\n${api.output().split("\n").slice(-12).join("\n")}`;
  });
  const replica = { client };
  const load = new MixedLoad({ client: replica.client, durationMs: 16_000, concurrency: 8, keyCount: 4, allowed: [status.UNAVAILABLE] });
  const sql = connect(stack.db.url, { max: 1 });
  try {
    await load.createKeys();
    const running = load.run();
    const recoveries: number[] = [];
    for (let i = 0; i < 2; i++) {
      await sleep(4000);
      await proxy.cut();
      const cutAt = Date.now();
      await sleep(2000);
      await proxy.restore();
      recoveries.push(await recovery(replica.client, load.keyIds[0]!, Date.now()));
      expect(Date.now() - cutAt).toBeGreaterThan(0);
    }
    const report = await running;
    process.stdout.write(
      `Postgres cut x2 (2 s each): recovery after restore (ms) ${recoveries.join(", ")}; kms-api exits ${exit === undefined ? 0 : 1}; ${summary(report)}\n`,
    );
    expect(exit).toBeUndefined();
    expectClean(report);
    for (const ms of recoveries) expect(ms).toBeLessThan(RECOVERY_BOUND_MS);

    // Every acknowledged Encrypt and GenerateDataKey has its OK audit row (its unique "op" context value).
    const audited = new Set(
      (await sql<{ op: string }[]>`
        SELECT encryption_context->>'op' AS op FROM audit_events
        WHERE result_code = 'OK' AND operation IN ('Encrypt', 'GenerateDataKey')`).map((r) => r.op),
    );
    const missing = load.acknowledged.filter((a) => !audited.has(a.op)).map((a) => a.op);
    expect(missing).toEqual([]);
    // Acknowledged rotations: at least that many versions beyond the first, on keys that all still exist.
    const [versions] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM key_versions WHERE key_id = ANY(${load.keyIds}::uuid[])`;
    expect(versions!.n).toBeGreaterThanOrEqual(load.keyIds.length + report.rotations);
    for (const keyId of load.keyIds) {
      expect((await replica.client.describeKey({ keyId })).keyMetadata!.keyState).toBe(kmsResources.KeyState.ENABLED);
    }
    const verified = await stack.client.verifyAuditLog({});
    expect({ ok: verified.ok, firstBad: verified.firstBadSequence }).toEqual({ ok: true, firstBad: 0n });
    expect(verified.verifiedCount).toBeGreaterThan(BigInt(load.acknowledged.length));
  } finally {
    stopping = true;
    client.close();
    await api.stop();
    await sql.end();
    await proxy.close();
  }
});
