import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";
import { startEmbeddedPostgres } from "./embedded-postgres";

// PGlite loads node builtins with dynamic import(), which jest's module sandbox refuses without
// --experimental-vm-modules; so the test takes PGlite from Node's own loader (Module._load) instead.
jest.mock("@electric-sql/pglite", () =>
  require("node:module")._load(require.resolve("@electric-sql/pglite"), null, false),
);
jest.setTimeout(60_000);

describe("startEmbeddedPostgres", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "kms-pg-test-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("serves postgres.js over one connection and keeps rows across a close and reopen", async () => {
    const dataDir = path.join(dir, "pg");
    const first = await startEmbeddedPostgres({ dataDir });
    expect(first.url).toBe(`postgres://postgres@127.0.0.1:${first.port}/postgres?max=1`);
    expect(first.port).toBeGreaterThan(0);
    const sql = postgres(first.url, { onnotice: () => {} });
    try {
      expect(sql.options.max).toBe("1"); // from the URL query (postgres.js keeps it a string)
      await sql`CREATE TABLE t (id int PRIMARY KEY, note text)`;
      // Two transactions at once over the one connection: postgres.js queues the second.
      await Promise.all([
        sql.begin(async (tx) => {
          await tx`INSERT INTO t VALUES (1, 'one')`;
        }),
        sql.begin(async (tx) => {
          await tx`INSERT INTO t VALUES (2, 'two')`;
        }),
      ]);
    } finally {
      await sql.end();
    }
    await first.close();
    await first.close(); // idempotent

    const second = await startEmbeddedPostgres({ dataDir });
    const sql2 = postgres(second.url);
    try {
      const rows = await sql2<{ id: number; note: string }[]>`SELECT id, note FROM t ORDER BY id`;
      expect(rows.map((r) => [r.id, r.note])).toEqual([
        [1, "one"],
        [2, "two"],
      ]);
    } finally {
      await sql2.end();
      await second.close();
    }
  });
});
