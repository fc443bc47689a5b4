// Runs against the real Postgres at KMS_TEST_DATABASE_URL (default: local server), in a scratch database.
import { randomUUID } from "node:crypto";
import { connect } from "./connect";
import { migrate } from "./migrate";
import { MIGRATIONS } from "./migrations";
import { KeyStore } from "./key-store";
import { newKey } from "./test-keys";
import { AuditWriter } from "./audit-writer";
import type { AuditEvent } from "./audit-writer";
import { AuditReader } from "./audit-reader";
import { createScratchDatabase } from "./scratch";
import type { ScratchDatabase } from "./scratch";
import type { Sql } from "./connect";

let db: ScratchDatabase;
let sql: Sql;

beforeAll(async () => {
  db = await createScratchDatabase("kms_unit_db");
  sql = connect(db.url);
});

afterAll(async () => {
  await sql.end();
  await db.drop();
});


describe("migrate", () => {
  it("applies each migration once when two replicas start together", async () => {
    const other = connect(db.url);
    try {
      const [a, b] = await Promise.all([migrate(sql), migrate(other)]);
      expect([...a, ...b].sort()).toEqual(MIGRATIONS.map((m) => m.version));
      expect(await migrate(sql)).toEqual([]);
      const rows = await sql<{ version: number }[]>`SELECT version FROM schema_migrations ORDER BY version`;
      expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
    } finally {
      await other.end();
    }
  });
});

describe("KeyStore", () => {
  const store = () => new KeyStore(sql);

  it("stores a key with its primary version and tags", async () => {
    const key = newKey({ tags: { team: "a", env: "prod" } });
    const versionId = randomUUID();
    await store().createKey(key, {
      keyVersionId: versionId,
      keyId: key.keyId,
      creationTime: key.creationTime,
      wrappedMaterial: Buffer.from("wrapped"),
      rootKeyId: "root-1",
    });
    const got = await store().getKey(key.keyId);
    expect(got?.primaryKeyVersionId).toBe(versionId);
    expect(got?.tags).toEqual({ team: "a", env: "prod" });
    expect(got?.creationTime.getTime()).toBe(key.creationTime.getTime());
    const version = await store().getVersion(versionId);
    expect(version?.wrappedMaterial).toEqual(Buffer.from("wrapped"));
    expect(version?.rootKeyId).toBe("root-1");
    expect(await store().getKey(randomUUID())).toBeUndefined();
  });

  it("pages by creation time and filters by state, spec and tag", async () => {
    const base = Date.parse("2020-01-01T00:00:00Z");
    const keys = [0, 1, 2, 3].map((i) =>
      newKey({ creationTime: new Date(base + i), keyState: i === 3 ? 2 : 1, keySpec: i === 2 ? 2 : 1, tags: i === 1 ? { pick: "me" } : {} }),
    );
    for (const k of keys) await store().createKey(k, undefined);
    const ids = keys.map((k) => k.keyId);

    const first = await store().listKeys(2, undefined);
    expect(first.map((k) => k.keyId)).toEqual(ids.slice(0, 2));
    const last = first[1]!;
    const second = await store().listKeys(2, { creationTime: last.creationTime, keyId: last.keyId });
    expect(second.map((k) => k.keyId)).toEqual(ids.slice(2, 4));

    expect((await store().listKeys(10, undefined, { keyStates: [2] })).map((k) => k.keyId)).toEqual([ids[3]]);
    expect((await store().listKeys(10, undefined, { keySpecs: [2] })).map((k) => k.keyId)).toEqual([ids[2]]);
    expect((await store().listKeys(10, undefined, { tags: { pick: "me" } })).map((k) => k.keyId)).toEqual([ids[1]]);
  });

  it("shares one secret between replicas", async () => {
    const a = await store().sharedSecret("s", Buffer.from("first"));
    const b = await store().sharedSecret("s", Buffer.from("second"));
    expect(a).toEqual(Buffer.from("first"));
    expect(b).toEqual(Buffer.from("first"));
  });
});

