// Chooses the backend from the configuration: a PKCS#11 module when one is configured, else the
// software root key under the data directory, but only when KMS_ALLOW_SOFTWARE_ROOT=true says so.
import { ConfigError } from "@kms/config";
import type { WorkerConfig } from "@kms/config";
import type { Backend } from "./backend";
import type { CheckpointSigner } from "./checkpoint-signer";
import { checkpointKeyLabel, Pkcs11CheckpointKey } from "./pkcs11/checkpoint-key";
import { HsmBackend } from "./pkcs11/hsm-backend";
import { SoftwareCheckpointKey } from "./software/checkpoint-key";
import { SoftwareRootBackend } from "./software/software-root";

export async function createBackend(config: WorkerConfig): Promise<Backend> {
  if (config.pkcs11 === undefined) {
    // A forgotten module must not silently become a root key in a file (on an ephemeral volume, in a pod).
    if (!config.allowSoftwareRoot) {
      throw new ConfigError(
        "KMS_PKCS11_MODULE",
        "is not set: set it to the HSM's PKCS#11 module, or set KMS_ALLOW_SOFTWARE_ROOT=true for a software root key under KMS_DATA_DIR (development and tests only)",
      );
    }
    return SoftwareRootBackend.open(config.dataDir, config.keyCacheSize);
  }
  // createRootKey comes from KMS_CREATE_ROOT_KEY (default false): see findOrCreateRootSet (pkcs11/root-key.ts).
  return HsmBackend.open({ ...config.pkcs11, keyCacheSize: config.keyCacheSize });
}

/** The audit checkpoint key: a token object beside the root key, or one wrapped under the software root. */
export function createCheckpointSigner(config: WorkerConfig, backend: Backend): Promise<CheckpointSigner> {
  if (backend instanceof HsmBackend && config.pkcs11 !== undefined) return Pkcs11CheckpointKey.open(backend.pool, checkpointKeyLabel(config.pkcs11.rootKeyLabel));
  return SoftwareCheckpointKey.open(backend, config.dataDir);
}
