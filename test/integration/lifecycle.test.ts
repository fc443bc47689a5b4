// Key lifecycle through the real processes: every state transition, versions, aliases in every
// key_id field, tags, ReEncrypt, rotation by use, and a second replica seeing changes at once.
import { randomBytes } from "node:crypto";
import { status } from "@grpc/grpc-js";
import postgres from "postgres";
import { kmsResources } from "@kms/proto";
import { errorCode, grpcError, startStack } from "../harness";
import type { KmsClient, Stack } from "../harness";

const { KeyState, ProtectionLevel } = kmsResources;
const E = KeyState.ENABLED;
const D = KeyState.DISABLED;
const PD = KeyState.PENDING_DELETION;

let stack: Stack;
let c: KmsClient;
beforeAll(async () => {
  stack = await startStack({ env: { KMS_ROTATE_AFTER_ENCRYPTIONS: "20" } });
  c = stack.client;
});
afterAll(async () => {
  await stack?.stop();
});

async function newKey(protectionLevel = ProtectionLevel.HSM): Promise<string> {
  return (await c.createKey({ protectionLevel })).keyMetadata!.keyId;
}

async function stateOf(keyId: string): Promise<number> {
  return (await c.describeKey({ keyId })).keyMetadata!.keyState;
}

/** Puts a fresh key into `state`. */
async function keyIn(state: number): Promise<string> {
  const keyId = await newKey(ProtectionLevel.SOFTWARE);
  if (state === D) await c.disableKey({ keyId });
  if (state === PD) await c.scheduleKeyDeletion({ keyId, pendingWindowInDays: 7 });
  expect(await stateOf(keyId)).toBe(state);
  return keyId;
}

