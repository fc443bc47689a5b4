// Caller identity (mutual TLS, bearer JWTs), key policies, and the tamper-evident audit trail, through
// the real processes with certificates and tokens made in the test (test/auth-fixtures.ts).
import { createHmac, generateKeyPairSync, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { Client, credentials, Metadata, status } from "@grpc/grpc-js";
import { SignJWT, exportJWK } from "jose";
import postgres from "postgres";
import { createPromiseClient, kms } from "@kms/proto";
import { errorCode, grpcError } from "../harness";
import type { KmsClient } from "../harness";
import { startTcpProxy } from "../tcp-proxy";
import { ALICE, BOB, freePort, useAuthStack } from "../auth-fixtures";

const fixture = useAuthStack();
const { pki, server, alice, bob, twoUris, expired, stranger, tlsClient } = fixture;

describe("mutual TLS and key policies", () => {
  let address: string;
  let healthPort: number;
  const clients: KmsClient[] = [];
  const as = (who: { cert: string; key: string }) => {
    const c = tlsClient(address, who);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    healthPort = await freePort();
    const replica = await fixture.stack.startReplica({
      KMS_HEALTH_LISTEN: `127.0.0.1:${healthPort}`,
      KMS_TLS_CERT: server.cert,
      KMS_TLS_KEY: server.key,
      KMS_TLS_CLIENT_CA: pki.caCert,
      KMS_CREATORS: ALICE,
      KMS_ADMINS: "",
      KMS_AUDITORS: ALICE,
    });
    replica.client.close();
    address = replica.api.address;
  });
  afterAll(() => clients.forEach((c) => c.close()));

  it("takes the principal from the URI SAN, else the CN", async () => {
    const key = (await as(alice).createKey({})).keyMetadata!;
    expect(key.creator).toBe(ALICE);
    const err = await grpcError(as(bob).createKey({}));
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toBe(`CreateKey is not allowed for ${BOB} (KMS_CREATORS)`);
  });

  it("serves plaintext health (for Kubernetes probes) on KMS_HEALTH_LISTEN and nothing else there", async () => {
    const probe = new Client(`127.0.0.1:${healthPort}`, credentials.createInsecure());
    const call = (path: string) =>
      new Promise<Buffer>((resolve, reject) =>
        probe.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), { deadline: Date.now() + 5000 }, (err, res) =>
          err ? reject(err) : resolve(res!),
        ),
      );
    // HealthCheckResponse { status: SERVING (1) }
    expect((await call("/grpc.health.v1.Health/Check")).toString("hex")).toBe("0801");
    const err = await grpcError(call("/kms.v1.KeyManagementService/ListKeys"));
    expect(err.code).toBe(status.UNIMPLEMENTED);
    probe.close();
  });

  it("refuses a certificate with two URI SANs", async () => {
    const err = await grpcError(as(twoUris).listKeys({}));
    expect(err.code).toBe(status.UNAUTHENTICATED);
    expect(err.details).toBe("client certificate has 2 URI SANs; exactly one is allowed");
  });

  it("refuses a client certificate from an unknown CA and an expired one in the handshake", async () => {
    for (const who of [stranger, expired]) {
      const err = await grpcError(as(who).listKeys({}, { deadline: 5000 }));
      expect(err.code).toBe(status.UNAVAILABLE);
    }
    const plain = createPromiseClient(kms.KeyManagementService, address);
    clients.push(plain);
    expect((await grpcError(plain.listKeys({}, { deadline: 5000 }))).code).toBe(status.UNAVAILABLE);
  });

  it("allows one principal and denies another, with conditions and an explicit Deny", async () => {
    const a = as(alice);
    const b = as(bob);
    const keyId = (await a.createKey({})).keyMetadata!.keyId;
    const acme = await a.encrypt({ keyId, plaintext: Buffer.from("acme data"), encryptionContext: { tenant: "acme" } });
    const globex = await a.encrypt({ keyId, plaintext: Buffer.from("globex data"), encryptionContext: { tenant: "globex" } });

    // Default policy: only the creator.
    const denied = await grpcError(b.decrypt({ ciphertextBlob: acme.ciphertextBlob, encryptionContext: { tenant: "acme" } }));
    expect(denied.code).toBe(status.PERMISSION_DENIED);
    expect(errorCode(denied.metadata)).toBe("Forbidden.NoPermission");

    const policy = JSON.stringify({
      Version: "1",
      Statement: [
        { Sid: "owner", Effect: "Allow", Principal: [ALICE], Action: "kms:*", Resource: "*" },
        { Sid: "bob-decrypts-acme", Effect: "Allow", Principal: [BOB], Action: ["kms:Decrypt", "kms:Encrypt", "kms:DescribeKey"], Resource: "*",
          Condition: { StringEquals: { "kms:EncryptionContext:tenant": "acme" } } },
        { Sid: "no-encrypt-for-bob", Effect: "Deny", Principal: [BOB], Action: "kms:Encrypt", Resource: "*" },
      ],
    });
    expect((await a.setKeyPolicy({ keyId, policy })).policy).toBe(policy);
    expect((await a.getKeyPolicy({ keyId })).policy).toBe(policy);

    const ok = await b.decrypt({ ciphertextBlob: acme.ciphertextBlob, encryptionContext: { tenant: "acme" } });
    expect(Buffer.from(ok.plaintext).toString()).toBe("acme data");
    const wrongTenant = await grpcError(b.decrypt({ ciphertextBlob: globex.ciphertextBlob, encryptionContext: { tenant: "globex" } }));
    expect(wrongTenant.code).toBe(status.PERMISSION_DENIED);
    expect(wrongTenant.details).toBe(`kms:Decrypt on key ${keyId} is not allowed for ${BOB}`);
    const denyWins = await grpcError(b.encrypt({ keyId, plaintext: Buffer.from("x"), encryptionContext: { tenant: "acme" } }));
    expect(denyWins.code).toBe(status.PERMISSION_DENIED);
    expect(denyWins.details).toBe(`kms:Encrypt on key ${keyId} is denied by its key policy`);
    expect((await grpcError(b.disableKey({ keyId }))).code).toBe(status.PERMISSION_DENIED);
    // Policy is checked before state: bob learns nothing about a key he may not use.
    await a.disableKey({ keyId });
    expect((await grpcError(b.disableKey({ keyId }))).code).toBe(status.PERMISSION_DENIED);
  });

  it("validates policies, naming the bad path, and refuses a lockout", async () => {
    const a = as(alice);
    const keyId = (await a.createKey({})).keyMetadata!.keyId;
    const bad = await grpcError(a.setKeyPolicy({ keyId, policy: JSON.stringify({ Version: "1", Statement: [{ Effect: "Allow", Principal: "*", Action: "kms:Explode" }] }) }));
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.details).toBe('policy: Statement[0].Action[0]: "kms:Explode" matches no kms action');
    const lockout = await grpcError(a.setKeyPolicy({ keyId, policy: JSON.stringify({ Version: "1", Statement: [{ Effect: "Allow", Principal: BOB, Action: "kms:*" }] }) }));
    expect(lockout.code).toBe(status.INVALID_ARGUMENT);
    expect(lockout.details).toBe(`policy: would lock out ${ALICE}: it must allow them kms:SetKeyPolicy`);
    const bomb = await grpcError(a.setKeyPolicy({ keyId, policy: "[".repeat(40000) }));
    expect(bomb.code).toBe(status.INVALID_ARGUMENT);
    const name = await grpcError(a.getKeyPolicy({ keyId, policyName: "other" }));
    expect(name.details).toBe('policy_name: only "default" exists');
  });

  it("names the principal in the audit trail; only auditors read it", async () => {
    const a = as(alice);
    const keyId = (await a.createKey({})).keyMetadata!.keyId;
    await grpcError(as(bob).describeKey({ keyId }));
    const events = await a.listAuditEvents({ keyId });
    expect(events.events.map((e) => [e.operation, e.principal, e.resultCode])).toEqual([
      ["CreateKey", ALICE, "OK"],
      ["DescribeKey", BOB, "PERMISSION_DENIED"],
    ]);
    expect((await grpcError(as(bob).listAuditEvents({}))).code).toBe(status.PERMISSION_DENIED);
  });
});

