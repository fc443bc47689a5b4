import { mkdtempSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { verifyCheckpoint } from "@kms/audit-chain";
import { hsm } from "@kms/proto/internal";
import { signAuditCheckpoint } from "../checkpoint-signer";
import { SoftwareCheckpointKey } from "./checkpoint-key";
import { SoftwareRootBackend } from "./software-root";

let dataDir: string;
beforeEach(() => {
  dataDir = path.join(mkdtempSync(path.join(os.tmpdir(), "checkpoint-key-")), "data");
});
afterEach(() => rmSync(path.dirname(dataDir), { recursive: true, force: true }));

describe("software checkpoint key", () => {
  it("is made once, kept wrapped in a 0600 file, and signs checkpoints that verify with its public key", async () => {
    const backend = SoftwareRootBackend.open(dataDir, 2);
    const key = await SoftwareCheckpointKey.open(backend, dataDir);
    expect(statSync(path.join(dataDir, "audit-checkpoint-key.json")).mode & 0o777).toBe(0o600);
    const headHash = Buffer.alloc(32, 7);
    const now = new Date(Date.UTC(2026, 5, 1, 12, 0, 0, 123));
    const { response } = await signAuditCheckpoint(key, create(hsm.SignAuditCheckpointRequestSchema, { sequence: 42n, headHash }), () => now);
    expect(response.timeUnixMillis).toBe(BigInt(now.getTime()));
    const checkpoint = { sequence: 42, headHash, time: now, keyId: response.keyId, signature: Buffer.from(response.signature) };
    expect(verifyCheckpoint(checkpoint, key.publicKey)).toBe(true);
    expect(verifyCheckpoint({ ...checkpoint, sequence: 41 }, key.publicKey)).toBe(false);
    // A restarted worker finds the same key.
    const again = await SoftwareCheckpointKey.open(SoftwareRootBackend.open(dataDir, 2), dataDir);
    expect(again.publicKey).toEqual(key.publicKey);
    await backend.close();
  });

  it("refuses a head hash that is not 32 bytes and sequence 0, naming the field", async () => {
    const key = await SoftwareCheckpointKey.open(SoftwareRootBackend.open(dataDir, 2), dataDir);
    await expect(signAuditCheckpoint(key, create(hsm.SignAuditCheckpointRequestSchema, { sequence: 1n, headHash: Buffer.alloc(31) }))).rejects.toThrow(
      "head_hash: must be 32 bytes, got 31",
    );
    await expect(signAuditCheckpoint(key, create(hsm.SignAuditCheckpointRequestSchema, { sequence: 0n, headHash: Buffer.alloc(32) }))).rejects.toThrow("sequence: must be 1 to");
  });
});
