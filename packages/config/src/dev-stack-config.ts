// The dev stack's configuration (`npm start`).
import { raw } from "./variables";
import type { Env } from "./variables";
import { dataDir } from "./values";

export interface DevStackConfig {
  dataDir: string;
  databaseUrl: string | undefined;
  pkcs11Module: string | undefined;
}

/** Where Debian's softhsm2 package puts its module. */
export const SOFTHSM2_MODULE = "/usr/lib/softhsm/libsofthsm2.so";

export function loadDevStackConfig(env: Env = process.env): DevStackConfig {
  return {
    dataDir: dataDir(env),
    databaseUrl: raw(env, "DATABASE_URL"),
    pkcs11Module: raw(env, "KMS_PKCS11_MODULE"),
  };
}
