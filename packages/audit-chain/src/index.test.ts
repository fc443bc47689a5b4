import { createHash } from "node:crypto";
import { ChainVerifier, GENESIS_HASH, canonicalRow, chainRows, rowHash } from "./index";
import type { AuditRow, ChainedRow } from "./index";
import { readDump } from "./dump";

const base = (i: number): Omit<AuditRow, "sequence"> => ({
  time: new Date(Date.UTC(2026, 0, 1, 0, 0, i)),
  requestId: `r${i}`,
  principal: "spiffe://example.org/ns/app/sa/web",
  operation: i % 2 ? "Encrypt" : "Decrypt",
  keyId: "0f8e2b9c-3d4a-4e5f-8a6b-7c8d9e0f1a2b",
  keyVersionId: "",
  resultCode: "OK",
  errorCode: "",
  encryptionContext: { tenant: `t${i}`, "tab\there": "new\nline" },
});

const chain = (n: number) => chainRows({ sequence: 0, hash: GENESIS_HASH }, Array.from({ length: n }, (_, i) => base(i + 1)));

function verify(rows: ChainedRow[], head?: { sequence: number; hash: Buffer }) {
  const v = new ChainVerifier();
  for (const r of rows) if (!v.add(r)) break;
  return v.result(head);
}

describe("hash chain", () => {
  it("verifies an intact chain", () => {
    const rows = chain(5);
    expect(rows.map((r) => r.sequence)).toEqual([1, 2, 3, 4, 5]);
    expect(verify(rows, { sequence: 5, hash: rows[4]!.hash })).toEqual({ verifiedCount: 5, ok: true, firstBadSequence: 0, problem: "" });
  });

  it("continues from a head", () => {
    const first = chain(3);
    const more = chainRows({ sequence: 3, hash: first[2]!.hash }, [base(9)]);
    expect(more[0]!.sequence).toBe(4);
    expect(verify([...first, ...more]).ok).toBe(true);
  });

  it("names the first edited row", () => {
    const rows = chain(5);
    rows[2] = { ...rows[2]!, principal: "mallory" };
    expect(verify(rows)).toMatchObject({ ok: false, firstBadSequence: 3, verifiedCount: 2 });
  });

  it("names the first row after a deleted one", () => {
    const rows = chain(5);
    rows.splice(1, 1);
    expect(verify(rows)).toMatchObject({ ok: false, firstBadSequence: 2, problem: "rows 2..2 are missing" });
  });

  it("detects an inserted row even with a plausible sequence", () => {
    const rows = chain(4);
    const forged = { ...rows[1]!, requestId: "forged" };
    rows.splice(2, 0, forged);
    const r = verify(rows);
    expect(r.ok).toBe(false);
    expect(r.firstBadSequence).toBe(2);
  });

  it("detects reordering", () => {
    const rows = chain(4);
    [rows[1], rows[2]] = [rows[2]!, rows[1]!];
    expect(verify(rows)).toMatchObject({ ok: false, firstBadSequence: 2 });
  });

  it("detects rows missing at the end against the recorded head", () => {
    const rows = chain(5);
    const head = { sequence: 5, hash: rows[4]!.hash };
    expect(verify(rows.slice(0, 3), head)).toMatchObject({ ok: false, firstBadSequence: 4 });
  });

  it("detects rows added after the recorded head", () => {
    const rows = chain(5);
    expect(verify(rows, { sequence: 4, hash: rows[3]!.hash })).toMatchObject({ ok: false, firstBadSequence: 5, problem: "rows after the recorded head" });
  });

  it("has a fixed encoding", () => {
    const row = { ...base(1), sequence: 258, time: new Date("2026-01-01T00:00:00.000Z"), encryptionContext: { b: "2", a: "é" } };
    const hex = canonicalRow(row).toString("hex");
    const f = (s: string) => Buffer.byteLength(s).toString(16).padStart(8, "0") + Buffer.from(s).toString("hex");
    expect(hex).toBe(
      "0000000000000102" +
        [row.time.toISOString(), row.requestId, row.principal, row.operation, row.keyId, row.keyVersionId, row.resultCode, row.errorCode, "2", "a", "é", "b", "2"].map(f).join(""),
    );
  });

  it("encodes the context canonically", () => {
    const a = canonicalRow({ ...base(1), sequence: 1, encryptionContext: { a: "1", b: "2" } });
    const b = canonicalRow({ ...base(1), sequence: 1, encryptionContext: { b: "2", a: "1" } });
    expect(a).toEqual(b);
    const c = canonicalRow({ ...base(1), sequence: 1, encryptionContext: { ab: "" } });
    const d = canonicalRow({ ...base(1), sequence: 1, encryptionContext: { a: "b" } });
    expect(c).not.toEqual(d);
  });
});

