// Chooses the backend from the configuration: a PKCS#11 module when one is configured, else the
// software root key under the data directory.
import type { WorkerConfig } from "@kms/config";
import type { Backend } from "./backend";
import { HsmBackend } from "./pkcs11/hsm-backend";
import { SoftwareRootBackend } from "./software/software-root";

export async function createBackend(config: WorkerConfig): Promise<Backend> {
  if (config.pkcs11 === undefined) return SoftwareRootBackend.open(config.dataDir, config.keyCacheSize);
  // createRootKey comes from KMS_CREATE_ROOT_KEY (default false): see findOrCreateRootSet (pkcs11/root-key.ts).
  return HsmBackend.open({ ...config.pkcs11, keyCacheSize: config.keyCacheSize });
}
