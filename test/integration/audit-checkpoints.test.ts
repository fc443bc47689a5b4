// A cut or wiped audit tail shows (issue 15, finding 8). The database administrator can delete the newest
// audit rows and rewind audit_head to match, or delete everything: the chain alone still verifies. Signed
// checkpoints (sequence, head hash, time) made by the worker's checkpoint key on the HSM catch it:
// VerifyAuditLog and the offline kms-audit-verify, given the last checkpoint, fail; and the replica that
// wrote the cut rows notices the head moved back and refuses to go on.
import { execFileSync, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import postgres from "postgres";
import { checkpointKeyId, checkpointToJson, verifyCheckpoint } from "@kms/audit-chain";
import type { SignedCheckpoint } from "@kms/audit-chain";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createPromiseClient, kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import { errorCode, grpcError, startStack } from "../harness";
import type { KmsClient, Stack } from "../harness";

jest.setTimeout(120_000);

let stack: Stack;
let sql: postgres.Sql;
beforeAll(async () => {
  stack = await startStack({ env: { KMS_AUDIT_CHECKPOINT_INTERVAL: "200ms", KMS_LOG_LEVEL: "info" } });
  sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  await sql?.end();
  await stack?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function headSequence(): Promise<number> {
  const [h] = await sql<{ sequence: string }[]>`SELECT sequence::text FROM audit_head WHERE id = 1`;
  return Number(h?.sequence ?? 0);
}

/** The newest checkpoint once one covers at least `sequence` (the replica makes one every 200 ms). */
async function checkpointAtLeast(client: KmsClient, sequence: number): Promise<{ checkpoint: kmsResources.AuditCheckpoint; publicKey: string; keyId: string }> {
  for (let i = 0; i < 300; i++) {
    const res = await client.listAuditCheckpoints({ pageSize: 1 });
    const newest = res.checkpoints[0];
    if (newest && Number(newest.sequence) >= sequence) return { checkpoint: newest, publicKey: res.publicKey, keyId: res.keyId };
    await sleep(50);
  }
  throw new Error(`no checkpoint reached sequence ${sequence}`);
}

const signed = (c: kmsResources.AuditCheckpoint): SignedCheckpoint => ({
  sequence: Number(c.sequence),
  headHash: Buffer.from(c.headHash, "hex"),
  time: timestampDate(c.time!),
  keyId: c.keyId,
  signature: Buffer.from(c.signature),
});

/** The offline verifier on a pg_dump of the scratch database, with the checkpoint and its key. */
function verifyOffline(checkpoint: SignedCheckpoint, publicKey: string): { exit: number | null; result: Record<string, unknown> } {
  const dir = stack.dataDir;
  const dump = path.join(dir, "audit.sql");
  execFileSync("pg_dump", ["--data-only", "--table=audit_events", "--table=audit_head", "--file", dump, stack.db.url]);
  writeFileSync(path.join(dir, "checkpoint.json"), JSON.stringify(checkpointToJson(checkpoint)));
  writeFileSync(path.join(dir, "checkpoint-key.pem"), publicKey);
  const cli = path.join(__dirname, "../../packages/audit-chain/dist/verify-dump.js");
  const run = spawnSync(process.execPath, [cli, dump, "--checkpoint", path.join(dir, "checkpoint.json"), "--public-key", path.join(dir, "checkpoint-key.pem")], { encoding: "utf8" });
  return { exit: run.status, result: JSON.parse(run.stdout) as Record<string, unknown> };
}

let last: { checkpoint: kmsResources.AuditCheckpoint; publicKey: string; keyId: string };

it("signs checkpoints with the worker's HSM key, logs them as `audit chain head`, and VerifyAuditLog takes one", async () => {
  const keyId = (await stack.client.createKey({})).keyMetadata!.keyId;
  for (let i = 0; i < 5; i++) await stack.client.encrypt({ keyId, plaintext: Buffer.from("x") });
  const head = await headSequence();
  last = await checkpointAtLeast(stack.client, head);
  const c = signed(last.checkpoint);
  expect(verifyCheckpoint(c, last.publicKey)).toBe(true);
  expect(c.keyId).toBe(last.keyId);
  const spki = Buffer.from(last.publicKey.replace(/-----[^-]+-----|\s/g, ""), "base64");
  expect(checkpointKeyId(spki)).toBe(last.keyId);
  // The row it names is in the chain, with that hash.
  const [row] = await sql<{ hash: Buffer }[]>`SELECT hash FROM audit_events WHERE sequence = ${c.sequence}`;
  expect(row!.hash.toString("hex")).toBe(last.checkpoint.headHash);
  // Logged, as the README promises, in the form the verifiers read.
  const lines = stack.api.output().split("\n").filter((l) => l.includes('"audit chain head"'));
  expect(lines.map((l) => (JSON.parse(l) as { checkpoint: unknown }).checkpoint)).toContainEqual(checkpointToJson(c));
  // The signing key is a token object pair beside the root key (the private half checked sensitive and
  // not extractable by the worker when it starts).
  const worker = createPromiseClient(hsm.HsmWorkerService, `unix://${path.resolve(stack.workerEnv.KMS_WORKER_SOCKET!)}`);
  const listing = await worker.listTokenObjects({}).finally(() => worker.close());
  expect(listing.objects.filter((o) => o.label === listing.checkpointKeyLabel).map((o) => o.class).sort()).toEqual(["private key", "public key"]);
  const verified = await stack.client.verifyAuditLog({ checkpoint: last.checkpoint });
  expect([verified.ok, verified.checkpointMatched, verified.problem]).toEqual([true, true, ""]);
});

it("rejects a tampered checkpoint", async () => {
  const c = last.checkpoint;
  const tampered = [
    { ...c, sequence: c.sequence - 1n },
    { ...c, headHash: (c.headHash[0] === "0" ? "1" : "0") + c.headHash.slice(1) },
    { ...c, time: { ...c.time!, seconds: c.time!.seconds + 60n } },
  ];
  for (const t of tampered) {
    expect(verifyCheckpoint(signed(t), last.publicKey)).toBe(false);
    const err = await grpcError(stack.client.verifyAuditLog({ checkpoint: t }));
    expect([err.code, errorCode(err.metadata), err.details]).toEqual([
      status.INVALID_ARGUMENT,
      "InvalidParameter",
      "checkpoint.signature: does not verify with this deployment's audit checkpoint key",
    ]);
  }
});

it("a cut tail with the head rewound, then a wiped trail: the running replica refuses, the checkpoint fails both", async () => {
  const checkpoint = last.checkpoint;
  const cp = signed(checkpoint);
  const cut = cp.sequence - 3;
  // The database administrator deletes the newest rows and rewinds the head to match.
  await sql`DELETE FROM audit_events WHERE sequence > ${cut}`;
  await sql`UPDATE audit_head SET sequence = ${cut}, hash = (SELECT hash FROM audit_events WHERE sequence = ${cut}) WHERE id = 1`;

  // The replica that wrote those rows notices and answers nothing more (fail closed).
  const refused = await grpcError(stack.client.listKeys({}));
  expect([refused.code, errorCode(refused.metadata), refused.details]).toEqual([status.UNAVAILABLE, "ServiceUnavailable", "audit log is unavailable; retry is safe"]);
  expect(stack.api.output()).toContain("audit chain rewound");

  // A replica started afterwards cannot know; the chain alone still verifies (what the old code reported)...
  const fresh = await stack.startReplica();
  let r = await fresh.client.verifyAuditLog({ checkpoint });
  expect([r.ok, r.firstBadSequence, r.problem, r.checkpointMatched]).toEqual([
    false,
    BigInt(cut + 1),
    `the chain ends at ${cut}, before the signed checkpoint at ${cp.sequence}`,
    false,
  ]);
  expect((await fresh.client.verifyAuditLog({})).ok).toBe(true);
  // ... and offline the same (the two calls above added rows cut+1 and cut+2 after the cut).
  expect(verifyOffline(cp, last.publicKey)).toEqual({
    exit: 1,
    result: { verifiedCount: cut + 2, ok: false, firstBadSequence: cut + 3, problem: `the chain ends at ${cut + 2}, before the signed checkpoint at ${cp.sequence}`, checkpointMatched: false },
  });

  // Everything deleted.
  await sql`DELETE FROM audit_events`;
  await sql`DELETE FROM audit_head`;
  const third = await stack.startReplica();
  r = await third.client.verifyAuditLog({ checkpoint });
  expect([r.ok, r.firstBadSequence, r.problem]).toEqual([false, 1n, `the chain ends at 0, before the signed checkpoint at ${cp.sequence}`]);
  expect((await third.client.verifyAuditLog({})).ok).toBe(true);
  expect(verifyOffline(cp, last.publicKey)).toEqual({
    exit: 1,
    result: { verifiedCount: 2, ok: false, firstBadSequence: 3, problem: `the chain ends at 2, before the signed checkpoint at ${cp.sequence}`, checkpointMatched: false },
  });
});

it("lists checkpoints to auditors and admins only", async () => {
  const outsider = await stack.startReplica({ KMS_ADMINS: "someone-else" }); // "dev" is then no admin
  const err = await grpcError(outsider.client.listAuditCheckpoints({}));
  expect([err.code, errorCode(err.metadata)]).toEqual([status.PERMISSION_DENIED, "Forbidden.NoPermission"]);
});