describe("bearer JWTs", () => {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  let client: KmsClient;
  // null leaves the claim out.
  const token = (claims: { aud?: string; iss?: string; sub?: string | null; exp?: number | null }) => {
    const jwt = new SignJWT({}).setProtectedHeader({ alg: "RS256", kid: "k1" }).setIssuer(claims.iss ?? "https://issuer.test").setAudience(claims.aud ?? "kms").setIssuedAt();
    if (claims.sub !== null) jwt.setSubject(claims.sub ?? "system:serviceaccount:apps:web");
    if (claims.exp !== null) jwt.setExpirationTime(claims.exp ?? "5m");
    return jwt.sign(privateKey);
  };
  const bearer = async (claims: Parameters<typeof token>[0]) => {
    const md = new Metadata();
    md.set("authorization", `Bearer ${await token(claims)}`);
    return { metadata: md };
  };

  beforeAll(async () => {
    const jwks = path.join(fixture.stack.dataDir, "jwks.json");
    writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" }] }));
    const replica = await fixture.stack.startReplica({ KMS_JWT_JWKS_FILE: jwks, KMS_JWT_ISSUER: "https://issuer.test", KMS_JWT_AUDIENCE: "kms" });
    client = replica.client;
  });

  it("takes the principal from sub", async () => {
    const created = await client.createKey({}, await bearer({}));
    expect(created.keyMetadata!.creator).toBe("system:serviceaccount:apps:web");
  });

  it.each([
    ["wrong audience", { aud: "other" }],
    ["wrong issuer", { iss: "https://evil.test" }],
    ["expired", { exp: Math.floor(Date.now() / 1000) - 60 }],
    ["sub holding U+0000 (the audit trail cannot store it)", { sub: "web\u0000admin" }],
    ["sub holding a lone surrogate (no UTF-8 form)", { sub: "web\ud800" }],
    ["no exp (a credential for ever)", { exp: null }],
    ["no sub (it names nobody)", { sub: null }],
    ["sub in the cn: namespace of certificate CNs", { sub: BOB }],
    ["sub in the kms: namespace of the service itself (the audit rows of its jobs)", { sub: "kms:system" }],
  ])("refuses a token with the %s", async (_name, claims) => {
    const err = await grpcError(client.listKeys({}, await bearer(claims)));
    expect(err.code).toBe(status.UNAUTHENTICATED);
    expect(err.details).toBe("bearer token is not valid for this service");
    expect(errorCode(err.metadata)).toBe("Unauthenticated");
  });

  // Algorithm confusion: an unsigned token, and one MACed with the public key as an HMAC secret (which a
  // verifier that takes the token's alg would accept), both with claims that would otherwise pass.
  it.each([
    ["alg none (unsigned)", "none", () => ""],
    ["HS256 keyed with the RSA public key", "HS256", (input: string) =>
      createHmac("sha256", publicKey.export({ type: "spki", format: "pem" })).update(input).digest("base64url")],
  ] as const)("refuses a token with %s: only the allow-listed asymmetric algorithms verify", async (_name, alg, sign) => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const input = `${b64({ alg, kid: "k1", typ: "JWT" })}.${b64({ iss: "https://issuer.test", aud: "kms", sub: "system:serviceaccount:apps:web", iat: now, exp: now + 300 })}`;
    const md = new Metadata();
    md.set("authorization", `Bearer ${input}.${sign(input)}`);
    const err = await grpcError(client.listKeys({}, { metadata: md }));
    expect([err.code, errorCode(err.metadata)]).toEqual([status.UNAUTHENTICATED, "Unauthenticated"]);
  });

  it("keeps honouring a reused token only until it expires (verified tokens are cached)", async () => {
    const expiresAt = Math.floor(Date.now() / 1000) + 2;
    const md = await bearer({ exp: expiresAt });
    expect((await client.listKeys({}, md)).keys).toBeDefined();
    expect((await client.listKeys({}, md)).keys).toBeDefined(); // served from the cache
    await new Promise((r) => setTimeout(r, expiresAt * 1000 - Date.now() + 200));
    const err = await grpcError(client.listKeys({}, md));
    expect(err.code).toBe(status.UNAUTHENTICATED);
    expect(err.details).toBe("bearer token is not valid for this service");
  });

  it("refuses a call without a token and a malformed header", async () => {
    expect((await grpcError(client.listKeys({}))).details).toBe("a bearer token is required");
    const md = new Metadata();
    md.set("authorization", "Basic dXNlcjpwYXNz");
    expect((await grpcError(client.listKeys({}, { metadata: md }))).code).toBe(status.UNAUTHENTICATED);
  });
});