describe("AuditWriter", () => {
  /** An audit event: an OK Encrypt by "dev" unless `fields` says otherwise. */
  const auditEvent = (fields: Partial<AuditEvent> = {}): AuditEvent => ({
    time: new Date(),
    requestId: "r",
    principal: "dev",
    operation: "Encrypt",
    keyId: "",
    keyVersionId: "",
    resultCode: "OK",
    errorCode: "",
    encryptionContext: {},
    ...fields,
  });

  it("writes every row, many per batch, before resolving", async () => {
    const writer = new AuditWriter(sql, 50);
    const before = await sql<{ n: string }[]>`SELECT count(*)::text AS n FROM audit_events`;
    const appended = Array.from({ length: 120 }, (_, i) =>
      writer.append(auditEvent({ requestId: `r${i}`, encryptionContext: { i: String(i) } })),
    );
    await Promise.all(appended);
    const after = await sql<{ n: string }[]>`SELECT count(*)::text AS n FROM audit_events`;
    expect(Number(after[0]!.n) - Number(before[0]!.n)).toBe(120);
  });

  it("writes the rows appended in one event-loop turn as one batch", async () => {
    const writer = new AuditWriter(sql);
    await writer.append(auditEvent({ requestId: "turn-first" })); // learns the head
    const before = { ...writer.batches };
    // As when one worker answer releases many calls: all append before the writer's next turn.
    await Promise.all(Array.from({ length: 30 }, (_, i) => writer.append(auditEvent({ requestId: `turn${i}` }))));
    expect(writer.batches.fast + writer.batches.locked - before.fast - before.locked).toBe(1);
  });


  it("starts a lone row's batch before the next turn, and a row among others' on it", async () => {
    const writer = new AuditWriter(sql);
    await writer.append(auditEvent({ requestId: "lone-first" })); // learns the head
    let started = 0;
    writer.beforeWrite = () => void started++;
    const microtasks = async (n: number) => {
      for (let i = 0; i < n; i++) await Promise.resolve();
    };
    writer.alone = () => true;
    const lone = writer.append(auditEvent({ requestId: "lone" }));
    await microtasks(3);
    expect(started).toBe(1); // no event-loop turn has passed
    await lone;

    writer.alone = () => false;
    const among = writer.append(auditEvent({ requestId: "among-others" }));
    await microtasks(10);
    expect(started).toBe(1); // waits for the rows other calls append in this turn
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(started).toBe(2);
    await among;
    const rows = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM audit_events WHERE request_id IN ('lone', 'among-others')`;
    expect(rows[0]!.n).toBe(2);
  });
  it("keeps one intact chain when two replicas write at once", async () => {
    const other = connect(db.url);
    try {
      const writers = [new AuditWriter(sql, 7), new AuditWriter(other, 5)];
      const event = (w: number, i: number) => auditEvent({ requestId: `w${w}-${i}`, principal: `p${w}`, operation: "Decrypt" });
      await Promise.all(writers.flatMap((wr, w) => Array.from({ length: 60 }, (_, i) => wr.append(event(w, i)))));
      // Then one replica alone again: after a locked batch that sees no one else wrote, it goes fast.
      const fastBefore = writers[0]!.batches.fast;
      for (let i = 0; i < 4; i++) await writers[0]!.append(event(0, 100 + i));
      expect(writers[0]!.batches.fast - fastBefore).toBeGreaterThanOrEqual(2);
      const result = await new AuditReader(sql).verify();
      expect(result.ok).toBe(true);
      const count = await sql<{ n: string }[]>`SELECT count(*)::text AS n FROM audit_events`;
      expect(result.verifiedCount).toBe(Number(count[0]!.n));
      expect((await new AuditReader(sql).list({ principal: "p1" }, 0, 1000)).length).toBe(60);
      expect((await new AuditReader(sql).list({ principal: "p0" }, 0, 1000)).length).toBe(64);
    } finally {
      await other.end();
    }
  });

  it("writes a lone replica's batches in one statement, and notices a row put in its way by hand", async () => {
    const writer = new AuditWriter(sql, 10);
    const event = (i: number) => auditEvent({ requestId: `fast${i}`, encryptionContext: { i: String(i) } });
    await writer.append(event(0)); // learns the head under the lock
    for (let i = 1; i <= 5; i++) await writer.append(event(i));
    expect(writer.batches).toEqual({ fast: 5, locked: 1 });

    const forged: number[] = [];
    writer.onTampering = (sequence) => forged.push(sequence);
    const [head] = await sql<{ sequence: string }[]>`SELECT sequence::text FROM audit_head WHERE id = 1`;
    const next = Number(head!.sequence) + 1;
    await sql`INSERT INTO audit_events (sequence, time, request_id, principal, operation, result_code, prev_hash, hash)
              VALUES (${next}, now(), 'forged', 'mallory', 'Decrypt', 'OK', ${Buffer.alloc(32)}, ${Buffer.alloc(32)})`;
    await writer.append(event(6));
    expect(forged).toEqual([next]);
    expect(writer.batches).toEqual({ fast: 5, locked: 2 });
    expect(await new AuditReader(sql).verify()).toMatchObject({ ok: false, firstBadSequence: next });
    await sql`DELETE FROM audit_events WHERE sequence >= ${next}`; // leave an intact chain for the next test
    await sql`UPDATE audit_head SET sequence = ${next - 1}, hash = (SELECT hash FROM audit_events WHERE sequence = ${next - 1}) WHERE id = 1`;
    expect((await new AuditReader(sql).verify()).ok).toBe(true);
  });

  it("stores a row holding U+0000 or a lone surrogate (which Postgres refuses) with U+FFFD, without failing its batch", async () => {
    const writer = new AuditWriter(sql, 10);
    const event = (principal: string, encryptionContext: Record<string, string>) => auditEvent({ requestId: "nul", principal, encryptionContext });
    await Promise.all([
      writer.append(event("a\u0000b", { "k\u0000": "v\u0000" })),
      writer.append(event("neighbour", {})),
      writer.append(event("c\ud800d", { s: "\udc00" })),
    ]);
    const rows = await sql<{ principal: string; encryptionContext: Record<string, string> }[]>`
      SELECT principal, encryption_context FROM audit_events WHERE request_id = 'nul' ORDER BY sequence`;
    expect(rows.map((r) => [r.principal, r.encryptionContext])).toEqual([
      ["a\ufffdb", { "k\ufffd": "v\ufffd" }],
      ["neighbour", {}],
      ["c\ufffdd", { s: "\ufffd" }],
    ]);
    expect((await new AuditReader(sql).verify()).ok).toBe(true);
  });

  it("commits a row appended in a transaction with it or not at all, in one chain with concurrent batches", async () => {
    const writer = new AuditWriter(sql, 10);
    const other = new AuditWriter(sql, 10);
    const count = async (requestId: string) =>
      Number((await sql<{ n: string }[]>`SELECT count(*)::text AS n FROM audit_events WHERE request_id = ${requestId}`)[0]!.n);
    // A change whose transaction fails after its row: neither the change nor the row stays.
    const failed = sql.begin(async (tx) => {
      await tx`INSERT INTO service_secrets (name, value) VALUES ('tx-change', ${Buffer.from("x")})`;
      await writer.appendInTransaction(tx, auditEvent({ requestId: "tx-rolled-back" }));
      throw new Error("the change failed after its row");
    });
    await expect(failed).rejects.toThrow("the change failed after its row");
    expect(await count("tx-rolled-back")).toBe(0);
    expect((await sql`SELECT 1 FROM service_secrets WHERE name = 'tx-change'`).length).toBe(0);
    // Changes interleaved with both writers' group commits: every row once, one intact chain.
    await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => writer.append(auditEvent({ requestId: "tx-batch", encryptionContext: { i: String(i) } }))),
      ...Array.from({ length: 20 }, (_, i) => other.append(auditEvent({ requestId: "tx-batch", encryptionContext: { o: String(i) } }))),
      ...Array.from({ length: 5 }, () => sql.begin((tx) => writer.appendInTransaction(tx, auditEvent({ requestId: "tx-change" })))),
    ]);
    for (let i = 0; i < 3; i++) await writer.append(auditEvent({ requestId: "tx-batch" })); // after a change: re-reads the head
    expect([await count("tx-batch"), await count("tx-change")]).toEqual([43, 5]);
    expect(await new AuditReader(sql).verify()).toMatchObject({ ok: true });
  });

  it("refuses every write once the head is found behind one it wrote (rows cut, head rewound by hand)", async () => {
    const writer = new AuditWriter(sql, 10);
    const rewinds: number[] = [];
    writer.onRewind = (err) => rewinds.push(err.found.sequence, err.known.sequence);
    for (let i = 0; i < 3; i++) await writer.append(auditEvent({ requestId: `rewind${i}` }));
    const [head] = await sql<{ sequence: string }[]>`SELECT sequence::text FROM audit_head WHERE id = 1`;
    const top = Number(head!.sequence);
    const saved = await sql`SELECT * FROM audit_events WHERE sequence > ${top - 2} ORDER BY sequence`;
    await sql`DELETE FROM audit_events WHERE sequence > ${top - 2}`;
    await sql`UPDATE audit_head SET sequence = ${top - 2}, hash = (SELECT hash FROM audit_events WHERE sequence = ${top - 2}) WHERE id = 1`;
    await expect(writer.append(auditEvent({ requestId: "after-rewind" }))).rejects.toThrow(`audit chain head moved back: it is at sequence ${top - 2}`);
    await expect(sql.begin((tx) => writer.appendInTransaction(tx, auditEvent({ requestId: "after-rewind" })))).rejects.toThrow("audit chain head moved back");
    expect(rewinds).toEqual([top - 2, top]);
    expect(writer.rewound?.known.sequence).toBe(top);
    // A writer that never saw the newer head cannot tell (signed checkpoints can): put the rows back.
    for (const r of saved) await sql`INSERT INTO audit_events ${sql(r)}`;
    await sql`UPDATE audit_head SET sequence = ${top}, hash = (SELECT hash FROM audit_events WHERE sequence = ${top}) WHERE id = 1`;
    expect(await new AuditReader(sql).verify()).toMatchObject({ ok: true });
  });

  it("finds edited, deleted and inserted rows", async () => {
    const reader = new AuditReader(sql);
    expect((await reader.verify()).ok).toBe(true);
    await sql`UPDATE audit_events SET principal = 'mallory' WHERE sequence = 5`;
    expect(await reader.verify()).toMatchObject({ ok: false, firstBadSequence: 5 });
    expect(await reader.verify(6)).toMatchObject({ ok: true });
    await sql`DELETE FROM audit_events WHERE sequence = 5`;
    expect(await reader.verify()).toMatchObject({ ok: false, firstBadSequence: 5, problem: "rows 5..5 are missing" });
  });

  it("rejects every waiting row when the database is gone", async () => {
    const dead = connect("postgres://postgres@127.0.0.1:1/none");
    const writer = new AuditWriter(dead);
    const event = auditEvent({ requestId: "x" });
    const results = await Promise.allSettled([writer.append(event), writer.append(event)]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    await dead.end();
  });
});
