// Root key rotation through the real processes (`kms admin rotate-root`, docs/operations.md "Root rotation"):
// keys of every spec at both levels plus format 1 rows of the release before, with ciphertexts, signatures
// and MACs made before; Encrypt/Decrypt clients on two replicas run throughout, every failure classified
// (none is allowed: every call they make is valid). The rotation is interrupted twice, by kill -9 of the
// CLI after a counted number of steps and by a kms-api replica killing itself between a batch's re-wrap
// and its commit, then resumed. Afterwards everything made before still works, every re-wrap has its audit
// row, and the token holds what the rotation says: with HSM-level format 2 versions present the old root
// set stays for them alone (they cannot leave their /hsm root: pkcs11/rotation-limits.test.ts), named in
// the output; without them the old roots, legacy included, are gone from the token.
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { constants, createPublicKey, publicEncrypt, randomBytes, randomUUID, verify as nodeVerify } from "node:crypto";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import postgres from "postgres";
import { createPromiseClient, kms, kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import { grpcError, softHsmWorkerEnv, startStack } from "../harness";
import type { KmsClient, Stack } from "../harness";
import { makeOldReleaseToken, oldCiphertext } from "../old-release";

jest.setTimeout(180_000);

const { KeySpec, KeyUsage, KeyState, Origin, ProtectionLevel, SigningAlgorithm, EncryptionAlgorithm, WrappingAlgorithm, WrappingKeySpec } = kmsResources;
const { HSM, SOFTWARE } = ProtectionLevel;
const CLI = path.resolve(__dirname, "../../packages/cli/bin/kms.js");
const CONTEXT = { app: "root-rotation" };
/** Replicas' caches and in-flight calls drain in well under this on a test machine. */
const RETIRE_DELAY_MS = "1500";

interface Made {
  ciphertexts: { keyId: string; plaintext: Buffer; ciphertextBlob: Uint8Array }[];
  rsaCiphertexts: { keyId: string; plaintext: Buffer; ciphertextBlob: Uint8Array }[];
  signatures: { keyId: string; algorithm: kmsResources.SigningAlgorithm; hash: "sha256" | "sha384" | null; message: Buffer; signature: Uint8Array; pem: string }[];
  macs: { keyId: string; message: Buffer; mac: Uint8Array }[];
  /** Keys the load clients use. */
  loadKeys: string[];
}

type Level = kmsResources.ProtectionLevel;
const SYMMETRIC: [kmsResources.KeySpec, Level][] = [
  [KeySpec.AES_256, HSM],
  [KeySpec.AES_256, SOFTWARE],
  [KeySpec.AES_128, HSM],
  [KeySpec.AES_128, SOFTWARE],
];
const MAC_KEYS: [kmsResources.KeySpec, Level][] = [
  [KeySpec.HMAC_SHA256, HSM],
  [KeySpec.HMAC_SHA512, SOFTWARE],
];
const SIGNING: [kmsResources.KeySpec, Level, kmsResources.SigningAlgorithm, "sha256" | "sha384" | null][] = [
  [KeySpec.RSA_2048, HSM, SigningAlgorithm.RSA_PSS_SHA_256, "sha256"],
  [KeySpec.RSA_2048, SOFTWARE, SigningAlgorithm.RSA_PKCS1_SHA_256, "sha256"],
  [KeySpec.EC_P256, HSM, SigningAlgorithm.ECDSA_SHA_256, "sha256"],
  [KeySpec.EC_P384, SOFTWARE, SigningAlgorithm.ECDSA_SHA_384, "sha384"],
  [KeySpec.EC_P256K, SOFTWARE, SigningAlgorithm.ECDSA_SHA_256, "sha256"],
  [KeySpec.ED25519, SOFTWARE, SigningAlgorithm.ED25519, null],
  [KeySpec.ML_DSA_44, SOFTWARE, SigningAlgorithm.ML_DSA_SHAKE_256, null],
];
const RSA_ENCRYPTION: Level[] = [HSM, SOFTWARE];

/** Key versions makeKeys makes at `level`. */
function versionsAt(level: Level): number {
  return SYMMETRIC.filter(([, l]) => l === level).length * 2 + MAC_KEYS.filter(([, l]) => l === level).length + SIGNING.filter(([, l]) => l === level).length + RSA_ENCRYPTION.filter((l) => l === level).length;
}

/** Keys of every spec at `levels`, with something made by each; AES keys get a second version. */
async function makeKeys(c: KmsClient, levels: Level[]): Promise<Made> {
  const m: Made = { ciphertexts: [], rsaCiphertexts: [], signatures: [], macs: [], loadKeys: [] };
  for (const [keySpec, protectionLevel] of SYMMETRIC.filter(([, l]) => levels.includes(l))) {
    const keyId = (await c.createKey({ keySpec, protectionLevel })).keyMetadata!.keyId;
    m.loadKeys.push(keyId);
    for (let version = 0; version < 2; version++) {
      if (version > 0) await c.createKeyVersion({ keyId });
      const plaintext = Buffer.from(`secret ${keySpec}/${protectionLevel}/${version}`);
      m.ciphertexts.push({ keyId, plaintext, ciphertextBlob: (await c.encrypt({ keyId, plaintext, encryptionContext: CONTEXT })).ciphertextBlob });
    }
  }
  for (const [keySpec, protectionLevel] of MAC_KEYS.filter(([, l]) => levels.includes(l))) {
    const keyId = (await c.createKey({ keySpec, keyUsage: KeyUsage.GENERATE_VERIFY_MAC, protectionLevel })).keyMetadata!.keyId;
    const message = Buffer.from(`mac ${keySpec}`);
    m.macs.push({ keyId, message, mac: (await c.generateMac({ keyId, message })).mac });
  }
  for (const [keySpec, protectionLevel, algorithm, hash] of SIGNING.filter(([, l]) => levels.includes(l))) {
    const keyId = (await c.createKey({ keySpec, keyUsage: KeyUsage.SIGN_VERIFY, protectionLevel })).keyMetadata!.keyId;
    const message = Buffer.from(`signed ${keySpec}/${protectionLevel}`);
    const signed = await c.asymmetricSign({ keyId, algorithm, input: { case: "message", value: message } });
    m.signatures.push({ keyId, algorithm, hash, message, signature: signed.value, pem: (await c.getPublicKey({ keyId })).publicKey });
  }
  for (const protectionLevel of RSA_ENCRYPTION.filter((l) => levels.includes(l))) {
    const keyId = (await c.createKey({ keySpec: KeySpec.RSA_2048, keyUsage: KeyUsage.ENCRYPT_DECRYPT, protectionLevel })).keyMetadata!.keyId;
    const plaintext = Buffer.from(`oaep ${protectionLevel}`);
    m.rsaCiphertexts.push({ keyId, plaintext, ciphertextBlob: (await c.asymmetricEncrypt({ keyId, algorithm: EncryptionAlgorithm.RSAES_OAEP_SHA_256, plaintext })).ciphertextBlob });
  }
  return m;
}

/** Everything made before still works: decrypts, verifies with the same public key, signs anew, MACs verify. */
async function checkMade(c: KmsClient, m: Made): Promise<void> {
  for (const x of m.ciphertexts) {
    const out = await c.decrypt({ ciphertextBlob: x.ciphertextBlob, encryptionContext: CONTEXT });
    expect([out.keyId, Buffer.from(out.plaintext).toString("hex")]).toEqual([x.keyId, x.plaintext.toString("hex")]);
  }
  for (const x of m.rsaCiphertexts) {
    const out = await c.asymmetricDecrypt({ keyId: x.keyId, algorithm: EncryptionAlgorithm.RSAES_OAEP_SHA_256, ciphertextBlob: x.ciphertextBlob });
    expect(Buffer.from(out.plaintext)).toEqual(x.plaintext);
  }
  for (const x of m.signatures) {
    expect((await c.getPublicKey({ keyId: x.keyId })).publicKey).toBe(x.pem);
    const input = { case: "message" as const, value: x.message };
    expect((await c.asymmetricVerify({ keyId: x.keyId, algorithm: x.algorithm, input, value: x.signature })).value).toBe(true);
    const again = await c.asymmetricSign({ keyId: x.keyId, algorithm: x.algorithm, input });
    if (x.algorithm !== SigningAlgorithm.ML_DSA_SHAKE_256) {
      const pss = x.algorithm === SigningAlgorithm.RSA_PSS_SHA_256 ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : {};
      expect(nodeVerify(x.hash, x.message, { key: x.pem, ...pss }, x.signature)).toBe(true);
      expect(nodeVerify(x.hash, x.message, { key: x.pem, ...pss }, again.value)).toBe(true);
    } else {
      expect((await c.asymmetricVerify({ keyId: x.keyId, algorithm: x.algorithm, input, value: again.value })).value).toBe(true);
    }
  }
  for (const x of m.macs) expect((await c.verifyMac({ keyId: x.keyId, message: x.message, mac: x.mac })).macValid).toBe(true);
}

/** Format 1 rows of the release before (legacy-material.test.ts): AES-256 at both levels, with ciphertexts. */
async function addLegacyRows(stack: Stack, sql: postgres.Sql, m: Made): Promise<string> {
  await stack.worker.stop();
  const keys = [HSM, SOFTWARE].map((level) => ({ level, keyId: randomUUID(), versionId: randomUUID(), material: randomBytes(32) }));
  const made = makeOldReleaseToken(stack.workerEnv, keys.map((k) => k.material));
  for (const [i, k] of keys.entries()) {
    await sql`INSERT INTO keys (key_id, key_spec, key_usage, protection_level, origin, key_state, creation_time, creator, primary_key_version_id)
              VALUES (${k.keyId}, ${KeySpec.AES_256}, ${KeyUsage.ENCRYPT_DECRYPT}, ${k.level}, ${Origin.KMS}, ${KeyState.ENABLED}, now(), 'dev', ${k.versionId})`;
    await sql`INSERT INTO key_versions (key_version_id, key_id, creation_time, wrapped_material, root_key_id)
              VALUES (${k.versionId}, ${k.keyId}, now(), ${made.wrapped[i]!}, ${made.rootKeyId})`;
    const plaintext = Buffer.from(`legacy ${k.level}`);
    m.ciphertexts.push({ keyId: k.keyId, plaintext, ciphertextBlob: oldCiphertext(k.material, k.versionId, plaintext.toString(), CONTEXT) });
    m.loadKeys.push(k.keyId);
  }
  // The upgrade: the worker finds the legacy root and makes the per-level roots beside it.
  await stack.startWorker();
  await stack.restartApi();
  expect(stack.worker.status.legacyRootKeyId).toBe(made.rootKeyId);
  return made.rootKeyId;
}

/** A stack (retire delay short, no rate limit) with format 1 rows, then keys of every spec at `levels`. */
async function setUp(levels: Level[]) {
  const stack = await startStack({ env: { KMS_ROOT_RETIRE_DELAY_MS: RETIRE_DELAY_MS, KMS_RATE_LIMIT_PER_SECOND: "1000000", KMS_RATE_LIMIT_BURST: "1000000" } });
  const sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
  const legacy: Made = { ciphertexts: [], rsaCiphertexts: [], signatures: [], macs: [], loadKeys: [] };
  const legacyRootKeyId = await addLegacyRows(stack, sql, legacy);
  const oldRootKeyId = stack.worker.status.rootKeyId;
  const keys = await makeKeys(stack.client, levels);
  const made = { ...keys, ciphertexts: [...legacy.ciphertexts, ...keys.ciphertexts], loadKeys: [...legacy.loadKeys, ...keys.loadKeys] };
  return { stack, sql, made, legacyRootKeyId, oldRootKeyId };
}

/** Encrypt/Decrypt clients until stop(); every failure recorded with its code and message. */
function startLoad(clients: KmsClient[], keyIds: string[], old: Made["ciphertexts"]) {
  let running = true;
  const calls = { ok: 0 };
  const failures: string[] = [];
  const loops = clients.flatMap((c, ci) =>
    [0, 1].map(async (li) => {
      for (let i = 0; running; i++) {
        const keyId = keyIds[(i + li + ci) % keyIds.length]!;
        const plaintext = Buffer.from(`load ${ci}/${li}/${i}`);
        try {
          const { ciphertextBlob } = await c.encrypt({ keyId, plaintext, encryptionContext: CONTEXT });
          const out = await c.decrypt({ ciphertextBlob, encryptionContext: CONTEXT });
          if (!Buffer.from(out.plaintext).equals(plaintext)) failures.push(`wrong plaintext from ${keyId}`);
          const before = old[i % old.length]!;
          const back = await c.decrypt({ ciphertextBlob: before.ciphertextBlob, encryptionContext: CONTEXT });
          if (!Buffer.from(back.plaintext).equals(before.plaintext)) failures.push(`wrong plaintext of an old ciphertext of ${before.keyId}`);
          calls.ok += 3;
        } catch (err) {
          const e = err as { code?: number; details?: string };
          failures.push(`${e.code ?? "?"} ${e.details ?? String(err)}`);
        }
      }
    }),
  );
  return {
    calls,
    failures,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  steps: number;
}

/** `kms admin rotate-root --json --batch-size 2`; with killAfterSteps, kill -9 once that many progress lines came. */
function rotateRoot(address: string, killAfterSteps?: number): Promise<CliRun> {
  const child: ChildProcess = spawn(process.execPath, [CLI, "--address", address, "--json", "admin", "rotate-root", "--batch-size", "2"], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let steps = 0;
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
    steps = (stderr.match(/^rotate-root: step \d+/gm) ?? []).length;
    if (killAfterSteps !== undefined && steps >= killAfterSteps) child.kill("SIGKILL");
  });
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal, stdout, steps })));
}

