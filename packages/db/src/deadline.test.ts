// A query that runs past its call's deadline (or the connection's ceiling) is stopped by Postgres, and its
// backend is free again. Runs against the real Postgres, in a scratch database.
import { status } from "@grpc/grpc-js";
import { KmsError } from "@kms/errors";
import { connect } from "./connect";
import type { Sql } from "./connect";
import { boundedRead, callTimeoutMs, isQueryCancelled, transaction, withDeadline, withoutDeadline } from "./deadline";
import { createScratchDatabase } from "./scratch";
import type { ScratchDatabase } from "./scratch";

let db: ScratchDatabase;
let sql: Sql;
let observer: Sql;

beforeAll(async () => {
  db = await createScratchDatabase("kms_unit_deadline");
  sql = connect(db.url, { statementTimeoutMs: 60_000 });
  observer = connect(db.url, { max: 1 });
});

afterAll(async () => {
  await sql.end();
  await observer.end();
  await db.drop();
});

const soon = (ms: number) => new Date(Date.now() + ms);

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the query to fail");
}

/** Backends of this database still sleeping (the cancelled statements must not be among them). */
async function sleepers(): Promise<number> {
  const [row] = await observer<{ n: number }[]>`
    SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE datname = ${db.name} AND query LIKE '%pg_sleep%' AND state = 'active' AND pid <> pg_backend_pid()`;
  return row!.n;
}

describe("a call's deadline bounds its queries", () => {
  it("cancels a transaction's statement that outlives the deadline, and frees its backend", async () => {
    const err = await failure(withDeadline(soon(300), () => transaction(sql, (tx) => tx`SELECT pg_sleep(30)`)));
    expect([isQueryCancelled(err), (err as { code?: string }).code]).toEqual([true, "57014"]);
    expect(await sleepers()).toBe(0);
    // The connection goes back to the pool with the ceiling, not the call's timeout.
    const [setting] = await sql<{ statementTimeout: string }[]>`SHOW statement_timeout`;
    expect(setting!.statementTimeout).toBe("1min");
  });

  it("cancels a read (the stores' path for single queries) that outlives the deadline", async () => {
    const err = await failure(withDeadline(soon(300), () => boundedRead(sql, (q) => q`SELECT pg_sleep(30)`)));
    expect((err as { code?: string }).code).toBe("57014");
    expect(await sleepers()).toBe(0);
  });

  it("cancels any statement past the connection's ceiling, with or without a deadline", async () => {
    const tight = connect(db.url, { max: 1, statementTimeoutMs: 300 });
    try {
      const plain = await failure(tight`SELECT pg_sleep(30)`);
      const withLongDeadline = await failure(withDeadline(soon(60_000), () => boundedRead(tight, (q) => q`SELECT pg_sleep(30)`)));
      expect([(plain as { code?: string }).code, (withLongDeadline as { code?: string }).code]).toEqual(["57014", "57014"]);
      expect(await sleepers()).toBe(0);
    } finally {
      await tight.end();
    }
  });

  it("sends nothing once the deadline has passed: DEADLINE_EXCEEDED", async () => {
    let ran = 0;
    const err = await failure(withDeadline(new Date(Date.now() - 1), () => transaction(sql, async () => ran++)));
    expect(err).toBeInstanceOf(KmsError);
    expect([(err as KmsError).status, (err as KmsError).code, ran]).toEqual([status.DEADLINE_EXCEEDED, "DeadlineExceeded", 0]);
  });

  it("sets a timeout only when the deadline is tighter than the ceiling, and never outside a call", () => {
    const now = Date.now();
    expect(callTimeoutMs(sql, now)).toBeUndefined();
    withDeadline(new Date(now + 250), async () => {
      expect(callTimeoutMs(sql, now)).toBe(250);
      expect(withoutDeadline(() => callTimeoutMs(sql, now))).toBeUndefined();
    });
    withDeadline(new Date(now + 120_000), async () => expect(callTimeoutMs(sql, now)).toBeUndefined());
  });

  it("leaves queries that finish in time alone", async () => {
    const rows = await withDeadline(soon(5000), () => boundedRead(sql, (q) => q<{ one: number }[]>`SELECT 1 AS one`));
    expect(rows.map((r) => r.one)).toEqual([1]);
  });
});
