// Plays kube-apiserver's part against the Kubernetes KMS v2 plugin: a client generated from the v2
// contract calls the real plugin process over its Unix socket; the plugin calls the real kms-api (mutual
// TLS, as its own principal) of a real stack.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { credentials, status } from "@grpc/grpc-js";
import { SignJWT, exportJWK } from "jose";
import { createPromiseClient, kms } from "@kms/proto";
import { k8sKmsV2 } from "@kms/proto/internal";
import { issue, makeCa } from "../certs";
import { errorCode, grpcError, startStack } from "../harness";
import type { Stack } from "../harness";

const ADMIN = "spiffe://test.example/admin";
const PLUGIN = "spiffe://test.example/kube-kms-plugin";
// The principal of a plugin that shows a bearer JWT (a projected service-account token) instead.
const JWT_PLUGIN = "system:serviceaccount:kube-system:kube-kms-plugin";
const CLUSTER = "test-cluster";
const ALIAS = "alias/k8s/test-cluster";
const ENTRY = path.join(__dirname, "..", "..", "services", "kube-kms-plugin", "dist", "main.js");

const pki = makeCa("plugin-ca");
const serverCert = issue(pki, "server", { cn: "kms", sans: "IP:127.0.0.1,DNS:localhost" });
const adminCert = issue(pki, "admin", { sans: `URI:${ADMIN}` });
const pluginCert = issue(pki, "plugin", { sans: `URI:${PLUGIN}` });

// The CMK's policy: the administrator may do everything; the plugin may read the key and use it only
// with its own cluster's encryption context.
const POLICY = JSON.stringify({
  Version: "1",
  Statement: [
    { Sid: "admin", Effect: "Allow", Principal: [ADMIN], Action: "kms:*", Resource: "*" },
    { Sid: "plugin-reads", Effect: "Allow", Principal: [PLUGIN, JWT_PLUGIN], Action: ["kms:DescribeKey"], Resource: "*" },
    {
      Sid: "plugin-uses-for-its-cluster",
      Effect: "Allow",
      Principal: [PLUGIN, JWT_PLUGIN],
      Action: ["kms:Encrypt", "kms:Decrypt"],
      Resource: "*",
      Condition: { StringEquals: { "kms:EncryptionContext:k8s-cluster": CLUSTER, "kms:EncryptionContext:purpose": "kubernetes-kms-v2" } },
    },
  ],
});

interface PluginProcess {
  child: ChildProcess;
  socket: string;
  /** The plugin's JSON log lines (stderr). */
  logs: Record<string, unknown>[];
}

function startPlugin(env: NodeJS.ProcessEnv, socket: string): Promise<PluginProcess> {
  const child = spawn(process.execPath, [ENTRY], { env, stdio: ["ignore", "pipe", "pipe"] });
  const logs: Record<string, unknown>[] = [];
  const output: string[] = [];
  let partial = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      output.push(line);
      if (line.startsWith("{")) logs.push(JSON.parse(line) as Record<string, unknown>);
    }
  });
  plugins.push({ child, socket, logs });
  return new Promise((resolve, reject) => {
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('"msg":"kube-kms-plugin listening"')) resolve({ child, socket, logs });
    });
    child.once("exit", (code) => reject(new Error(`kube-kms-plugin exited with ${code} before it was ready:\n${output.join("\n")}${partial}`)));
  });
}

