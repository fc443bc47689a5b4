// A SoftHSM2 token in a directory of its own (its own softhsm2.conf), so the dev stack and each test
// run get a private HSM without touching /var/lib/softhsm. Used only where SoftHSM2 stands in for a
// real HSM; production points KMS_PKCS11_MODULE at the vendor's module.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

/** Where Debian's softhsm2 package installs the module. */
export const SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so";

export interface SoftHsmToken {
  /** Value for SOFTHSM2_CONF in the worker's environment. */
  confPath: string;
  module: string;
  label: string;
  /** File holding the user PIN (mode 0600): value for KMS_PKCS11_PIN_FILE. */
  pinFile: string;
  /** True when this call initialised the token; false when it already existed. */
  created: boolean;
}

export function softHsmInstalled(module = SOFTHSM2_MODULE): boolean {
  return existsSync(module);
}

/**
 * Finds or creates a token labelled `label` under `dir` (dir/softhsm2.conf, dir/tokens/, dir/pin).
 * The PIN is random and kept in dir/pin with mode 0600.
 */
export function ensureSoftHsmToken(dir: string, label = "kms"): SoftHsmToken {
  mkdirSync(path.join(dir, "tokens"), { recursive: true, mode: 0o700 });
  const confPath = path.join(dir, "softhsm2.conf");
  const pinFile = path.join(dir, "pin");
  writeFileSync(
    confPath,
    `directories.tokendir = ${path.join(dir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`,
    { mode: 0o600 },
  );
  const env = { ...process.env, SOFTHSM2_CONF: confPath };
  const slots = execFileSync("softhsm2-util", ["--show-slots"], { env, encoding: "utf8" });
  const exists = existsSync(pinFile) && new RegExp(`Label:\\s+${escapeRegExp(label)}\\s*$`, "m").test(slots);
  if (exists) {
    readFileSync(pinFile); // fail early if the PIN file is unreadable
    return { confPath, module: SOFTHSM2_MODULE, label, pinFile, created: false };
  }
  const pin = randomBytes(12).toString("hex");
  const soPin = randomBytes(12).toString("hex");
  execFileSync(
    "softhsm2-util",
    ["--init-token", "--free", "--label", label, "--so-pin", soPin, "--pin", pin],
    { env, stdio: "ignore" },
  );
  writeFileSync(pinFile, pin, { mode: 0o600 });
  return { confPath, module: SOFTHSM2_MODULE, label, pinFile, created: true };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