describe("state transitions", () => {
  type Action = "enable" | "disable" | "schedule" | "cancel";
  const run = (keyId: string, action: Action) =>
    action === "enable"
      ? c.enableKey({ keyId })
      : action === "disable"
        ? c.disableKey({ keyId })
        : action === "schedule"
          ? c.scheduleKeyDeletion({ keyId })
          : c.cancelKeyDeletion({ keyId });
  // [from, action, to] or [from, action, kms-error-code of the FAILED_PRECONDITION].
  const table: [number, Action, number | string][] = [
    [E, "enable", E],
    [E, "disable", D],
    [E, "schedule", PD],
    [E, "cancel", "Rejected.Disabled"],
    [D, "enable", E],
    [D, "disable", D],
    [D, "schedule", PD],
    [D, "cancel", "Rejected.Disabled"],
    [PD, "enable", "Rejected.PendingDeletion"],
    [PD, "disable", "Rejected.PendingDeletion"],
    [PD, "schedule", "Rejected.PendingDeletion"],
    [PD, "cancel", D],
  ];
  it.each(table)("from state %i, %s → %s", async (from, action, expected) => {
    const keyId = await keyIn(from);
    if (typeof expected === "number") {
      const reply = await run(keyId, action);
      expect(reply.keyMetadata?.keyState).toBe(expected);
      expect(await stateOf(keyId)).toBe(expected);
    } else {
      const err = await grpcError(run(keyId, action));
      expect(err.code).toBe(status.FAILED_PRECONDITION);
      expect(errorCode(err.metadata)).toBe(expected);
      expect(await stateOf(keyId)).toBe(from);
    }
  });

  it("sets and clears delete_time, default window 30 days", async () => {
    const keyId = await keyIn(E);
    const scheduled = (await c.scheduleKeyDeletion({ keyId })).keyMetadata!;
    const days = (Number(scheduled.deleteTime!.seconds) * 1000 - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThanOrEqual(30);
    const cancelled = (await c.cancelKeyDeletion({ keyId })).keyMetadata!;
    expect(cancelled.deleteTime).toBeUndefined();
  });

  it("refuses pending windows outside 7..366 days", async () => {
    const keyId = await keyIn(E);
    for (const days of [6, 367, -1]) {
      const err = await grpcError(c.scheduleKeyDeletion({ keyId, pendingWindowInDays: days }));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/^pending_window_in_days: /);
    }
  });

  it("refuses deletion of a protected key until protection is lifted", async () => {
    const keyId = await keyIn(E);
    const protectedKey = (await c.setDeletionProtection({ keyId, enable: true, description: "prod data" })).keyMetadata!;
    expect(protectedKey.deletionProtection).toBe(true);
    expect(protectedKey.deletionProtectionDescription).toBe("prod data");
    const err = await grpcError(c.scheduleKeyDeletion({ keyId }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(errorCode(err.metadata)).toBe("Rejected.DeletionProtection");
    await c.setDeletionProtection({ keyId, enable: false });
    expect((await c.scheduleKeyDeletion({ keyId })).keyMetadata!.keyState).toBe(PD);
  });

  it("enforces state on every cryptographic call, Decrypt of an old blob too", async () => {
    const keyId = await newKey();
    const { ciphertextBlob } = await c.encrypt({ keyId, plaintext: Buffer.from("x") });
    const other = await newKey();
    const otherBlob = (await c.encrypt({ keyId: other, plaintext: Buffer.from("y") })).ciphertextBlob;
    for (const [change, code] of [
      [() => c.disableKey({ keyId }), "Rejected.Disabled"],
      [() => c.scheduleKeyDeletion({ keyId }), "Rejected.PendingDeletion"],
    ] as const) {
      await change();
      const calls = [
        () => c.encrypt({ keyId, plaintext: Buffer.from("x") }),
        () => c.decrypt({ ciphertextBlob }),
        () => c.generateDataKey({ keyId }),
        () => c.generateDataKeyWithoutPlaintext({ keyId }),
        () => c.reEncrypt({ ciphertextBlob, destinationKeyId: other }),
        () => c.reEncrypt({ ciphertextBlob: otherBlob, destinationKeyId: keyId }),
      ];
      for (const call of calls) {
        const err = await grpcError(call());
        expect(err.code).toBe(status.FAILED_PRECONDITION);
        expect(errorCode(err.metadata)).toBe(code);
        expect(err.details).toMatch(/KEY_STATE_/);
      }
      if (code === "Rejected.Disabled") await c.enableKey({ keyId });
    }
  });

  it("updates the description", async () => {
    const keyId = await keyIn(E);
    expect((await c.updateKeyDescription({ keyId, description: "new" })).keyMetadata!.description).toBe("new");
    const err = await grpcError(c.updateKeyDescription({ keyId, description: "d".repeat(8193) }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
  });
});

describe("versions", () => {
  it("makes a new primary; every old version still decrypts after several rotations", async () => {
    const keyId = await newKey();
    const blobs: { plaintext: Buffer; blob: Uint8Array; version: string }[] = [];
    for (let i = 0; i < 4; i++) {
      const plaintext = randomBytes(32);
      const enc = await c.encrypt({ keyId, plaintext, encryptionContext: { i: String(i) } });
      blobs.push({ plaintext, blob: enc.ciphertextBlob, version: enc.keyVersionId });
      const created = await c.createKeyVersion({ keyId });
      expect(created.keyVersion!.keyId).toBe(keyId);
      const meta = (await c.describeKey({ keyId })).keyMetadata!;
      expect(meta.primaryKeyVersionId).toBe(created.keyVersion!.keyVersionId);
      expect(meta.lastRotationTime).toBeDefined();
    }
    expect(new Set(blobs.map((b) => b.version)).size).toBe(4);
    for (const [i, b] of blobs.entries()) {
      const dec = await c.decrypt({ ciphertextBlob: b.blob, encryptionContext: { i: String(i) } });
      expect(Buffer.from(dec.plaintext)).toEqual(b.plaintext);
      expect(dec.keyVersionId).toBe(b.version);
    }
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await c.listKeyVersions({ keyId, pageSize: 2, pageToken });
      seen.push(...page.keyVersions.map((v) => v.keyVersionId));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen.length).toBe(5);
    expect(seen.slice(0, 4)).toEqual(blobs.map((b) => b.version));
    const described = await c.describeKeyVersion({ keyId, keyVersionId: seen[0]! });
    expect(described.keyVersion!.keyVersionId).toBe(seen[0]);
    const err = await grpcError(c.describeKeyVersion({ keyId, keyVersionId: "00000000-0000-4000-8000-000000000000" }));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(errorCode(err.metadata)).toBe("Forbidden.KeyVersionNotFound");
  });

  it("refuses a new version of an HMAC key (VerifyMac names no version)", async () => {
    const keyId = (await c.createKey({ keySpec: kmsResources.KeySpec.HMAC_SHA256, keyUsage: kmsResources.KeyUsage.GENERATE_VERIFY_MAC })).keyMetadata!.keyId;
    const { mac } = await c.generateMac({ keyId, message: Buffer.from("m") });
    const err = await grpcError(c.createKeyVersion({ keyId }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(errorCode(err.metadata)).toBe("Rejected.KeyUsage");
    expect((await c.verifyMac({ keyId, message: Buffer.from("m"), mac })).macValid).toBe(true);
  });

  it("refuses a new version of a disabled key", async () => {
    const keyId = await keyIn(D);
    const err = await grpcError(c.createKeyVersion({ keyId }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
  });

  it("sets and clears the rotation policy", async () => {
    const keyId = await newKey();
    const on = (await c.updateRotationPolicy({ keyId, enableAutomaticRotation: true, rotationInterval: { seconds: BigInt(30 * 86400) } })).keyMetadata!;
    expect(on.automaticRotation).toBe(true);
    expect(on.rotationInterval?.seconds).toBe(BigInt(30 * 86400));
    expect(on.nextRotationTime).toBeDefined();
    const off = (await c.updateRotationPolicy({ keyId, enableAutomaticRotation: false })).keyMetadata!;
    expect(off.automaticRotation).toBe(false);
    expect(off.nextRotationTime).toBeUndefined();
    const err = await grpcError(c.updateRotationPolicy({ keyId, enableAutomaticRotation: true, rotationInterval: { seconds: BigInt(86400) } }));
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/^rotation_interval: /);
    const created = (await c.createKey({ enableAutomaticRotation: true })).keyMetadata!;
    expect(created.rotationInterval?.seconds).toBe(BigInt(365 * 86400));
  });

  it("rotates by use after KMS_ROTATE_AFTER_ENCRYPTIONS encryptions (20 here)", async () => {
    const keyId = await newKey();
    const first = (await c.describeKey({ keyId })).keyMetadata!.primaryKeyVersionId;
    const blobs = [];
    for (let i = 0; i < 25; i++) blobs.push((await c.encrypt({ keyId, plaintext: Buffer.from(`m${i}`) })).ciphertextBlob);
    let primary = first;
    for (let i = 0; i < 50 && primary === first; i++) {
      await new Promise((r) => setTimeout(r, 100));
      primary = (await c.describeKey({ keyId })).keyMetadata!.primaryKeyVersionId;
    }
    expect(primary).not.toBe(first);
    const versions = await c.listKeyVersions({ keyId });
    expect(versions.keyVersions.length).toBe(2);
    for (const [i, blob] of blobs.entries()) {
      expect(Buffer.from((await c.decrypt({ ciphertextBlob: blob })).plaintext).toString()).toBe(`m${i}`);
    }
    // The rotation committed with its audit row, naming the new version, as the service's own change.
    const sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql`SELECT principal, key_version_id FROM audit_events WHERE key_id = ${keyId} AND operation = 'RotationByUse'`;
      expect(rows.map((r) => [r.principal, r.key_version_id])).toEqual([["kms:system", primary]]);
    } finally {
      await sql.end();
    }
  });
});

describe("aliases", () => {
  it("is accepted in every key_id field", async () => {
    const keyId = await newKey();
    const other = await newKey();
    const alias = `alias/app/${randomBytes(4).toString("hex")}`;
    const created = await c.createAlias({ aliasName: alias, keyId });
    expect(created.alias!.keyId).toBe(keyId);

    expect((await c.describeKey({ keyId: alias })).keyMetadata!.keyId).toBe(keyId);
    const enc = await c.encrypt({ keyId: alias, plaintext: Buffer.from("via alias") });
    expect(enc.keyId).toBe(keyId);
    expect((await c.generateDataKey({ keyId: alias })).keyId).toBe(keyId);
    expect((await c.generateDataKeyWithoutPlaintext({ keyId: alias })).keyId).toBe(keyId);
    expect((await c.updateKeyDescription({ keyId: alias, description: "a" })).keyMetadata!.keyId).toBe(keyId);
    expect((await c.disableKey({ keyId: alias })).keyMetadata!.keyState).toBe(D);
    expect((await c.enableKey({ keyId: alias })).keyMetadata!.keyState).toBe(E);
    expect((await c.setDeletionProtection({ keyId: alias, enable: false })).keyMetadata!.keyId).toBe(keyId);
    expect((await c.createKeyVersion({ keyId: alias })).keyVersion!.keyId).toBe(keyId);
    expect((await c.listKeyVersions({ keyId: alias })).keyVersions.length).toBe(2);
    const v = (await c.describeKey({ keyId })).keyMetadata!.primaryKeyVersionId;
    expect((await c.describeKeyVersion({ keyId: alias, keyVersionId: v })).keyVersion!.keyId).toBe(keyId);
    expect((await c.updateRotationPolicy({ keyId: alias, enableAutomaticRotation: false })).keyMetadata!.keyId).toBe(keyId);
    expect((await c.tagResource({ keyId: alias, tags: { t: "1" } })).tags).toEqual({ t: "1" });
    expect((await c.listResourceTags({ keyId: alias })).tags).toEqual({ t: "1" });
    expect((await c.untagResource({ keyId: alias, tagKeys: ["t"] })).tags).toEqual({});
    expect((await c.listAliasesByKeyId({ keyId: alias })).aliases.map((a) => a.aliasName)).toEqual([alias]);
    const re = await c.reEncrypt({ ciphertextBlob: (await c.encrypt({ keyId: other, plaintext: Buffer.from("r") })).ciphertextBlob, destinationKeyId: alias });
    expect(re.keyId).toBe(keyId);
    expect((await c.scheduleKeyDeletion({ keyId: alias })).keyMetadata!.keyState).toBe(PD);
    expect((await c.cancelKeyDeletion({ keyId: alias })).keyMetadata!.keyState).toBe(D);
  });

  it("moves to another key, refuses duplicates and bad names, and deletes", async () => {
    const a = await newKey();
    const b = await newKey();
    const alias = `alias/move-${randomBytes(4).toString("hex")}`;
    await c.createAlias({ aliasName: alias, keyId: a });
    const dup = await grpcError(c.createAlias({ aliasName: alias, keyId: b }));
    expect(dup.code).toBe(status.ALREADY_EXISTS);
    expect(errorCode(dup.metadata)).toBe("AlreadyExists.Alias");
    const updated = await c.updateAlias({ aliasName: alias, keyId: b });
    expect(updated.alias!.keyId).toBe(b);
    expect((await c.encrypt({ keyId: alias, plaintext: Buffer.from("x") })).keyId).toBe(b);
    for (const bad of ["alias/", "app", "alias/has space", `alias/${"x".repeat(256)}`]) {
      const err = await grpcError(c.createAlias({ aliasName: bad, keyId: a }));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/^alias_name: /);
    }
    const nested = await grpcError(c.createAlias({ aliasName: `${alias}-2`, keyId: alias }));
    expect(nested.code).toBe(status.INVALID_ARGUMENT);
    await c.deleteAlias({ aliasName: alias });
    const gone = await grpcError(c.describeKey({ keyId: alias }));
    expect(gone.code).toBe(status.NOT_FOUND);
    expect(errorCode(gone.metadata)).toBe("Forbidden.AliasNotFound");
    expect((await grpcError(c.deleteAlias({ aliasName: alias }))).code).toBe(status.NOT_FOUND);
    expect((await grpcError(c.updateAlias({ aliasName: alias, keyId: a }))).code).toBe(status.NOT_FOUND);
  });

  it("lists all aliases page by page", async () => {
    const keyId = await newKey();
    const prefix = `alias/list-${randomBytes(4).toString("hex")}`;
    for (let i = 0; i < 3; i++) await c.createAlias({ aliasName: `${prefix}-${i}`, keyId });
    const names: string[] = [];
    let pageToken = "";
    do {
      const page = await c.listAliases({ pageSize: 2, pageToken });
      names.push(...page.aliases.map((a) => a.aliasName));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(names.filter((n) => n.startsWith(prefix))).toEqual([0, 1, 2].map((i) => `${prefix}-${i}`));
    expect([...names].sort()).toEqual(names);
  });
});

describe("tags", () => {
  it("adds, overwrites, removes, caps at 20 and filters ListKeys by tag and state", async () => {
    const keyId = await newKey();
    const marker = randomBytes(4).toString("hex");
    expect((await c.tagResource({ keyId, tags: { env: "dev", marker } })).tags).toEqual({ env: "dev", marker });
    expect((await c.tagResource({ keyId, tags: { env: "prod" } })).tags).toEqual({ env: "prod", marker });
    const many = Object.fromEntries(Array.from({ length: 19 }, (_, i) => [`k${i}`, "v"]));
    const err = await grpcError(c.tagResource({ keyId, tags: many }));
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(errorCode(err.metadata)).toBe("Rejected.TooManyTags");
    const bad = await grpcError(c.tagResource({ keyId, tags: { ["k".repeat(129)]: "v" } }));
    expect(bad.code).toBe(status.INVALID_ARGUMENT);
    expect((await c.untagResource({ keyId, tagKeys: ["env"] })).tags).toEqual({ marker });

    const disabled = await newKey();
    await c.tagResource({ keyId: disabled, tags: { marker } });
    await c.disableKey({ keyId: disabled });
    const byTag = await c.listKeys({ filter: { tags: { marker } } });
    expect(byTag.keys.map((k) => k.keyId).sort()).toEqual([keyId, disabled].sort());
    const byTagAndState = await c.listKeys({ filter: { tags: { marker }, keyStates: [D] } });
    expect(byTagAndState.keys.map((k) => k.keyId)).toEqual([disabled]);
  });
});

describe("ReEncrypt", () => {
  it("moves a ciphertext across keys and contexts without the plaintext reaching the caller", async () => {
    const a = await newKey(ProtectionLevel.HSM);
    const b = await newKey(ProtectionLevel.SOFTWARE);
    const plaintext = randomBytes(100);
    const enc = await c.encrypt({ keyId: a, plaintext, encryptionContext: { from: "a" } });
    const re = await c.reEncrypt({
      ciphertextBlob: enc.ciphertextBlob,
      sourceEncryptionContext: { from: "a" },
      destinationKeyId: b,
      destinationEncryptionContext: { to: "b" },
    });
    expect(re.sourceKeyId).toBe(a);
    expect(re.sourceKeyVersionId).toBe(enc.keyVersionId);
    expect(re.keyId).toBe(b);
    expect(Object.keys(re)).not.toContain("plaintext");
    const dec = await c.decrypt({ ciphertextBlob: re.ciphertextBlob, encryptionContext: { to: "b" } });
    expect(Buffer.from(dec.plaintext)).toEqual(plaintext);
    const wrongSource = await grpcError(c.reEncrypt({ ciphertextBlob: enc.ciphertextBlob, sourceEncryptionContext: { from: "x" }, destinationKeyId: b }));
    expect(wrongSource.details).toBe("ciphertext or encryption context is invalid");
    const badDest = await grpcError(c.reEncrypt({ ciphertextBlob: enc.ciphertextBlob, sourceEncryptionContext: { from: "a" }, destinationKeyId: "nope" }));
    expect(badDest.details).toMatch(/^destination_key_id: /);
  });
});

describe("two replicas", () => {
  it("a change through one replica is honoured by the other within 1 s", async () => {
    const second = await stack.startReplica();
    const keyId = await newKey();
    const { ciphertextBlob } = await second.client.encrypt({ keyId, plaintext: Buffer.from("x") });
    await c.disableKey({ keyId });
    const started = Date.now();
    let refused = false;
    while (!refused && Date.now() - started < 1000) {
      try {
        await second.client.decrypt({ ciphertextBlob });
      } catch (err) {
        expect((err as { code: number }).code).toBe(status.FAILED_PRECONDITION);
        refused = true;
      }
    }
    expect(refused).toBe(true);

    const alias = `alias/replica-${randomBytes(4).toString("hex")}`;
    const k2 = await newKey();
    await c.createAlias({ aliasName: alias, keyId: k2 });
    expect((await second.client.describeKey({ keyId: alias })).keyMetadata!.keyId).toBe(k2);
  });
});

describe("storage", () => {
  it("keeps the wrapped material of every version and nothing else", async () => {
    const sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
    try {
      const rows = await sql<{ n: string }[]>`SELECT count(*)::text AS n FROM key_versions WHERE length(wrapped_material) < 40`;
      expect(rows[0]!.n).toBe("0");
    } finally {
      await sql.end();
    }
  });
});
