// The audit checkpoint key without a PKCS#11 module: an EC P-256 key made by the backend and kept only
// wrapped under the software root key, in `${dataDir}/audit-checkpoint-key.json` (0600). It signs through
// the backend like any key version, so its private half is never in a file in the clear.
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { kmsResources } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import type { Backend } from "../backend";
import { onWire } from "../checked-calls";
import type { CheckpointSigner } from "../checkpoint-signer";

const FILE = "audit-checkpoint-key.json";
const KEY_VERSION_ID = "audit-checkpoint-key";

interface Stored {
  wrappedMaterial: string;
  publicKey: string;
  rootKeyId: string;
}

export class SoftwareCheckpointKey implements CheckpointSigner {
  private constructor(
    private readonly backend: Backend,
    private readonly key: hsm.WrappedKey,
    readonly publicKey: Buffer,
  ) {}

  /** Reads the wrapped key under `dataDir`, making it on the first start. */
  static async open(backend: Backend, dataDir: string): Promise<SoftwareCheckpointKey> {
    const file = path.join(dataDir, FILE);
    let stored: Stored;
    try {
      stored = JSON.parse(readFileSync(file, "utf8")) as Stored;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      const made = await onWire(backend).generateKeyMaterial(kmsResources.KeySpec.EC_P256, kmsResources.ProtectionLevel.SOFTWARE, KEY_VERSION_ID);
      stored = {
        wrappedMaterial: Buffer.from(made.wrappedMaterial).toString("base64"),
        publicKey: Buffer.from(made.publicKey).toString("base64"),
        rootKeyId: made.rootKeyId,
      };
      stored = writeOnce(file, stored);
    }
    const key = create(hsm.WrappedKeySchema, {
      keyVersionId: KEY_VERSION_ID,
      keySpec: kmsResources.KeySpec.EC_P256,
      protectionLevel: kmsResources.ProtectionLevel.SOFTWARE,
      wrappedMaterial: Buffer.from(stored.wrappedMaterial, "base64"),
      rootKeyId: stored.rootKeyId,
    });
    return new SoftwareCheckpointKey(backend, key, Buffer.from(stored.publicKey, "base64"));
  }

  signDigest(digest: Buffer): Promise<Buffer> {
    return onWire(this.backend).sign(this.key, kmsResources.SigningAlgorithm.ECDSA_SHA_256, { case: "digest", value: digest });
  }
}

/** Writes `stored` unless another worker made the file first; returns what the file holds. */
function writeOnce(file: string, stored: Stored): Stored {
  let fd: number;
  try {
    fd = openSync(file, "wx", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    return JSON.parse(readFileSync(file, "utf8")) as Stored;
  }
  try {
    writeSync(fd, JSON.stringify(stored));
  } finally {
    closeSync(fd);
  }
  return stored;
}
