// Limits that must not be walked around (issue 15, finding 6), through the real processes:
//   - a flood of forged bearer tokens from one peer is refused before authentication once the peer's
//     budget of failed authentications is spent, and is audited as a few aggregate rows (still chained);
//   - a batch counts one rate-limit token per item.
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { Metadata, status } from "@grpc/grpc-js";
import type { ServiceError } from "@grpc/grpc-js";
import { SignJWT, exportJWK } from "jose";
import postgres from "postgres";
import { errorCode, grpcError, startStack } from "../harness";
import type { Stack } from "../harness";

let stack: Stack;
let sql: postgres.Sql;

beforeAll(async () => {
  stack = await startStack();
  sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  await sql?.end();
  await stack?.stop();
});

const auditHead = async () => (await sql<{ n: number }[]>`SELECT COALESCE(max(sequence), 0)::int AS n FROM audit_events`)[0]!.n;

describe("a flood of forged bearer tokens from one peer", () => {
  const trusted = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const forger = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const token = (key: typeof trusted.privateKey, sub: string) =>
    new SignJWT({})
      .setProtectedHeader({ alg: "RS256", kid: "k1" })
      .setIssuer("https://issuer.test")
      .setAudience("kms")
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(key);
  const bearer = (jwt: string) => {
    const md = new Metadata();
    md.set("authorization", `Bearer ${jwt}`);
    return { metadata: md };
  };

  it("is refused with RESOURCE_EXHAUSTED once the peer's budget is spent, and audited as aggregate rows in the chain", async () => {
    const jwks = path.join(stack.dataDir, "limits-jwks.json");
    writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(trusted.publicKey)), kid: "k1", alg: "RS256", use: "sig" }] }));
    const BURST = 5;
    const replica = await stack.startReplica({
      KMS_JWT_JWKS_FILE: jwks,
      KMS_JWT_ISSUER: "https://issuer.test",
      KMS_JWT_AUDIENCE: "kms",
      KMS_AUTH_FAILURES_PER_SECOND: "1",
      KMS_AUTH_FAILURE_BURST: String(BURST),
      KMS_RATE_LIMIT_DELAY_MS: "0",
      // One window for the whole test: the summary rows are written at shutdown, so nothing here waits on a timer.
      KMS_AUDIT_REFUSAL_WINDOW_MS: "3600000",
    });
    const before = await auditHead();

    // A valid token first: authenticating costs the peer nothing.
    const good = bearer(await token(trusted.privateKey, "web"));
    expect((await replica.client.generateRandom({ numberOfBytes: 4 }, good)).random.length).toBe(4);

    // N distinct forged tokens (none is in the verified-token cache), all at once over one connection.
    const N = 300;
    const forged = await Promise.all(Array.from({ length: N }, (_, i) => token(forger.privateKey, `mallory-${i}`)));
    const started = performance.now();
    const answers = await Promise.all(forged.map((jwt) => grpcError(replica.client.listKeys({}, bearer(jwt)))));
    const seconds = Math.ceil((performance.now() - started) / 1000);
    const count = (code: status, kmsCode: string, details: string) =>
      answers.filter((e: ServiceError) => e.code === code && errorCode(e.metadata) === kmsCode && e.details === details).length;
    const unauthenticated = count(status.UNAUTHENTICATED, "Unauthenticated", "bearer token is not valid for this service");
    const throttled = count(status.RESOURCE_EXHAUSTED, "Throttling", "too many failed authentications from this peer; retry later");
    expect(unauthenticated + throttled).toBe(N); // no other answer
    // The burst, plus at most one a second of refill while the flood lasted; the rest never reached a verifier.
    expect(unauthenticated).toBeGreaterThanOrEqual(BURST);
    expect(unauthenticated).toBeLessThanOrEqual(BURST + seconds);

    // While the budget is spent, even a valid token from this peer is refused before it is looked at.
    const refusedGood = await grpcError(replica.client.generateRandom({ numberOfBytes: 4 }, bearer(await token(trusted.privateKey, "web-2"))));
    expect([refusedGood.code, errorCode(refusedGood.metadata)]).toEqual([status.RESOURCE_EXHAUSTED, "Throttling"]);

    // A graceful stop writes the window's summaries.
    replica.client.close();
    expect(await replica.api.stop()).toBe(0);

    const rows = await sql<{ operation: string; principal: string; resultCode: string; errorCode: string; context: Record<string, string> }[]>`
      SELECT operation, principal, result_code AS "resultCode", error_code AS "errorCode", encryption_context AS context
      FROM audit_events WHERE sequence > ${before} ORDER BY sequence`;
    // One row for the good call, and per (peer, operation, reason): the first refusal's own row and one
    // summary (GenerateRandom was refused once: no summary).
    expect(rows.length).toBe(1 + 2 + 2 + 1);
    expect(rows.length).toBeLessThan(N / 10);
    const peer = "ip:127.0.0.1";
    // (The flood's refusals finish in no fixed order: compare sorted.)
    const own = rows.filter((r) => r.context["kms:refusals"] === undefined).map((r) => [r.operation, r.principal, r.resultCode, r.errorCode, r.context]);
    expect(own.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))).toEqual([
      ["GenerateRandom", "", "RESOURCE_EXHAUSTED", "Throttling", { "kms:peer": peer }],
      ["GenerateRandom", "web", "OK", "", {}],
      ["ListKeys", "", "RESOURCE_EXHAUSTED", "Throttling", { "kms:peer": peer }],
      ["ListKeys", "", "UNAUTHENTICATED", "Unauthenticated", { "kms:peer": peer }],
    ]);
    const summaries = rows.filter((r) => r.context["kms:refusals"] !== undefined).sort((a, b) => a.resultCode.localeCompare(b.resultCode));
    expect(summaries.map((r) => ({ ...r, context: { ...r.context, "kms:first": "…", "kms:last": "…" } }))).toEqual([
      { operation: "ListKeys", principal: "", resultCode: "RESOURCE_EXHAUSTED", errorCode: "Throttling", context: { "kms:peer": peer, "kms:refusals": String(throttled - 1), "kms:first": "…", "kms:last": "…" } },
      { operation: "ListKeys", principal: "", resultCode: "UNAUTHENTICATED", errorCode: "Unauthenticated", context: { "kms:peer": peer, "kms:refusals": String(unauthenticated - 1), "kms:first": "…", "kms:last": "…" } },
    ]);
    for (const r of summaries) expect(r.context["kms:first"]! <= r.context["kms:last"]!).toBe(true);
    // Every refusal is accounted for: first rows count one, summaries their kms:refusals.
    const [sum] = await sql<{ n: number }[]>`
      SELECT sum(COALESCE((encryption_context->>'kms:refusals')::int, 1))::int AS n
      FROM audit_events WHERE sequence > ${before} AND operation = 'ListKeys' AND result_code IN ('UNAUTHENTICATED', 'RESOURCE_EXHAUSTED')`;
    expect(sum!.n).toBe(N);
    const verified = await stack.client.verifyAuditLog({});
    expect([verified.ok, verified.firstBadSequence]).toEqual([true, 0n]);
  });
});