async function tokenSecretKeys(stack: Stack): Promise<{ label: string; id: string }[]> {
  const worker = createPromiseClient(hsm.HsmWorkerService, `unix://${stack.worker.socketPath}`);
  try {
    return (await worker.listTokenObjects({})).objects.filter((o) => o.class === "secret key").map((o) => ({ label: o.label, id: o.id }));
  } finally {
    worker.close();
  }
}

async function rootsOfRows(sql: postgres.Sql): Promise<{ rootKeyId: string; protectionLevel: number; n: number }[]> {
  return [
    ...(await sql<{ rootKeyId: string; protectionLevel: number; n: number }[]>`
      SELECT v.root_key_id AS "rootKeyId", k.protection_level::int AS "protectionLevel", count(*)::int AS n
      FROM key_versions v JOIN keys k USING (key_id) GROUP BY 1, 2 ORDER BY 1, 2`),
  ];
}

function verifyRestore(stack: Stack): { code: number | null; report: { ok: boolean; problems: string[] } } {
  const run = spawnSync(process.execPath, [CLI, "admin", "verify-restore", "--json"], { env: { ...stack.apiEnv, DATABASE_URL: stack.db.url }, encoding: "utf8" });
  return { code: run.status, report: JSON.parse(run.stdout) as { ok: boolean; problems: string[] } };
}