// Processes start and stop, and recovery waits for the plugin's reconnect (backoff at most 5 s).
jest.setTimeout(60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let stack: Stack;
let admin: ReturnType<typeof createPromiseClient<typeof kms.KeyManagementService.method>>;
let apiserver: ReturnType<typeof createPromiseClient<typeof k8sKmsV2.KeyManagementService.method>>;
let plugin: PluginProcess;
const plugins: PluginProcess[] = [];
let keyId: string;
let firstVersion: string;

/** Status polls, as the apiserver makes them, until `done` holds (at most `polls` of them). */
async function pollStatus(done: (s: k8sKmsV2.StatusResponse) => boolean, polls = 40): Promise<{ status: k8sKmsV2.StatusResponse; polls: number }> {
  let last: k8sKmsV2.StatusResponse | undefined;
  for (let i = 1; i <= polls; i++) {
    last = await apiserver.status({}, { deadline: 8000 });
    if (done(last)) return { status: last, polls: i };
    await sleep(250);
  }
  return { status: last!, polls: polls + 1 };
}

beforeAll(async () => {
  stack = await startStack({
    env: { KMS_TLS_CERT: serverCert.cert, KMS_TLS_KEY: serverCert.key, KMS_TLS_CLIENT_CA: pki.caCert, KMS_ADMINS: ADMIN, KMS_CREATORS: ADMIN, KMS_AUDITORS: ADMIN },
  });
  admin = createPromiseClient(kms.KeyManagementService, stack.address, credentials.createSsl(readFileSync(pki.caCert), readFileSync(adminCert.key), readFileSync(adminCert.cert)));
  const key = (await admin.createKey({ description: "kubernetes secrets of test-cluster" })).keyMetadata!;
  keyId = key.keyId;
  firstVersion = key.primaryKeyVersionId;
  await admin.setKeyPolicy({ keyId, policyName: "default", policy: POLICY });
  await admin.createAlias({ aliasName: ALIAS, keyId });

  const socket = path.join(stack.dataDir, "kmsplugin", "kms.sock");
  plugin = await startPlugin(
    {
      PATH: process.env.PATH,
      KMS_PLUGIN_LISTEN: `unix://${socket}`,
      KMS_PLUGIN_KEY_ID: ALIAS,
      KMS_PLUGIN_CLUSTER: CLUSTER,
      KMS_ADDR: stack.address,
      KMS_TLS_CA: pki.caCert,
      KMS_TLS_CERT: pluginCert.cert,
      KMS_TLS_KEY: pluginCert.key,
    },
    socket,
  );
  apiserver = createPromiseClient(k8sKmsV2.KeyManagementService, `unix://${socket}`);
}, 90_000);

afterAll(async () => {
  apiserver?.close();
  admin?.close();
  for (const p of plugins.filter((p) => p.child.exitCode === null)) {
    const exited = new Promise((r) => p.child.once("exit", r));
    p.child.kill("SIGTERM");
    await exited;
  }
  await stack?.stop();
});

describe("Kubernetes KMS v2 plugin", () => {
  it("listens on a 0600 socket in a 0700 directory", () => {
    expect([(statSync(plugin.socket).mode & 0o777).toString(8), (statSync(path.dirname(plugin.socket)).mode & 0o777).toString(8)]).toEqual(["600", "700"]);
  });

  it("reports v2, ok and the CMK's primary version as key_id", async () => {
    expect(await apiserver.status({})).toMatchObject({ version: "v2", healthz: "ok", keyId: `${keyId}/${firstVersion}` });
  });

  it("encrypts and decrypts a 32-byte seed, as the plugin's principal, the apiserver's uid next to kms-api's request id", async () => {
    const seed = randomBytes(32);
    const uid = "3f0c6a56-0e4f-4c57-9a43-1d2f7a1c0001";
    const encrypted = await apiserver.encrypt({ plaintext: seed, uid });
    expect([encrypted.keyId, encrypted.ciphertext.length <= 1024, Object.keys(encrypted.annotations)]).toEqual([`${keyId}/${firstVersion}`, true, []]);
    const decrypted = await apiserver.decrypt({ ciphertext: encrypted.ciphertext, keyId: encrypted.keyId, uid: `${uid}-d`, annotations: {} });
    expect(Buffer.from(decrypted.plaintext)).toEqual(seed);

    // The plugin logs the uid with the kms-request-id that kms-api put in its audit row for the call.
    const line = plugin.logs.find((l) => l.msg === "Encrypt" && l.uid === uid);
    const events = (await admin.listAuditEvents({ keyId, principal: PLUGIN, operation: "Encrypt", pageSize: 100 })).events;
    expect(events.filter((e) => e.requestId === line?.kmsRequestId).map((e) => [e.principal, e.resultCode, e.keyVersionId])).toEqual([[PLUGIN, "OK", firstVersion]]);
  });

  it("binds the blob to the cluster: the plain KMS API cannot decrypt it without that context", async () => {
    const seed = randomBytes(32);
    const { ciphertext } = await apiserver.encrypt({ plaintext: seed, uid: "context" });
    for (const encryptionContext of [{}, { "k8s-cluster": "other-cluster", purpose: "kubernetes-kms-v2" }, { "k8s-cluster": CLUSTER }]) {
      const err = await grpcError(admin.decrypt({ ciphertextBlob: ciphertext, encryptionContext }));
      expect([err.code, errorCode(err.metadata)]).toEqual([status.INVALID_ARGUMENT, "InvalidCiphertext"]);
    }
    const right = await admin.decrypt({ ciphertextBlob: ciphertext, encryptionContext: { "k8s-cluster": CLUSTER, purpose: "kubernetes-kms-v2" } });
    expect(Buffer.from(right.plaintext)).toEqual(seed);
  });

  it("refuses what kube-apiserver's contract does not allow, naming the field", async () => {
    const { ciphertext, keyId: current } = await apiserver.encrypt({ plaintext: randomBytes(32), uid: "limits" });
    const refusals = [
      await grpcError(apiserver.decrypt({ ciphertext: Buffer.alloc(1025, 1), keyId: current, uid: "big" })),
      await grpcError(apiserver.decrypt({ ciphertext, keyId: current, uid: "annotations", annotations: { "a.example.org": Buffer.alloc(32 * 1024) } })),
      await grpcError(apiserver.decrypt({ ciphertext, keyId: current, uid: "fqdn", annotations: { "not-a-domain": Buffer.from("v") } })),
      await grpcError(apiserver.decrypt({ ciphertext, keyId: "k".repeat(1025), uid: "key-id" })),
      await grpcError(apiserver.encrypt({ plaintext: Buffer.alloc(0), uid: "empty" })),
    ];
    expect(refusals.map((e) => [e.code, e.details])).toEqual([
      [status.INVALID_ARGUMENT, "ciphertext: must be at most 1024 bytes, got 1025"],
      [status.INVALID_ARGUMENT, "annotations: must be at most 32768 bytes in total (keys and values), got 32781"],
      [status.INVALID_ARGUMENT, 'annotations: key "not-a-domain" is not a fully qualified domain name'],
      [status.INVALID_ARGUMENT, "key_id: must be at most 1024 bytes, got 1025"],
      [status.INVALID_ARGUMENT, "plaintext: must not be empty"],
    ]);
  });

  it("follows a rotation in the KMS: Status.key_id and Encrypt's key_id change together, old blobs still decrypt", async () => {
    const oldSeed = randomBytes(32);
    const old = await apiserver.encrypt({ plaintext: oldSeed, uid: "before-rotation" });
    const newVersion = (await admin.createKeyVersion({ keyId })).keyVersion!.keyVersionId;
    const rotated = await pollStatus((s) => s.keyId !== old.keyId);
    expect([rotated.status.keyId, rotated.polls <= 40]).toEqual([`${keyId}/${newVersion}`, true]);
    const fresh = await apiserver.encrypt({ plaintext: randomBytes(32), uid: "after-rotation" });
    expect(fresh.keyId).toBe(rotated.status.keyId);
    const again = await apiserver.decrypt({ ciphertext: old.ciphertext, keyId: old.keyId, uid: "old-blob" });
    expect([old.keyId, Buffer.from(again.plaintext)]).toEqual([`${keyId}/${firstVersion}`, oldSeed]);
    // The key_id stored beside a blob must name the blob's own version.
    const mismatch = await grpcError(apiserver.decrypt({ ciphertext: old.ciphertext, keyId: fresh.keyId, uid: "swapped-key-id" }));
    expect([mismatch.code, mismatch.details]).toEqual([status.INVALID_ARGUMENT, "key_id: does not name the key version of the ciphertext"]);
  });

  it("fails fast with UNAVAILABLE while kms-api is down, and recovers without a restart", async () => {
    const seed = randomBytes(32);
    const before = await apiserver.encrypt({ plaintext: seed, uid: "before-outage" });
    // A healthy round trip is cached for a few seconds: a call that finds kms-api down must drop it.
    expect((await apiserver.status({})).healthz).toBe("ok");
    await stack.api.stop();

    // UNAVAILABLE, not DEADLINE_EXCEEDED: the plugin answered before the caller's 8 s deadline.
    const encryptErr = await grpcError(apiserver.encrypt({ plaintext: randomBytes(32), uid: "outage" }, { deadline: 8000 }));
    const decryptErr = await grpcError(apiserver.decrypt({ ciphertext: before.ciphertext, keyId: before.keyId, uid: "outage" }, { deadline: 8000 }));
    expect([encryptErr.code, decryptErr.code]).toEqual([status.UNAVAILABLE, status.UNAVAILABLE]);
    const down = await apiserver.status({}, { deadline: 8000 });
    expect([down.version, down.healthz, down.keyId]).toEqual(["v2", "round trip through kms-api failed: kms-api: UNAVAILABLE", before.keyId]);

    await stack.restartApi();
    const recovered = await pollStatus((s) => s.healthz === "ok");
    expect([recovered.status.healthz, recovered.polls <= 40, plugin.child.exitCode]).toEqual(["ok", true, null]);
    const decrypted = await apiserver.decrypt({ ciphertext: before.ciphertext, keyId: before.keyId, uid: "after-outage" });
    expect(Buffer.from(decrypted.plaintext)).toEqual(seed);
    expect((await apiserver.encrypt({ plaintext: randomBytes(32), uid: "after-outage" })).keyId).toBe(recovered.status.keyId);
  });
});

describe("Kubernetes KMS v2 plugin with a bearer JWT", () => {
  it("calls kms-api as the token's subject over TLS", async () => {
    const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const jwks = path.join(stack.dataDir, "plugin-jwks.json");
    writeFileSync(jwks, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "p1", alg: "ES256", use: "sig" }] }));
    // TLS without client certificates: the token is the only credential.
    const replica = await stack.startReplica({ KMS_TLS_CLIENT_CA: "", KMS_JWT_JWKS_FILE: jwks, KMS_JWT_ISSUER: "https://kubernetes.default.svc", KMS_JWT_AUDIENCE: "kms" });
    replica.client.close();
    const tokenFile = path.join(stack.dataDir, "plugin-token");
    const jwt = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: "p1" }).setIssuer("https://kubernetes.default.svc").setAudience("kms").setSubject(JWT_PLUGIN).setIssuedAt().setExpirationTime("10m").sign(privateKey);
    writeFileSync(tokenFile, `${jwt}\n`);
    const socket = path.join(stack.dataDir, "kmsplugin-jwt", "kms.sock");
    await startPlugin(
      { PATH: process.env.PATH, KMS_PLUGIN_LISTEN: `unix://${socket}`, KMS_PLUGIN_KEY_ID: ALIAS, KMS_PLUGIN_CLUSTER: CLUSTER, KMS_ADDR: replica.api.address, KMS_TLS_CA: pki.caCert, KMS_JWT_TOKEN_FILE: tokenFile },
      socket,
    );
    const client = createPromiseClient(k8sKmsV2.KeyManagementService, `unix://${socket}`);
    try {
      const seed = randomBytes(32);
      const state = await client.status({});
      const encrypted = await client.encrypt({ plaintext: seed, uid: "jwt-plugin" });
      expect([state.healthz, encrypted.keyId]).toEqual(["ok", state.keyId]);
      // The first plugin (mutual TLS) reads what this one wrote: same key, same cluster context.
      expect(Buffer.from((await apiserver.decrypt({ ciphertext: encrypted.ciphertext, keyId: encrypted.keyId, uid: "cross" })).plaintext)).toEqual(seed);
      const events = (await admin.listAuditEvents({ keyId, principal: JWT_PLUGIN, operation: "Encrypt", pageSize: 100 })).events;
      expect(events.length).toBeGreaterThanOrEqual(1);
      expect(events.every((e) => e.principal === JWT_PLUGIN && e.resultCode === "OK")).toBe(true);
    } finally {
      client.close();
    }
  });
});
