// A backend that dies in the middle of a transaction, against the real Postgres. postgres.js 3.4.9 then
// threw from a timer (porsager/postgres#1208: the process exits), left the transaction's rollback waiting
// forever, or gave the next session's first query the old backend's error. patches/postgres+3.4.9.patch
// fixes all three; this is its regression test (without the patch it takes the test process down).
import { connect } from "./connect";
import type { Sql } from "./connect";
import { createScratchDatabase } from "./scratch";
import type { ScratchDatabase } from "./scratch";
import { isDatabaseUnavailable } from "./unavailable";

let db: ScratchDatabase;
let killer: Sql;

beforeAll(async () => {
  db = await createScratchDatabase("kms_unit_loss");
  killer = connect(db.url, { max: 1 });
});

afterAll(async () => {
  await killer.end();
  await db.drop();
});

/** Resolves to what `promise` settled with, or "pending" if it has not within `ms`. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | "pending"> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<"pending">((r) => (timer = setTimeout(() => r("pending"), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

describe.each([1, 3])("a pool of %i connection(s)", (max) => {
  it.each([
    ["after the kill is done", false],
    ["while the kill is in flight", true],
  ])("survives 30 transactions whose backend is killed; each fails as unavailable, %s; the next queries are right", async (_when, concurrent) => {
    const sql = connect(db.url, { max });
    const outcomes = new Map<string, number>();
    const wrong: string[] = [];
    for (let i = 0; i < 30; i++) {
      const outcome = await within(
        sql.begin(async (tx) => {
          const [row] = await tx<{ pid: number }[]>`select pg_backend_pid() as pid`;
          const kill = killer`select pg_terminate_backend(${row!.pid})`;
          if (concurrent) await Promise.all([kill, tx`select pg_sleep(0.01)`, tx`select 2`]);
          else await kill.then(() => tx`select 1`);
        }).then(
          () => "committed",
          (err: unknown) => (isDatabaseUnavailable(err) ? "unavailable" : `other: ${String(err)}`),
        ),
        5000,
      );
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      const after = await within(Promise.all([1, 2, 3].map((n) => sql<{ x: number }[]>`select ${n}::int as x`.then((rows) => rows[0]?.x === n))), 5000);
      if (after === "pending" || after.includes(false)) wrong.push(`${i}: ${JSON.stringify(after)}`);
    }
    // A kill can arrive after the commit on rare occasions; never anything else.
    expect([...outcomes.keys()].filter((o) => o !== "unavailable" && o !== "committed")).toEqual([]);
    expect(outcomes.get("unavailable")).toBeGreaterThanOrEqual(25);
    expect(wrong).toEqual([]);
    expect(await within(sql.end(), 5000)).not.toBe("pending"); // nothing left waiting on a dead connection
  });
});