/** Imports `material` into `keyId` (RSAES-OAEP-SHA-256 under the import token's key). */
async function importMaterial(c: KmsClient, keyId: string, material: Buffer): Promise<kmsResources.KeyState | undefined> {
  const params = await c.getParametersForImport({ keyId, wrappingAlgorithm: WrappingAlgorithm.RSAES_OAEP_SHA_256, wrappingKeySpec: WrappingKeySpec.RSA_2048 });
  const encryptedKeyMaterial = publicEncrypt({ key: createPublicKey(params.publicKey), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, material);
  return (await c.importKeyMaterial({ keyId, importToken: params.importToken, encryptedKeyMaterial })).keyMetadata?.keyState;
}

async function rewrapAuditRows(c: KmsClient): Promise<number> {
  return (await c.listAuditEvents({ operation: "RootKeyRewrap", pageSize: 1000 })).events.length;
}

describe("with HSM-level format 2 versions present", () => {
  let stack: Stack;
  let sql: postgres.Sql;
  let made: Made;
  let legacyRootKeyId: string;
  let oldRootKeyId: string;
  let replica: { client: KmsClient };
  let result: Record<string, unknown>;
  let load: ReturnType<typeof startLoad>;

  beforeAll(async () => {
    ({ stack, sql, made, legacyRootKeyId, oldRootKeyId } = await setUp([HSM, SOFTWARE]));
    replica = await stack.startReplica({ KMS_ADMINS: "someone-else" });
  });

  afterAll(async () => {
    // A failed expectation must not leave the load loops spinning against a stopped stack.
    await load?.stop();
    await sql?.end();
    await stack?.stop();
  });

  it("refuses a principal outside KMS_ADMINS with PERMISSION_DENIED, and nothing starts", async () => {
    const err = await grpcError(replica.client.rotateRootKey({}));
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).not.toMatch(/root key [0-9a-f]{32}/);
    expect((await sql`SELECT count(*)::int AS n FROM root_rotations`)[0]!.n).toBe(0);
  });

  it("rotates under load, killed twice half-way and resumed", async () => {
    load = startLoad([stack.client, replica.client], made.loadKeys, made.ciphertexts);
    // Killed after 3 steps (the switch and two batches of 2).
    const first = await rotateRoot(stack.address, 3);
    expect(first.signal).toBe("SIGKILL");
    expect(first.steps).toBeGreaterThanOrEqual(3);
    const [afterKill] = await sql<{ state: number; rewrapped: number }[]>`SELECT state::int, rewrapped_versions::int AS rewrapped FROM root_rotations`;
    expect(afterKill!.state).toBe(kms.RootRotationState.REWRAPPING);
    // A replica that dies between a batch's re-wrap in the worker and its commit (kill -9 of itself).
    const crashing = await stack.startReplica({ KMS_FAULT_INJECT: "crash-after-rewrap" });
    const crash = await grpcError(crashing.client.rotateRootKey({ batchSize: 2 }));
    expect(crash.code).toBe(status.UNAVAILABLE);
    // Nothing half-done: every re-wrap counted has its audit row, committed together (one snapshot: the
    // killed CLI's last call may still be running on the server and commit its batch, rightly, meanwhile).
    const [afterCrash] = await sql<{ rewrapped: number; audited: number }[]>`
      SELECT (SELECT rewrapped_versions::int FROM root_rotations) AS rewrapped,
             (SELECT count(*)::int FROM audit_events WHERE operation = 'RootKeyRewrap') AS audited`;
    expect(afterCrash!.audited).toBe(afterCrash!.rewrapped);
    expect(afterCrash!.rewrapped).toBeGreaterThanOrEqual(afterKill!.rewrapped);
    // Started again: it resumes the same rotation and finishes it.
    const second = await rotateRoot(stack.address);
    result = JSON.parse(second.stdout) as Record<string, unknown>;
    await load.stop();
    expect(second.code).toBe(3); // finished, the old root set kept for the HSM-level versions
    expect(load.failures).toEqual([]);
    expect(load.calls.ok).toBeGreaterThan(0);
  });

  it("reports the new and old root ids, what moved and what stays and why", async () => {
    const hsmVersions = versionsAt(HSM);
    const softwareVersions = versionsAt(SOFTWARE);
    expect(result).toMatchObject({
      state: "retaining",
      oldRootKeyId,
      legacyRootKeyId,
      retainedVersions: hsmVersions,
      destroyedRootKeyIds: [legacyRootKeyId],
    });
    expect(result.newRootKeyId).toMatch(/^[0-9a-f]{32}$/);
    expect(result.newRootKeyId).not.toBe(oldRootKeyId);
    expect(result.retainedReason).toMatch(/HSM-level material is non-extractable .*CKR_KEY_UNEXTRACTABLE/);
    // Every SOFTWARE version (and both format 1 rows) moved, and no HSM-level format 2 one could.
    expect(result.rewrappedVersions).toBe(softwareVersions + 2);
    expect(await rootsOfRows(sql)).toEqual(
      [
        { rootKeyId: oldRootKeyId, protectionLevel: HSM, n: hsmVersions },
        { rootKeyId: result.newRootKeyId as string, protectionLevel: HSM, n: 1 },
        { rootKeyId: result.newRootKeyId as string, protectionLevel: SOFTWARE, n: softwareVersions + 1 },
      ].sort((a, b) => a.rootKeyId.localeCompare(b.rootKeyId) || a.protectionLevel - b.protectionLevel),
    );
  });

  it("everything made before still works, on both replicas", async () => {
    await checkMade(stack.client, made);
    await checkMade(replica.client, made);
  });

  it("the token: the new set current, the old set retiring (kept), the legacy root gone", async () => {
    const objects = await tokenSecretKeys(stack);
    const label = "kms-root-wrapping-key";
    const by = (id: string) => objects.filter((o) => o.id === id).map((o) => o.label).sort();
    expect(by(result.newRootKeyId as string)).toEqual([`${label}/hsm`, `${label}/mac`, `${label}/software`]);
    expect(by(oldRootKeyId)).toEqual([`${label}/retiring/hsm`, `${label}/retiring/mac`, `${label}/retiring/software`]);
    expect(by(legacyRootKeyId)).toEqual([]);
  });

  it("every re-wrap has its audit row, and the chain verifies", async () => {
    expect(await rewrapAuditRows(stack.client)).toBe(result.rewrappedVersions);
    const v = await stack.client.verifyAuditLog({});
    expect({ ok: v.ok, problem: v.problem }).toEqual({ ok: true, problem: "" });
  });

  it("new material goes under the new root; verify-restore passes", async () => {
    const keyId = (await stack.client.createKey({ protectionLevel: HSM })).keyMetadata!.keyId;
    const [row] = await sql<{ rootKeyId: string }[]>`SELECT root_key_id AS "rootKeyId" FROM key_versions v JOIN keys k USING (key_id) WHERE k.key_id = ${keyId}`;
    expect(row!.rootKeyId).toBe(result.newRootKeyId);
    const { code, report } = verifyRestore(stack);
    expect({ code, problems: report.problems }).toEqual({ code: 0, problems: [] });
  });

  it("started again, it keeps the old set while HSM-level versions name it (a new rotation of the new root)", async () => {
    const again = await rotateRoot(stack.address);
    const r = JSON.parse(again.stdout) as Record<string, unknown>;
    expect(r.oldRootKeyId).toBe(result.newRootKeyId);
    await checkMade(stack.client, made);
    expect((await tokenSecretKeys(stack)).some((o) => o.id === oldRootKeyId)).toBe(true);
  });
});

