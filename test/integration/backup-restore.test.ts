// Backup and restore through the real processes (docs/operations.md): keys of every spec and level with
// ciphertexts, signatures and MACs; a backup (pg_dump of the database, a copy of the SoftHSM2 token
// directory); the stack and its data destroyed; a restore onto a new database and a new worker on the
// copied token, checked by `kms admin verify-restore`, after which everything made before the backup still
// works and the audit chain verifies across the restore. A restore against a token holding another root
// key, or none, fails closed: verify-restore exits 3 naming the missing root, decrypts fail, and no root
// key is created over the old data.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { constants, verify as nodeVerify } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { createScratchDatabase } from "@kms/db";
import type { ScratchDatabase } from "@kms/db";
import { createPromiseClient, kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import { errorCode, grpcError, startStack } from "../harness";
import type { Stack, StackOptions } from "../harness";

jest.setTimeout(240_000);

const { KeySpec, KeyUsage, ProtectionLevel, SigningAlgorithm, EncryptionAlgorithm } = kmsResources;
const { HSM, SOFTWARE } = ProtectionLevel;
const CLI = path.resolve(__dirname, "../../packages/cli/bin/kms.js");
const CONTEXT = { app: "backup-restore" };

/** What was made before the backup, to be checked after the restore. */
interface Made {
  ciphertexts: { keyId: string; plaintext: Buffer; ciphertextBlob: Uint8Array }[];
  rsaCiphertexts: { keyId: string; plaintext: Buffer; ciphertextBlob: Uint8Array }[];
  signatures: { keyId: string; algorithm: kmsResources.SigningAlgorithm; hash: "sha256" | "sha384" | null; message: Buffer; signature: Uint8Array; pem: string }[];
  macs: { keyId: string; message: Buffer; mac: Uint8Array }[];
  checkpoint: kmsResources.AuditCheckpoint;
  versions: number;
  rootKeyId: string;
}

const SYMMETRIC = [
  [KeySpec.AES_256, HSM],
  [KeySpec.AES_256, SOFTWARE],
  [KeySpec.AES_128, HSM],
] as const;
const MAC_KEYS = [
  [KeySpec.HMAC_SHA256, HSM],
  [KeySpec.HMAC_SHA512, SOFTWARE],
] as const;
const SIGNING = [
  [KeySpec.RSA_2048, HSM, SigningAlgorithm.RSA_PSS_SHA_256, "sha256"],
  [KeySpec.RSA_2048, SOFTWARE, SigningAlgorithm.RSA_PKCS1_SHA_256, "sha256"],
  [KeySpec.EC_P256, HSM, SigningAlgorithm.ECDSA_SHA_256, "sha256"],
  [KeySpec.EC_P384, SOFTWARE, SigningAlgorithm.ECDSA_SHA_384, "sha384"],
  [KeySpec.EC_P256K, SOFTWARE, SigningAlgorithm.ECDSA_SHA_256, "sha256"],
  [KeySpec.ED25519, SOFTWARE, SigningAlgorithm.ED25519, null],
] as const;
const RSA_ENCRYPTION = [HSM, SOFTWARE] as const;

let tmp: string;
let made: Made;
const stacks: Stack[] = [];

beforeAll(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "kms-backup-it-"));
});
afterAll(async () => {
  await Promise.allSettled(stacks.map((s) => s.stop()));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function stack(options: StackOptions = {}): Promise<Stack> {
  const s = await startStack(options);
  stacks.push(s);
  return s;
}

/** Stops a stack and drops its database and data directory. */
async function destroy(s: Stack): Promise<void> {
  stacks.splice(stacks.indexOf(s), 1);
  await s.stop();
}

/** A new database holding the backup's dump. */
async function restoredDatabase(): Promise<ScratchDatabase> {
  const db = await createScratchDatabase("kms_restore");
  execFileSync("psql", ["-q", "-v", "ON_ERROR_STOP=1", "-f", path.join(tmp, "kms.sql"), db.url], { stdio: ["ignore", "ignore", "pipe"] });
  return db;
}

/** `kms admin verify-restore --json` in kms-api's environment (the CLI runs the check locally). */
function verifyRestore(s: Stack): { code: number | null; report: { ok: boolean; problems: string[]; [k: string]: unknown } } {
  const env = { ...s.apiEnv, DATABASE_URL: s.db.url };
  const run = spawnSync(process.execPath, [CLI, "admin", "verify-restore", "--json"], { env, encoding: "utf8" });
  if (run.status !== 0 && run.status !== 3) throw new Error(`verify-restore could not run (${run.status}): ${run.stderr}`);
  return { code: run.status, report: JSON.parse(run.stdout) as { ok: boolean; problems: string[] } };
}

async function tokenSecretKeys(s: Stack): Promise<string[]> {
  const worker = createPromiseClient(hsm.HsmWorkerService, `unix://${s.worker.socketPath}`);
  try {
    const listing = await worker.listTokenObjects({});
    return listing.objects.filter((o) => o.class === "secret key").map((o) => o.label);
  } finally {
    worker.close();
  }
}

it("a backup is taken of a stack with keys of every spec and level, then the stack and its data are destroyed", async () => {
  const original = await stack();
  const c = original.client;
  const m: Omit<Made, "checkpoint" | "versions" | "rootKeyId"> = { ciphertexts: [], rsaCiphertexts: [], signatures: [], macs: [] };
  for (const [keySpec, protectionLevel] of SYMMETRIC) {
    const keyId = (await c.createKey({ keySpec, protectionLevel })).keyMetadata!.keyId;
    for (let version = 0; version < 2; version++) {
      if (version > 0) await c.createKeyVersion({ keyId }); // the old version's ciphertext must decrypt too
      const plaintext = Buffer.from(`secret ${keySpec}/${protectionLevel}/${version}`);
      m.ciphertexts.push({ keyId, plaintext, ciphertextBlob: (await c.encrypt({ keyId, plaintext, encryptionContext: CONTEXT })).ciphertextBlob });
    }
    const dataKey = await c.generateDataKey({ keyId, keySpec: kmsResources.DataKeySpec.AES_256, encryptionContext: CONTEXT });
    m.ciphertexts.push({ keyId, plaintext: Buffer.from(dataKey.plaintext), ciphertextBlob: dataKey.ciphertextBlob });
  }
  for (const [keySpec, protectionLevel] of MAC_KEYS) {
    const keyId = (await c.createKey({ keySpec, keyUsage: KeyUsage.GENERATE_VERIFY_MAC, protectionLevel })).keyMetadata!.keyId;
    const message = Buffer.from(`mac ${keySpec}`);
    m.macs.push({ keyId, message, mac: (await c.generateMac({ keyId, message })).mac });
  }
  for (const [keySpec, protectionLevel, algorithm, hash] of SIGNING) {
    const keyId = (await c.createKey({ keySpec, keyUsage: KeyUsage.SIGN_VERIFY, protectionLevel })).keyMetadata!.keyId;
    const message = Buffer.from(`signed ${keySpec}/${protectionLevel}`);
    const signed = await c.asymmetricSign({ keyId, algorithm, input: { case: "message", value: message } });
    const pem = (await c.getPublicKey({ keyId })).publicKey;
    m.signatures.push({ keyId, algorithm, hash, message, signature: signed.value, pem });
  }
  for (const protectionLevel of RSA_ENCRYPTION) {
    const keyId = (await c.createKey({ keySpec: KeySpec.RSA_2048, keyUsage: KeyUsage.ENCRYPT_DECRYPT, protectionLevel })).keyMetadata!.keyId;
    const plaintext = Buffer.from(`oaep ${protectionLevel}`);
    const { ciphertextBlob } = await c.asymmetricEncrypt({ keyId, algorithm: EncryptionAlgorithm.RSAES_OAEP_SHA_256, plaintext });
    m.rsaCiphertexts.push({ keyId, plaintext, ciphertextBlob });
  }
  // kms-api signs an audit checkpoint when it stops: the backup holds one.
  await original.restartApi();
  const { checkpoints } = await original.client.listAuditCheckpoints({ pageSize: 1 });
  expect(checkpoints.length).toBe(1);

  // The backup: the database first, then the token (docs/operations.md: either order works while no key is
  // created in between; the token never changes after its root key and checkpoint key are made).
  execFileSync("pg_dump", ["--no-owner", "--no-privileges", "-f", path.join(tmp, "kms.sql"), original.db.url], { stdio: ["ignore", "ignore", "pipe"] });
  cpSync(original.softHsmDir!, path.join(tmp, "token-backup"), { recursive: true });
  const versions = SYMMETRIC.length * 2 + MAC_KEYS.length + SIGNING.length + RSA_ENCRYPTION.length;
  made = { ...m, checkpoint: checkpoints[0]!, versions, rootKeyId: original.worker.status.rootKeyId };
  expect(made.rootKeyId).toMatch(/^[0-9a-f]{32}$/);

  await destroy(original);
  expect(existsSync(original.dataDir)).toBe(false);
  expect(existsSync(original.softHsmDir!)).toBe(false);
});

describe("restored onto a new database and a new worker on the copied token", () => {
  let restored: Stack;
  beforeAll(async () => {
    const tokenDir = path.join(tmp, "token-restored");
    cpSync(path.join(tmp, "token-backup"), tokenDir, { recursive: true });
    restored = await stack({ db: await restoredDatabase(), softHsmDir: tokenDir, createRootKey: false });
  });

  it("verify-restore finds every key version usable and the audit chain intact through its checkpoint", () => {
    expect(restored.worker.status.rootKeyId).toBe(made.rootKeyId);
    const { code, report } = verifyRestore(restored);
    expect({ code, problems: report.problems, ok: report.ok }).toEqual({ code: 0, problems: [], ok: true });
    expect(report.keyVersions).toEqual({ checked: made.versions, ok: made.versions, underWorkerRoots: made.versions, missingRoots: [], bad: [], badCount: 0 });
    expect(report.audit).toMatchObject({ ok: true, checkpointMatched: true, lastCheckpoint: { sequence: Number(made.checkpoint.sequence), signatureValid: true } });
  });

  it("every ciphertext decrypts, every signature verifies with the same public key, every MAC verifies", async () => {
    const c = restored.client;
    for (const x of made.ciphertexts) {
      const out = await c.decrypt({ ciphertextBlob: x.ciphertextBlob, encryptionContext: CONTEXT });
      expect([out.keyId, Buffer.from(out.plaintext).toString("hex")]).toEqual([x.keyId, x.plaintext.toString("hex")]);
    }
    for (const x of made.rsaCiphertexts) {
      const out = await c.asymmetricDecrypt({ keyId: x.keyId, algorithm: EncryptionAlgorithm.RSAES_OAEP_SHA_256, ciphertextBlob: x.ciphertextBlob });
      expect(Buffer.from(out.plaintext)).toEqual(x.plaintext);
    }
    for (const x of made.signatures) {
      expect((await c.getPublicKey({ keyId: x.keyId })).publicKey).toBe(x.pem);
      const pss = x.algorithm === SigningAlgorithm.RSA_PSS_SHA_256 ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : {};
      expect(nodeVerify(x.hash, x.message, { key: x.pem, ...pss }, x.signature)).toBe(true);
      expect((await c.asymmetricVerify({ keyId: x.keyId, algorithm: x.algorithm, input: { case: "message", value: x.message }, value: x.signature })).value).toBe(true);
      // The private key came back too: a new signature verifies with the old public key.
      const again = await c.asymmetricSign({ keyId: x.keyId, algorithm: x.algorithm, input: { case: "message", value: x.message } });
      expect(nodeVerify(x.hash, x.message, { key: x.pem, ...pss }, again.value)).toBe(true);
    }
    for (const x of made.macs) {
      expect((await c.verifyMac({ keyId: x.keyId, message: x.message, mac: x.mac })).macValid).toBe(true);
    }
  });

  it("the audit chain verifies across the restore, through the checkpoint taken before the backup", async () => {
    await restored.client.encrypt({ keyId: made.ciphertexts[0]!.keyId, plaintext: Buffer.from("after the restore") }); // new rows on the restored chain
    const res = await restored.client.verifyAuditLog({ checkpoint: made.checkpoint });
    expect({ ok: res.ok, problem: res.problem, checkpointMatched: res.checkpointMatched }).toEqual({ ok: true, problem: "", checkpointMatched: true });
    expect(res.verifiedCount).toBeGreaterThan(made.checkpoint.sequence);
  });
});

describe("restored against the wrong token", () => {
  it("one holding another root key: verify-restore exits 3 naming the missing root, and decrypts fail", async () => {
    const wrong = await stack({ db: await restoredDatabase() }); // a fresh token, its own root key created
    expect(wrong.worker.status.rootKeyId).not.toBe(made.rootKeyId);
    const { code, report } = verifyRestore(wrong);
    expect(code).toBe(3);
    expect(report.keyVersions).toMatchObject({ checked: made.versions, ok: 0, underWorkerRoots: 0, missingRoots: [expect.objectContaining({ rootKeyId: made.rootKeyId, versions: made.versions })] });
    expect(report.problems).toEqual(expect.arrayContaining([expect.stringContaining(`wrapped under root key ${made.rootKeyId}, which the worker does not hold`)]));
    expect(report.problems).toEqual(expect.arrayContaining([expect.stringContaining(`the worker's root key ${wrong.worker.status.rootKeyId} wraps none of the ${made.versions} key version(s): it looks new`)]));
    // Another HSM has another checkpoint key: the restored checkpoint does not verify with it.
    expect(report.audit).toMatchObject({ lastCheckpoint: { signatureValid: false } });
    const err = await grpcError(wrong.client.decrypt({ ciphertextBlob: made.ciphertexts[0]!.ciphertextBlob, encryptionContext: CONTEXT }));
    expect([err.code, errorCode(err.metadata)]).toEqual([status.FAILED_PRECONDITION, "Rejected.RootKeyMismatch"]);
    expect(err.details).toContain(made.rootKeyId);
    await destroy(wrong);
  });

  it("an empty one, with KMS_CREATE_ROOT_KEY=false: verify-restore exits 3, decrypts fail, and no root key is created", async () => {
    const empty = await stack({ db: await restoredDatabase(), createRootKey: false });
    expect(empty.worker.status.rootKeyId).toBe("");
    const { code, report } = verifyRestore(empty);
    expect(code).toBe(3);
    expect(report.problems[0]).toMatch(/^the worker holds no root key .*KMS_CREATE_ROOT_KEY=false/);
    expect(report.problems).toEqual(expect.arrayContaining([expect.stringContaining(`wrapped under root key ${made.rootKeyId}`)]));
    const err = await grpcError(empty.client.decrypt({ ciphertextBlob: made.ciphertexts[0]!.ciphertextBlob, encryptionContext: CONTEXT }));
    expect([err.code, errorCode(err.metadata)]).toEqual([status.FAILED_PRECONDITION, "Rejected.RootKeyMismatch"]);
    // A new key cannot be made either: nothing is wrapped under a root nobody backed up.
    const refused = await grpcError(empty.client.createKey({}));
    expect(refused.code).toBe(status.FAILED_PRECONDITION);
    expect(await tokenSecretKeys(empty)).toEqual([]);
    await destroy(empty);
  });
});