describe("readDump", () => {
  const hex = (b: Buffer) => `\\\\x${b.toString("hex")}`;
  const esc = (s: string) => s.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n");
  function dumpOf(rows: ChainedRow[], head?: { sequence: number; hash: Buffer }): string {
    const lines = [
      "-- PostgreSQL database dump",
      "COPY public.audit_events (sequence, \"time\", request_id, principal, operation, key_id, key_version_id, result_code, error_code, encryption_context, prev_hash, hash) FROM stdin;",
      ...rows.map((r) =>
        [
          r.sequence,
          r.time.toISOString().replace("T", " ").replace("Z", "+00"),
          r.requestId,
          r.principal,
          r.operation,
          r.keyId,
          r.keyVersionId,
          r.resultCode,
          r.errorCode,
          esc(JSON.stringify(r.encryptionContext)),
          hex(r.prevHash),
          hex(r.hash),
        ].join("\t"),
      ),
      "\\.",
    ];
    if (head) lines.push("COPY public.audit_head (id, sequence, hash) FROM stdin;", `1\t${head.sequence}\t${hex(head.hash)}`, "\\.");
    return lines.join("\n") + "\n";
  }

  it("reads rows and the head back exactly", () => {
    const rows = chain(3);
    const dump = readDump(dumpOf(rows, { sequence: 3, hash: rows[2]!.hash }));
    expect(dump.rows).toEqual(rows);
    expect(dump.head?.sequence).toBe(3);
    expect(verify(dump.rows, dump.head).ok).toBe(true);
  });

  it("finds a tampered row in a dump", () => {
    const rows = chain(3);
    const text = dumpOf(rows).replace("\tr2\t", "\tr2-edited\t");
    const dump = readDump(text);
    expect(verify(dump.rows)).toMatchObject({ ok: false, firstBadSequence: 2 });
  });
});

describe("row hash", () => {
  it("is SHA-256(previous hash ‖ canonical row), fixed forever: stored chains must keep verifying", () => {
    const row = {
      sequence: 42,
      time: new Date(0),
      requestId: "r",
      principal: "p€",
      operation: "Encrypt",
      keyId: "k",
      keyVersionId: "v",
      resultCode: "OK",
      errorCode: "",
      encryptionContext: { b: "2", a: "1" },
    };
    const prev = Buffer.alloc(32, 7);
    const expected = "3483efdb384d761781c4de31e04a6c1f0718f53701c0fed270775e9230d1a6ce";
    expect(rowHash(prev, row).toString("hex")).toBe(expected);
    expect(createHash("sha256").update(prev).update(canonicalRow(row)).digest("hex")).toBe(expected);
  });
});

describe("the grant and dry-run fields (migration 9)", () => {
  const row: AuditRow = { ...base(1), sequence: 1 };
  const prev = Buffer.alloc(32, 7);

  it("leave a row without them hashing as before", () => {
    expect(rowHash(prev, { ...row, grantId: "", dryRun: false })).toEqual(rowHash(prev, row));
  });

  it("are covered by the hash when set, and cannot pass for a context entry", () => {
    const hashes = [
      rowHash(prev, row),
      rowHash(prev, { ...row, grantId: "g1" }),
      rowHash(prev, { ...row, grantId: "g2" }),
      rowHash(prev, { ...row, dryRun: true }),
      rowHash(prev, { ...row, grantId: "g1", dryRun: true }),
    ].map((h) => h.toString("hex"));
    expect(new Set(hashes).size).toBe(hashes.length);
    // The context's entry count fixes where it ends: a "grant=…" value inside it is another row.
    const inContext = { ...row, encryptionContext: { ...row.encryptionContext, "grant=g1": "" } };
    expect(canonicalRow(inContext).equals(canonicalRow({ ...row, grantId: "g1" }))).toBe(false);
  });

  it("are read back from a dump that has their columns", () => {
    const rows = chainRows({ sequence: 0, hash: GENESIS_HASH }, [{ ...base(1), grantId: "g1", dryRun: true }, base(2)]);
    const hex = (b: Buffer) => `\\\\x${b.toString("hex")}`;
    const line = (r: ChainedRow) =>
      [r.sequence, r.time.toISOString().replace("T", " ").replace("Z", "+00"), r.requestId, r.principal, r.operation, r.keyId, r.keyVersionId,
        r.resultCode, r.errorCode, JSON.stringify(r.encryptionContext).replaceAll("\\", "\\\\").replaceAll("\t", "\\t").replaceAll("\n", "\\n"),
        r.grantId ?? "", r.dryRun ? "t" : "f", hex(r.prevHash), hex(r.hash)].join("\t");
    const dump = [
      "COPY public.audit_events (sequence, \"time\", request_id, principal, operation, key_id, key_version_id, result_code, error_code, encryption_context, grant_id, dry_run, prev_hash, hash) FROM stdin;",
      ...rows.map(line),
      "\\.",
      "",
    ].join("\n");
    const read = readDump(dump).rows;
    expect(read.map((r) => [r.grantId, r.dryRun])).toEqual([["g1", true], [undefined, undefined]]);
    expect(verify(read).ok).toBe(true);
  });
});