describe("with SOFTWARE-level and format 1 material only", () => {
  let stack: Stack;
  let sql: postgres.Sql;
  let made: Made;
  let legacyRootKeyId: string;
  let oldRootKeyId: string;
  const imported = { keyId: "", material: randomBytes(32) };
  let load: ReturnType<typeof startLoad> | undefined;

  beforeAll(async () => {
    ({ stack, sql, made, legacyRootKeyId, oldRootKeyId } = await setUp([SOFTWARE]));
    // An imported key: its fingerprint is over its blob, so the rotation must fingerprint it anew.
    imported.keyId = (await stack.client.createKey({ origin: Origin.EXTERNAL, protectionLevel: SOFTWARE })).keyMetadata!.keyId;
    expect(await importMaterial(stack.client, imported.keyId, imported.material)).toBe(KeyState.ENABLED);
    const plaintext = Buffer.from("imported before");
    made.ciphertexts.push({ keyId: imported.keyId, plaintext, ciphertextBlob: (await stack.client.encrypt({ keyId: imported.keyId, plaintext, encryptionContext: CONTEXT })).ciphertextBlob });
  });

  afterAll(async () => {
    await load?.stop();
    await sql?.end();
    await stack?.stop();
  });

  it("rotates under load, killed half-way and resumed; the old roots are gone from the token", async () => {
    load = startLoad([stack.client], made.loadKeys, made.ciphertexts);
    const first = await rotateRoot(stack.address, 4);
    expect(first.signal).toBe("SIGKILL");
    const second = await rotateRoot(stack.address);
    await load.stop();
    expect(load.failures).toEqual([]);
    expect(second.code).toBe(0);
    const r = JSON.parse(second.stdout) as Record<string, unknown>;
    expect(r).toMatchObject({ state: "done", oldRootKeyId, legacyRootKeyId, retainedVersions: 0, remainingVersions: 0 });
    expect([...(r.destroyedRootKeyIds as string[])].sort()).toEqual([oldRootKeyId, legacyRootKeyId].sort());
    const ids = new Set((await tokenSecretKeys(stack)).map((o) => o.id));
    expect([ids.has(oldRootKeyId), ids.has(legacyRootKeyId), ids.has(r.newRootKeyId as string)]).toEqual([false, false, true]);
    // Both format 1 rows moved, the HSM-level one inside the HSM (under the new /hsm root, format 2); and the imported key.
    expect(await rootsOfRows(sql)).toEqual([
      { rootKeyId: r.newRootKeyId, protectionLevel: SOFTWARE, n: versionsAt(SOFTWARE) + 2 },
      { rootKeyId: r.newRootKeyId, protectionLevel: HSM, n: 1 },
    ]);
    await checkMade(stack.client, made);
    expect(await rewrapAuditRows(stack.client)).toBe(r.rewrappedVersions);
    expect((await stack.client.verifyAuditLog({})).ok).toBe(true);
    expect(verifyRestore(stack).code).toBe(0);
  });

  it("an imported key whose material is deleted after the rotation takes the same material again", async () => {
    await stack.client.deleteKeyMaterial({ keyId: imported.keyId });
    expect(await importMaterial(stack.client, imported.keyId, imported.material)).toBe(KeyState.ENABLED);
    const before = made.ciphertexts.find((x) => x.keyId === imported.keyId)!;
    expect(Buffer.from((await stack.client.decrypt({ ciphertextBlob: before.ciphertextBlob, encryptionContext: CONTEXT })).plaintext)).toEqual(before.plaintext);
  });
});

