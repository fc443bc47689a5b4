// Identities that must not be shared or collide (review findings 3 and 10), and the start-up refusals of
// security configurations that would allow it, through the real processes (test/auth-fixtures.ts).
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import net from "node:net";
import { Metadata, status } from "@grpc/grpc-js";
import { SignJWT, exportJWK } from "jose";
import { startApi } from "@kms/dev-stack";
import { kms } from "@kms/proto";
import { grpcError } from "../harness";
import type { KmsClient } from "../harness";
import { ADMIN, ALICE, CAROL, refusedWith, startOutcome, useAuthStack } from "../auth-fixtures";

const fixture = useAuthStack();
const { pki, server, alice, bob, carol, admin, fakeAdmin, tlsClient, apiEnvWithout } = fixture;

describe("no caller shares an identity without being told to (finding 3)", () => {
  const clients: KmsClient[] = [];
  afterAll(() => clients.forEach((c) => c.close()));

  it("refuses a TLS listener without KMS_TLS_CLIENT_CA or a JWKS, naming the variables", async () => {
    expect(await startOutcome(apiEnvWithout("KMS_INSECURE_DEV_MODE", { KMS_TLS_CERT: server.cert, KMS_TLS_KEY: server.key }))).toBe(
      refusedWith(
        "KMS_TLS_CLIENT_CA: a TLS listener needs client authentication: set KMS_TLS_CLIENT_CA or a JWKS (KMS_JWT_JWKS_FILE or KMS_JWT_JWKS_URL), " +
          "or name the one principal every caller then shares in KMS_ANONYMOUS_PRINCIPAL",
      ),
    );
  });

  it("refuses plaintext without KMS_INSECURE_DEV_MODE (in a pod, loopback is shared with sidecars)", async () => {
    expect(await startOutcome(apiEnvWithout("KMS_INSECURE_DEV_MODE"))).toBe(
      refusedWith(
        'KMS_INSECURE_DEV_MODE: plaintext without a JWKS makes every caller on loopback (in a pod: every sidecar and proxy) the administrator "dev"; ' +
          "set KMS_INSECURE_DEV_MODE=true for a local dev stack, else KMS_TLS_CERT and KMS_TLS_KEY with KMS_TLS_CLIENT_CA, or a JWKS (KMS_JWT_JWKS_FILE or KMS_JWT_JWKS_URL)",
      ),
    );
  });

  it("with KMS_ANONYMOUS_PRINCIPAL, gives every TLS caller exactly that principal: not dev, not an admin", async () => {
    const replica = await fixture.stack.startReplica({ KMS_TLS_CERT: server.cert, KMS_TLS_KEY: server.key, KMS_ANONYMOUS_PRINCIPAL: "anyone-with-tls", KMS_ADMINS: "" });
    replica.client.close();
    const anon = tlsClient(replica.api.address, undefined);
    clients.push(anon);
    const key = (await anon.createKey({})).keyMetadata!;
    expect(key.creator).toBe("anyone-with-tls");
    const audit = await grpcError(anon.listAuditEvents({ keyId: key.keyId }));
    expect([audit.code, audit.details]).toEqual([status.PERMISSION_DENIED, "ListAuditEvents is not allowed for anyone-with-tls (KMS_AUDITORS)"]);
    // The audit trail (read through the dev stack's admin) names the anonymous principal for both calls.
    const events = await fixture.stack.client.listAuditEvents({ keyId: key.keyId });
    expect(events.events.map((e) => [e.operation, e.principal, e.resultCode])).toEqual([
      ["CreateKey", "anyone-with-tls", "OK"],
      ["ListAuditEvents", "anyone-with-tls", "PERMISSION_DENIED"],
    ]);
  });
});

