// UpdateAlias checks the key an alias leaves inside the transaction that moves it (issue 15 #11): lockAlias()
// holds a concurrent mover until the first commits, and the second then sees the alias where the first
// left it, so it checks (and is refused on) the key the alias points at now. Real Postgres, scratch DB.
import { AliasStore } from "./alias-store";
import { AuditWriter } from "./audit-writer";
import { connect } from "./connect";
import type { Sql } from "./connect";
import { KeyStore } from "./key-store";
import { newKey } from "./test-keys";
import { migrate } from "./migrate";
import { createScratchDatabase } from "./scratch";
import { Transactions } from "./unit-of-work";
import type { ScratchDatabase } from "./scratch";

let db: ScratchDatabase;
let sql: Sql;

beforeAll(async () => {
  db = await createScratchDatabase("kms_unit_alias");
  sql = connect(db.url);
  await migrate(sql);
});

afterAll(async () => {
  await sql.end();
  await db.drop();
});


it("a mover that raced another checks the key the alias points at after the first move", async () => {
  const store = new KeyStore(sql);
  const aliases = new AliasStore(sql);
  const [mine, theirs] = [newKey({ creator: "alice" }), newKey({ creator: "carol" })];
  for (const k of [mine, theirs]) await store.createKey(k, undefined);
  const now = new Date();
  const transactions = new Transactions(sql, new AuditWriter(sql));
  await transactions.run((work) => work.createAlias({ aliasName: "alias/race", keyId: mine.keyId, creationTime: now, updateTime: now }));

  const steps: string[] = [];
  let firstLocked!: () => void;
  const locked = new Promise<void>((r) => (firstLocked = r));
  let letFirstCommit!: () => void;
  const commit = new Promise<void>((r) => (letFirstCommit = r));

  // carol moves alias/race onto her key (she may: say she also holds the old key's permission).
  const first = transactions.run(async (work) => {
    const alias = await work.lockAlias("alias/race");
    steps.push("first locked");
    firstLocked();
    await commit;
    await alias!.pointAt(theirs.keyId, new Date());
    steps.push("first moved");
  });
  await locked;
  // alice, allowed on her own keys only, moves it at the same moment: the key whose
  // permission she needs is read only once the first move has committed.
  const second = transactions.run(async (work) => {
    const current = await work.lockAlias("alias/race");
    steps.push("second locked");
    const leaving = current ? await current.target() : undefined;
    return leaving?.creator;
  });
  // Give the second transaction every chance to get ahead; it cannot while the first holds the row.
  for (let i = 0; i < 5; i++) await sql`SELECT 1`;
  steps.push("first commits");
  letFirstCommit();
  await first;
  const leavingCreator = await second;

  expect(steps).toEqual(["first locked", "first commits", "first moved", "second locked"]);
  // alice's check sees carol's key: her authorizeKey() on it would refuse the move.
  expect(leavingCreator).toBe("carol");
  expect((await aliases.get("alias/race"))?.keyId).toBe(theirs.keyId);
});