// Issue #22's last piece: a deployment that ran on the software root file gets an HSM. The worker restarts
// on the token with the old file named by KMS_SOURCE_ROOT_KEY_FILE, and the same rotation moves every
// SOFTWARE version off the file onto the token's current root, under load; afterwards the file is not needed.
describe("moving SOFTWARE keys from a software root file onto a token", () => {
  let stack: Stack;
  let sql: postgres.Sql;
  let made: Made;
  let fileRootKeyId: string;
  let tokenRootKeyId: string;
  let hsmEnv: NodeJS.ProcessEnv;

  beforeAll(async () => {
    stack = await startStack({ hsm: false, env: { KMS_ROOT_RETIRE_DELAY_MS: RETIRE_DELAY_MS, KMS_RATE_LIMIT_PER_SECOND: "1000000", KMS_RATE_LIMIT_BURST: "1000000" } });
    sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
    expect(stack.worker.status.backend).toBe(hsm.Backend.SOFTWARE_ROOT);
    fileRootKeyId = stack.worker.status.rootKeyId;
    made = await makeKeys(stack.client, [SOFTWARE]);
    // The operator's restart: the PKCS#11 module (a new token, its root set created), the old file as the source.
    const { KMS_ALLOW_SOFTWARE_ROOT: _dropped, ...base } = stack.workerEnv;
    hsmEnv = softHsmWorkerEnv(base, path.join(stack.dataDir, "softhsm"));
    await stack.worker.stop();
    await stack.startWorker({ ...hsmEnv, KMS_CREATE_ROOT_KEY: "true", KMS_SOURCE_ROOT_KEY_FILE: path.join(stack.dataDir, "root-key") });
    await stack.restartApi();
    expect(stack.worker.status.backend).toBe(hsm.Backend.PKCS11);
    tokenRootKeyId = stack.worker.status.rootKeyId;
    expect(stack.worker.status.sourceRootKeyIds[0]).toBe(fileRootKeyId);
  });

  afterAll(async () => {
    await sql?.end();
    await stack?.stop();
  });

  it("the file's keys work on the token worker before the move; new keys go under the token's root", async () => {
    await checkMade(stack.client, made);
    const keyId = (await stack.client.createKey({ protectionLevel: SOFTWARE })).keyMetadata!.keyId;
    const [row] = await sql<{ rootKeyId: string }[]>`SELECT root_key_id AS "rootKeyId" FROM key_versions WHERE key_id = ${keyId}`;
    expect(row!.rootKeyId).toBe(tokenRootKeyId);
    // verify-restore counts the file's versions as the worker's own while it is configured.
    expect(verifyRestore(stack).code).toBe(0);
  });

  it("rotate-root moves every version off the file under load, killed half-way and resumed", async () => {
    const before = await rewrapAuditRows(stack.client);
    const load = startLoad([stack.client], made.loadKeys, made.ciphertexts);
    const first = await rotateRoot(stack.address, 3);
    expect(first.signal).toBe("SIGKILL");
    const second = await rotateRoot(stack.address);
    await load.stop();
    expect(load.failures).toEqual([]);
    expect(load.calls.ok).toBeGreaterThan(0);
    expect(second.code).toBe(0);
    const r = JSON.parse(second.stdout) as Record<string, unknown>;
    expect(r).toMatchObject({ state: "done", oldRootKeyId: fileRootKeyId, sourceRootKeyId: fileRootKeyId, newRootKeyId: tokenRootKeyId, retainedVersions: 0, remainingVersions: 0 });
    expect(await rootsOfRows(sql)).toEqual([{ rootKeyId: tokenRootKeyId, protectionLevel: SOFTWARE, n: versionsAt(SOFTWARE) + 1 }]);
    // The token's own root set was not rotated: it is the only set there.
    expect((await tokenSecretKeys(stack)).filter((o) => o.label.includes("/retiring/"))).toEqual([]);
    await checkMade(stack.client, made);
    expect((await rewrapAuditRows(stack.client)) - before).toBe(versionsAt(SOFTWARE));
    expect((await stack.client.verifyAuditLog({})).ok).toBe(true);
  });

  it("restarted without the source root file, everything still works: nothing needs the file", async () => {
    await stack.worker.stop();
    await stack.startWorker(hsmEnv);
    await stack.restartApi();
    expect(stack.worker.status.sourceRootKeyIds).toEqual([]);
    await checkMade(stack.client, made);
    expect(verifyRestore(stack).code).toBe(0);
  });
});