describe("audit trail", () => {
  it("answers nothing without its row while Postgres is unreachable", async () => {
    const proxy = await startTcpProxy(Number(new URL(fixture.stack.db.url).port || 5432));
    const url = new URL(fixture.stack.db.url);
    url.port = String(proxy.port);
    const replica = await fixture.stack.startReplica({ DATABASE_URL: url.toString(), KMS_DB_NOTIFICATIONS: "false" });
    const c = replica.client;
    try {
      const keyId = (await c.createKey({})).keyMetadata!.keyId;
      let ok = 0;
      for (let i = 0; i < 10; i++) {
        await c.encrypt({ keyId, plaintext: Buffer.from("before") });
        ok++;
      }
      await proxy.cut();
      for (let i = 0; i < 5; i++) {
        const err = await grpcError(c.encrypt({ keyId, plaintext: Buffer.from("during") }, { deadline: 15000 }));
        expect(err.code).toBe(status.UNAVAILABLE);
        expect(err.details).not.toMatch(/SELECT|INSERT|ECONN/);
      }
      await proxy.restore();
      let recovered = false;
      for (let i = 0; i < 50 && !recovered; i++) {
        try {
          await c.encrypt({ keyId, plaintext: Buffer.from("after") });
          ok++;
          recovered = true;
        } catch {
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      expect(recovered).toBe(true);
      const sql = postgres(fixture.stack.db.url, { max: 1, onnotice: () => {} });
      try {
        const rows = await sql`SELECT count(*)::int AS n FROM audit_events WHERE key_id = ${keyId} AND operation = 'Encrypt' AND result_code = 'OK'`;
        expect(rows[0]!.n).toBe(ok);
      } finally {
        await sql.end();
      }
      expect((await fixture.stack.client.verifyAuditLog({})).ok).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it("detects an edited, a deleted and an inserted row, naming the first bad one", async () => {
    const c = fixture.stack.client;
    const keyId = (await c.createKey({})).keyMetadata!.keyId;
    for (let i = 0; i < 5; i++) await c.encrypt({ keyId, plaintext: Buffer.from("x"), encryptionContext: { n: String(i) } });
    const clean = await c.verifyAuditLog({});
    expect(clean.ok).toBe(true);
    expect(clean.firstBadSequence).toBe(0n);

    const sql = postgres(fixture.stack.db.url, { max: 1, onnotice: () => {} });
    try {
      const [row] = await sql`SELECT sequence, principal FROM audit_events WHERE key_id = ${keyId} AND operation = 'Encrypt' ORDER BY sequence LIMIT 1`;
      const seq = BigInt(row!.sequence as string);
      await sql`UPDATE audit_events SET principal = 'mallory' WHERE sequence = ${String(seq)}`;
      let r = await c.verifyAuditLog({});
      expect([r.ok, r.firstBadSequence]).toEqual([false, seq]);
      await sql`UPDATE audit_events SET principal = ${row!.principal as string} WHERE sequence = ${String(seq)}`;
      expect((await c.verifyAuditLog({})).ok).toBe(true);

      const [saved] = await sql`SELECT * FROM audit_events WHERE sequence = ${String(seq + 1n)}`;
      await sql`DELETE FROM audit_events WHERE sequence = ${String(seq + 1n)}`;
      r = await c.verifyAuditLog({});
      expect([r.ok, r.firstBadSequence]).toEqual([false, seq + 1n]);
      await sql`INSERT INTO audit_events ${sql(saved!)}`;
      expect((await c.verifyAuditLog({})).ok).toBe(true);

      // An inserted row: a forged event spliced in with a plausible sequence shifts everything after it.
      const [last] = await sql`SELECT max(sequence)::text AS m FROM audit_events`;
      const forgedSeq = BigInt(last!.m as string) + 1n;
      await sql`INSERT INTO audit_events (sequence, time, request_id, principal, operation, result_code, prev_hash, hash)
                VALUES (${String(forgedSeq)}, now(), 'forged', 'mallory', 'Decrypt', 'OK', ${randomBytes(32)}, ${randomBytes(32)})`;
      // The service keeps answering (later rows go after it, linked to the real head) and says where.
      await c.describeKey({ keyId });
      r = await c.verifyAuditLog({});
      expect([r.ok, r.firstBadSequence]).toEqual([false, forgedSeq]);
      // Removing the forgery leaves a gap: the trail keeps the scar.
      await sql`DELETE FROM audit_events WHERE sequence = ${String(forgedSeq)}`;
      r = await c.verifyAuditLog({});
      expect([r.ok, r.firstBadSequence]).toEqual([false, forgedSeq]);
    } finally {
      await sql.end();
    }
  });

});