describe("identities from different sources cannot collide (finding 10)", () => {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const WEB = "system:serviceaccount:apps:web";
  const bearer = async () => {
    const md = new Metadata();
    const jwt = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "m1" }).setIssuer("https://issuer.test").setAudience("kms").setSubject(WEB).setIssuedAt().setExpirationTime("5m").sign(privateKey);
    md.set("authorization", `Bearer ${jwt}`);
    return { metadata: md };
  };
  let address: string;
  const clients: KmsClient[] = [];
  const as = (who: { cert: string; key: string }) => {
    const c = tlsClient(address, who);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    const jwks = path.join(fixture.stack.dataDir, "mtls-jwks.json");
    writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "m1", alg: "ES256", use: "sig" }] }));
    // Mutual TLS and bearer JWTs on one listener; the SPIFFE admin is the only admin and auditor.
    const replica = await fixture.stack.startReplica({
      KMS_TLS_CERT: server.cert,
      KMS_TLS_KEY: server.key,
      KMS_TLS_CLIENT_CA: pki.caCert,
      KMS_JWT_JWKS_FILE: jwks,
      KMS_JWT_ISSUER: "https://issuer.test",
      KMS_JWT_AUDIENCE: "kms",
      KMS_ADMINS: ADMIN,
      KMS_AUDITORS: "",
    });
    replica.client.close();
    address = replica.api.address;
  });
  afterAll(() => clients.forEach((c) => c.close()));

  it("a certificate without a URI SAN and CN=<the SPIFFE admin's id> is cn:<that id>, not the admin", async () => {
    expect((await as(admin).listAuditEvents({})).events.length).toBeGreaterThan(0);
    const err = await grpcError(as(fakeAdmin).listAuditEvents({}));
    expect([err.code, err.details]).toEqual([status.PERMISSION_DENIED, `ListAuditEvents is not allowed for cn:${ADMIN} (KMS_AUDITORS)`]);
    // Nor does it get the admins' share of a new key's default policy.
    const keyId = (await as(alice).createKey({})).keyMetadata!.keyId;
    expect((await as(admin).describeKey({ keyId })).keyMetadata!.keyId).toBe(keyId);
    const describe = await grpcError(as(fakeAdmin).describeKey({ keyId }));
    expect([describe.code, describe.details]).toEqual([status.PERMISSION_DENIED, `kms:DescribeKey on key ${keyId} is not allowed for cn:${ADMIN}`]);
  });

  it("kms:MutualTLS is true for a certificate's principal, false for a JWT sent over mutual TLS", async () => {
    const a = as(alice);
    const keyId = (await a.createKey({})).keyMetadata!.keyId;
    const policy = JSON.stringify({
      Version: "1",
      Statement: [
        { Sid: "owner", Effect: "Allow", Principal: [ALICE], Action: "kms:*", Resource: "*" },
        { Sid: "encrypt-over-mtls-only", Effect: "Allow", Principal: [CAROL, WEB], Action: "kms:Encrypt", Resource: "*", Condition: { Bool: { "kms:MutualTLS": true } } },
      ],
    });
    await a.setKeyPolicy({ keyId, policy });
    const c = as(carol);
    const byCert = await c.encrypt({ keyId, plaintext: Buffer.from("x") });
    expect(byCert.keyId).toBe(keyId);
    // The same connection (carol's certificate), now with web's token: the principal is web's, not vouched for by the certificate.
    const err = await grpcError(c.encrypt({ keyId, plaintext: Buffer.from("x") }, await bearer()));
    expect([err.code, err.details]).toEqual([status.PERMISSION_DENIED, `kms:Encrypt on key ${keyId} is not allowed for ${WEB}`]);
  });

  it("refuses to fetch the JWKS over http from a non-loopback host", async () => {
    // A real JWKS served over plain http on this machine's network address: a man in the middle could swap it.
    const body = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "m1", alg: "ES256", use: "sig" }] });
    const jwksServer = http.createServer((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(body));
    await new Promise<void>((resolve) => jwksServer.listen(0, "0.0.0.0", resolve));
    // This machine's first non-loopback IPv4 address; 0.0.0.0 (also not loopback, reaching this host on Linux) if it has none.
    const host = Object.values(os.networkInterfaces()).flat().find((i) => i && i.family === "IPv4" && !i.internal)?.address ?? "0.0.0.0";
    const url = `http://${host}:${(jwksServer.address() as net.AddressInfo).port}/jwks.json`;
    try {
      const env = { KMS_JWT_JWKS_URL: url, KMS_JWT_ISSUER: "https://issuer.test", KMS_JWT_AUDIENCE: "kms" };
      expect(await startOutcome(apiEnvWithout("KMS_INSECURE_DEV_MODE", env))).toBe(
        refusedWith(`KMS_JWT_JWKS_URL: must be an https URL (http only on a loopback host), got ${JSON.stringify(url)}`),
      );
      // On loopback (tests, a sidecar's own endpoint) http stays allowed.
      const loopback = url.replace(host, "127.0.0.1");
      expect(await startOutcome(apiEnvWithout("KMS_INSECURE_DEV_MODE", { ...env, KMS_JWT_JWKS_URL: loopback }))).toBe("started");
    } finally {
      jwksServer.closeAllConnections();
      await new Promise((resolve) => jwksServer.close(resolve));
    }
  });
});

describe("start-up refuses bad security configuration", () => {
  const refuses = async (env: NodeJS.ProcessEnv, variable: string) => {
    let message = "";
    try {
      const api = await startApi({ ...fixture.stack.apiEnv, ...env }, { timeoutMs: 15000 });
      await api.stop();
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain(`configuration error: ${variable}: `);
  };

  it("a key that does not match its certificate", async () => {
    await refuses({ KMS_TLS_CERT: server.cert, KMS_TLS_KEY: bob.key }, "KMS_TLS_KEY");
  });
  it("an unreadable certificate", async () => {
    await refuses({ KMS_TLS_CERT: "/nonexistent/cert.pem", KMS_TLS_KEY: server.key }, "KMS_TLS_CERT");
  });
  it("a bad JWKS", async () => {
    const bad = path.join(fixture.stack.dataDir, "bad-jwks.json");
    writeFileSync(bad, JSON.stringify({ keys: [] }));
    await refuses({ KMS_JWT_JWKS_FILE: bad, KMS_JWT_ISSUER: "i", KMS_JWT_AUDIENCE: "a" }, "KMS_JWT_JWKS_FILE");
  });
  it("plaintext on a non-loopback address", async () => {
    await refuses({ KMS_LISTEN: "0.0.0.0:0" }, "KMS_LISTEN");
  });
});

