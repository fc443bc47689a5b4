// Crash consistency of key creation: kms-api is killed (SIGKILL, via the test-only KMS_FAULT_INJECT=
// crash-after-generate) between the worker's key generation and the database insert, again and again,
// for CreateKey and CreateKeyVersion. Afterwards no row points at missing material, no orphan is usable,
// and the reconciler (services/kms-api/dist/reconcile.js) finds nothing; it does report what it exists
// to find when that is planted.
import { execFileSync, spawnSync } from "node:child_process";
import { generateKeyPairSync, randomBytes, randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import { connect } from "@kms/db";
import { startApi } from "@kms/dev-stack";
import { createPromiseClient, kms, kmsResources } from "@kms/proto";
import { grpcError, startStack } from "../harness";
import type { Stack } from "../harness";

jest.setTimeout(120_000);

const CRASHES = 6;
const RECONCILE = path.resolve(__dirname, "../../services/kms-api/dist/reconcile.js");

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.stop();
});

function reconcile(): { code: number | null; report: Record<string, unknown> } {
  // kms-api's environment plus the worker's PKCS#11 settings (which win: the token check must read the
  // worker's own token).
  const env = { ...stack.apiEnv, ...stack.workerEnv, DATABASE_URL: stack.apiEnv.DATABASE_URL };
  const run = spawnSync(process.execPath, [RECONCILE], { env, encoding: "utf8" });
  if (run.status !== 0 && run.status !== 3) throw new Error(`reconcile failed: ${run.stderr}`);
  return { code: run.status, report: JSON.parse(run.stdout) as Record<string, unknown> };
}

it(`${CRASHES} crashes between key generation and the database insert leave nothing behind`, async () => {
  const sql = connect(stack.db.url, { max: 1 });
  try {
    const keyId = (await stack.client.createKey({ protectionLevel: kmsResources.ProtectionLevel.HSM })).keyMetadata!.keyId;
    const { ciphertextBlob } = await stack.client.encrypt({ keyId, plaintext: Buffer.from("kept") });
    const count = async () => (await sql<{ keys: number; versions: number }[]>`
      SELECT (SELECT count(*)::int FROM keys) AS keys, (SELECT count(*)::int FROM key_versions) AS versions`)[0]!;
    const before = await count();

    for (let i = 0; i < CRASHES; i++) {
      const api = await startApi({ ...stack.apiEnv, KMS_FAULT_INJECT: "crash-after-generate" });
      const client = createPromiseClient(kms.KeyManagementService, api.address);
      try {
        const call =
          i % 2 === 0
            ? client.createKey({ protectionLevel: i % 4 === 0 ? kmsResources.ProtectionLevel.HSM : kmsResources.ProtectionLevel.SOFTWARE })
            : client.createKeyVersion({ keyId });
        const err = await grpcError(call);
        expect(err.code).toBe(status.UNAVAILABLE); // the connection died with the process
        expect(await api.exited).toBeNull(); // killed by a signal, not an exit
      } finally {
        client.close();
      }
    }

    // No row was written for any of them; everything that was acknowledged still works.
    expect(await count()).toEqual(before);
    expect(Buffer.from((await stack.client.decrypt({ ciphertextBlob })).plaintext).toString()).toBe("kept");
    expect((await stack.client.listKeyVersions({ keyId })).keyVersions.length).toBe(1);
    const rotated = await stack.client.createKeyVersion({ keyId });
    expect(rotated.keyVersion!.keyId).toBe(keyId);

    const { code, report } = reconcile();
    expect({ code, report: { ...report, workerRootKeyId: undefined } }).toEqual({
      code: 0,
      report: { workerRootKeyId: undefined, unusableVersions: [], strayHsmObjects: [], keysWithoutPrimary: [], ok: true },
    });
    expect(report.workerRootKeyId).toBe(stack.worker.status.rootKeyId);
  } finally {
    await sql.end();
  }
});

it("the reconciler reports unusable versions, stray HSM objects and keys without a primary version", async () => {
  const sql = connect(stack.db.url, { max: 1 });
  try {
    // (a) a version wrapped under another root key; (c) an ENABLED key whose primary version row is missing.
    const keyId = (await stack.client.createKey({})).keyMetadata!.keyId;
    const foreign = randomUUID();
    await sql`INSERT INTO key_versions (key_version_id, key_id, creation_time, wrapped_material, root_key_id)
              VALUES (${foreign}, ${keyId}, now(), ${randomBytes(40)}, ${"ab".repeat(16)})`;
    const headless = randomUUID();
    await sql`INSERT INTO keys (key_id, key_spec, key_usage, protection_level, origin, key_state, creation_time, creator, primary_key_version_id)
              VALUES (${headless}, 1, 1, 1, 1, 1, now(), 'test', ${randomUUID()})`;
    // (b) a token object besides the root key.
    const pem = path.join(stack.dataDir, "stray.pem");
    writeFileSync(pem, generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }));
    execFileSync(
      "softhsm2-util",
      ["--import", pem, "--token", stack.workerEnv.KMS_PKCS11_TOKEN_LABEL!, "--label", `orphan-${keyId}`, "--id", "0a0b", "--pin", pinOf(stack)],
      { env: stack.workerEnv, stdio: "ignore" },
    );

    const { code, report } = reconcile();
    expect(code).toBe(3);
    expect(report.ok).toBe(false);
    expect(report.unusableVersions).toEqual([{ keyId, keyVersionId: foreign, rootKeyId: "ab".repeat(16) }]);
    expect(report.keysWithoutPrimary).toEqual([{ keyId: headless, keyState: 1, primaryKeyVersionId: expect.any(String) }]);
    const stray = (report.strayHsmObjects as { class: string }[]).sort((a, b) => a.class.localeCompare(b.class));
    expect(stray).toEqual([
      { class: "private key", label: `orphan-${keyId}`, id: "0a0b" },
      { class: "public key", label: `orphan-${keyId}`, id: "0a0b" },
    ]);
  } finally {
    await sql.end();
  }
});

function pinOf(s: Stack): string {
  return readFileSync(s.workerEnv.KMS_PKCS11_PIN_FILE!, "utf8");
}