describe("batches against the caller's rate limit", () => {
  it("count one token per item: a batch that does not fit is refused, one larger than the burst is never accepted", async () => {
    const keyId = (await stack.client.createKey({})).keyMetadata!.keyId;
    const { client } = await stack.startReplica({ KMS_RATE_LIMIT_PER_SECOND: "1", KMS_RATE_LIMIT_BURST: "20", KMS_RATE_LIMIT_DELAY_MS: "0" });
    const batch = (n: number) => client.batchEncrypt({ items: Array.from({ length: n }, (_, i) => ({ keyId, plaintext: Buffer.from(`item ${i}`) })) });

    // 15 of the 20 tokens.
    const first = await batch(15);
    expect(first.results.map((r) => r.status?.code)).toEqual(Array(15).fill(status.OK));
    // 15 more do not fit in what is left (5, plus one a second): refused whole, on its first token.
    const refused = await grpcError(batch(15));
    expect([refused.code, errorCode(refused.metadata), refused.details]).toEqual([
      status.RESOURCE_EXHAUSTED,
      "Throttling",
      "rate limit of 1 requests per second exceeded: a batch counts one per item, and 15 do not fit now; retry later or send fewer",
    ]);
    // The refused batch took only its own token: the caller's small calls still go through.
    expect((await client.encrypt({ keyId, plaintext: Buffer.from("single") })).keyId).toBe(keyId);
    // More items than the bucket holds could never fit: INVALID_ARGUMENT naming items.
    const tooBig = await grpcError(batch(21));
    expect([tooBig.code, errorCode(tooBig.metadata), tooBig.details]).toEqual([
      status.INVALID_ARGUMENT,
      "InvalidParameter",
      "items: must hold at most 20 items: each counts against the rate limit, whose burst is 20; got 21",
    ]);
    client.close();
  });
});
