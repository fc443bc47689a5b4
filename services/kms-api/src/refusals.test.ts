import type { AuditEvent } from "@kms/db";
import { OTHER_PEERS, RefusalAudit } from "./refusals";
import type { Refusal } from "./refusals";

const silent = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };

function recorder() {
  const rows: AuditEvent[] = [];
  let failing = false;
  return {
    rows,
    fail: (on: boolean) => (failing = on),
    append: async (e: AuditEvent) => {
      if (failing) throw new Error("database down");
      rows.push(e);
    },
  };
}

const at = (s: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, s));
const refusal = (n: number, over: Partial<Refusal> = {}): Refusal => ({
  time: at(n),
  requestId: `r${n}`,
  principal: "",
  peer: "ip:10.0.0.7",
  operation: "ListKeys",
  resultCode: "UNAUTHENTICATED",
  errorCode: "Unauthenticated",
  ...over,
});
const brief = (e: AuditEvent) => [e.time.getUTCSeconds(), e.requestId, e.principal, e.operation, e.resultCode, e.errorCode, e.encryptionContext];

describe("RefusalAudit", () => {
  it("writes the first refusal of a window at once, counts the others into one summary row at the window's end", async () => {
    const audit = recorder();
    const refusals = new RefusalAudit(audit, 1000, silent);
    for (let i = 1; i <= 100; i++) await refusals.record(refusal(i));
    expect(audit.rows.map(brief)).toEqual([[1, "r1", "", "ListKeys", "UNAUTHENTICATED", "Unauthenticated", { "kms:peer": "ip:10.0.0.7" }]]);
    await refusals.flush();
    expect(audit.rows.slice(1).map(brief)).toEqual([
      [40, "r100", "", "ListKeys", "UNAUTHENTICATED", "Unauthenticated", { "kms:peer": "ip:10.0.0.7", "kms:refusals": "99", "kms:first": at(2).toISOString(), "kms:last": at(100).toISOString() }],
    ]);
    // A new window: the next refusal is written again; a window with a single refusal needs no summary.
    await refusals.record(refusal(101));
    await refusals.flush();
    expect(audit.rows.map((r) => r.requestId)).toEqual(["r1", "r100", "r101"]);
  });

  it("tallies an authenticated caller by principal, an anonymous one by peer, and each operation and reason apart", async () => {
    const audit = recorder();
    const refusals = new RefusalAudit(audit, 1000, silent);
    const calls = [
      refusal(1),
      refusal(2, { peer: "ip:10.0.0.8" }),
      refusal(3, { operation: "Encrypt" }),
      refusal(4, { principal: "bob", resultCode: "RESOURCE_EXHAUSTED", errorCode: "Throttling" }),
      refusal(5, { principal: "bob", peer: "ip:10.0.0.9", resultCode: "RESOURCE_EXHAUSTED", errorCode: "Throttling" }), // bob's tally
    ];
    for (const c of calls) await refusals.record(c);
    expect(audit.rows.map((r) => r.requestId)).toEqual(["r1", "r2", "r3", "r4"]);
    await refusals.flush();
    expect(audit.rows.slice(4).map(brief)).toEqual([
      [5, "r5", "bob", "ListKeys", "RESOURCE_EXHAUSTED", "Throttling", { "kms:peer": "ip:10.0.0.7", "kms:refusals": "1", "kms:first": at(5).toISOString(), "kms:last": at(5).toISOString() }],
    ]);
  });

  it("bounds the tallies of one window: newcomers beyond 1000 share one overflow tally per reason", async () => {
    const audit = recorder();
    const refusals = new RefusalAudit(audit, 1000, silent);
    for (let i = 0; i < 1500; i++) await refusals.record(refusal(i % 60, { peer: `ip:10.0.${i >> 8}.${i & 255}`, requestId: `r${i}` }));
    expect(audit.rows).toHaveLength(1001);
    expect(brief(audit.rows[1000]!)).toEqual([1000 % 60, "r1000", "", "", "UNAUTHENTICATED", "Unauthenticated", { "kms:peer": OTHER_PEERS }]);
    await refusals.flush();
    expect(audit.rows).toHaveLength(1002);
    expect(audit.rows[1001]!.encryptionContext).toMatchObject({ "kms:peer": OTHER_PEERS, "kms:refusals": "499" });
  });

  it("keeps an unwritten summary for the next window", async () => {
    const audit = recorder();
    const refusals = new RefusalAudit(audit, 1000, silent);
    for (let i = 1; i <= 5; i++) await refusals.record(refusal(i));
    audit.fail(true);
    await refusals.flush(); // 4 counted, not written: they stay in the window
    await refusals.record(refusal(6)); // counted with them, no row of its own
    audit.fail(false);
    await refusals.record(refusal(7));
    await refusals.stop();
    expect(audit.rows.map(brief)).toEqual([
      [1, "r1", "", "ListKeys", "UNAUTHENTICATED", "Unauthenticated", { "kms:peer": "ip:10.0.0.7" }],
      [7, "r7", "", "ListKeys", "UNAUTHENTICATED", "Unauthenticated", { "kms:peer": "ip:10.0.0.7", "kms:refusals": "6", "kms:first": at(2).toISOString(), "kms:last": at(7).toISOString() }],
    ]);
  });

  it("rejects a refusal whose own row cannot be written (the caller gets UNAVAILABLE); the window counts the next", async () => {
    const audit = recorder();
    const refusals = new RefusalAudit(audit, 1000, silent);
    audit.fail(true);
    await expect(refusals.record(refusal(1))).rejects.toThrow("database down");
    await refusals.record(refusal(2));
    audit.fail(false);
    await refusals.stop();
    expect(audit.rows.map((r) => [r.requestId, r.encryptionContext["kms:refusals"]])).toEqual([["r2", "1"]]);
  });
});
