// Chooses the backend from the configuration: a PKCS#11 module when one is configured, else the
// software root key under the data directory, but only when KMS_ALLOW_SOFTWARE_ROOT=true says so. With
// it come the parts only one kind has: the audit checkpoint key's home and the token inventory.
import { ConfigError } from "@kms/config";
import type { WorkerConfig } from "@kms/config";
import type { Backend } from "./backend";
import type { CheckpointSigner } from "./checkpoint-signer";
import { checkpointKeyLabel, Pkcs11CheckpointKey } from "./pkcs11/checkpoint-key";
import { HsmBackend } from "./pkcs11/hsm-backend";
import { Pkcs11TokenInventory } from "./pkcs11/token-objects";
import type { TokenInventory } from "./pkcs11/token-objects";
import { SoftwareCheckpointKey } from "./software/checkpoint-key";
import { SoftwareRootBackend } from "./software/software-root";

export interface WorkerBackend {
  backend: Backend;
  /** The audit checkpoint key: a token object beside the root key, or one wrapped under the software root. */
  checkpoints: CheckpointSigner;
  /** The token's objects, for the reconciler; none on the software root. */
  tokens?: TokenInventory | undefined;
  /** The PKCS#11 module profile chosen (pkcs11/capabilities.ts), for the start-up log. */
  moduleProfile?: string;
}

export async function createBackend(config: WorkerConfig): Promise<WorkerBackend> {
  if (config.pkcs11 === undefined) {
    // A forgotten module must not silently become a root key in a file (on an ephemeral volume, in a pod).
    if (!config.allowSoftwareRoot) {
      throw new ConfigError(
        "KMS_PKCS11_MODULE",
        "is not set: set it to the HSM's PKCS#11 module, or set KMS_ALLOW_SOFTWARE_ROOT=true for a software root key under KMS_DATA_DIR (development and tests only)",
      );
    }
    const backend = SoftwareRootBackend.open(config.dataDir, config.keyCacheSize);
    return { backend, checkpoints: await SoftwareCheckpointKey.open(backend, config.dataDir) };
  }
  // createRootKey comes from KMS_CREATE_ROOT_KEY (default false): see findOrCreateRootSet (pkcs11/root-key.ts).
  const p = config.pkcs11;
  const backend = await HsmBackend.open({ ...p, keyCacheSize: config.keyCacheSize });
  try {
    const label = checkpointKeyLabel(p.rootKeyLabel);
    return {
      backend,
      checkpoints: await Pkcs11CheckpointKey.open(backend.pool, label),
      moduleProfile: backend.profile.name,
      tokens: new Pkcs11TokenInventory(backend.pool, { tokenLabel: p.tokenLabel, rootKeyLabel: p.rootKeyLabel, checkpointKeyLabel: label }),
    };
  } catch (err) {
    await backend.close();
    throw err;
  }
}
