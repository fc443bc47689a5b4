// Test support (not built): a private SoftHSM2 token per test file.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ensureSoftHsmToken } from "@kms/softhsm";
import type { SoftHsmToken } from "@kms/softhsm";

export interface TestToken extends SoftHsmToken {
  dir: string;
  pin: string;
  remove(): void;
}

/**
 * Creates a token labelled `label` in a new temporary directory and points SoftHSM2 at it. Call it before
 * the first PKCS#11 use in the file, and finalize the module in afterAll: SoftHSM reads its configuration
 * once, in C_Initialize, and a jest worker process runs several test files one after another.
 */
export function createTestToken(label: string): TestToken {
  const dir = mkdtempSync(path.join(os.tmpdir(), `${label}-`));
  const token = ensureSoftHsmToken(dir, label);
  // Jest gives each test file a copy of process.env that native code never sees, and loadEnvFile (which
  // writes the real environment, where libsofthsm2's getenv() looks) never overrides a variable. So the
  // real variable names one fixed file per worker process, and each test file copies its token's
  // configuration there.
  const processConf = path.join(os.tmpdir(), `kms-hsm-worker-test-${process.pid}.softhsm2.conf`);
  copyFileSync(token.confPath, processConf);
  const envFile = path.join(dir, "softhsm.env");
  writeFileSync(envFile, `SOFTHSM2_CONF=${processConf}\n`);
  process.loadEnvFile(envFile);
  process.env.SOFTHSM2_CONF = processConf;
  return { ...token, dir, pin: readFileSync(token.pinFile, "utf8"), remove: () => {
      // Call after finalizing the module.
      rmSync(dir, { recursive: true, force: true });
      rmSync(processConf, { force: true });
    },
  };
}
