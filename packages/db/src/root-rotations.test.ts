// The rotation row's cursor (root-rotations.ts) against the real Postgres at KMS_TEST_DATABASE_URL, in a
// scratch database: two steps of one rotation that take the same page (a killed CLI's call still running
// while the run is resumed) record it once.
import { randomUUID } from "node:crypto";
import { AuditWriter } from "./audit-writer";
import { connect } from "./connect";
import type { Sql } from "./connect";
import { migrate } from "./migrate";
import { RootRotationStore } from "./root-rotations";
import { createScratchDatabase } from "./scratch";
import type { ScratchDatabase } from "./scratch";
import { Transactions } from "./unit-of-work";

let db: ScratchDatabase;
let sql: Sql;
let transactions: Transactions;
let rotations: RootRotationStore;

beforeAll(async () => {
  db = await createScratchDatabase("kms_root_rotations");
  sql = connect(db.url);
  await migrate(sql);
  transactions = new Transactions(sql, new AuditWriter(sql));
  rotations = new RootRotationStore(sql);
});

afterAll(async () => {
  await sql.end();
  await db.drop();
});

async function startedRotation(): Promise<string> {
  await sql`DELETE FROM root_rotations`;
  const rotationId = randomUUID();
  await rotations.start({ rotationId, startedBy: "admin", startTime: new Date(), oldRootKeyId: "old-root", legacyRootKeyId: "" });
  return rotationId;
}

const PAGE_END = "00000000-0000-0000-0000-00000000000a";

it("a page recorded from a cursor that has moved is refused, and counts nothing", async () => {
  const rotationId = await startedRotation();
  expect(await transactions.run((work) => work.advanceRotation(rotationId, null, PAGE_END, 1, "kept"))).toBe(true);
  expect(await transactions.run((work) => work.advanceRotation(rotationId, null, PAGE_END, 1, "kept"))).toBe(false);
  expect(await rotations.get(rotationId)).toMatchObject({ cursorVersionId: PAGE_END, retainedVersions: 1, retainedReason: "kept" });
});

it("of two steps recording the same page at once, the second waits for the first and gives way", async () => {
  const rotationId = await startedRotation();
  let releaseFirst!: () => void;
  const firstMayCommit = new Promise<void>((resolve) => (releaseFirst = resolve));
  let firstRecorded!: () => void;
  const firstHasRecorded = new Promise<void>((resolve) => (firstRecorded = resolve));
  const first = transactions.run(async (work) => {
    const ok = await work.advanceRotation(rotationId, null, PAGE_END, 2, "first");
    firstRecorded();
    await firstMayCommit;
    return ok;
  });
  await firstHasRecorded;
  const second = transactions.run((work) => work.advanceRotation(rotationId, null, PAGE_END, 2, "second"));
  // The second is blocked on the row lock the first holds (seen by Postgres, not by a clock).
  for (;;) {
    const [waiting] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
    if (waiting!.n === 1) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  releaseFirst();
  expect([await first, await second]).toEqual([true, false]);
  expect(await rotations.get(rotationId)).toMatchObject({ cursorVersionId: PAGE_END, retainedVersions: 2, retainedReason: "first" });
});
