import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ConfigError, loadApiConfig, loadWorkerConfig, parseListen, workerThreadPoolSize } from "./index";

const errorOf = (fn: () => unknown): ConfigError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("expected a ConfigError");
};

describe("loadWorkerConfig", () => {
  it("uses the software root key when no module is set", () => {
    const c = loadWorkerConfig({ KMS_DATA_DIR: "/tmp/kms-x" });
    expect(c.pkcs11).toBeUndefined();
    expect(c.socketPath).toBe("/tmp/kms-x/run/hsm-worker.sock");
    expect(c.keyCacheSize).toBe(10000);
  });

  it("reads the PIN from a file without its newline", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cfg-"));
    writeFileSync(path.join(dir, "pin"), "1234\n");
    const c = loadWorkerConfig({ KMS_PKCS11_MODULE: "/lib/x.so", KMS_PKCS11_PIN_FILE: path.join(dir, "pin") });
    expect(c.pkcs11?.pin).toBe("1234");
    expect(c.pkcs11?.tokenLabel).toBe("kms");
    expect(c.pkcs11?.poolSize).toBe(8);
  });

  it("names the variable when the PIN is missing", () => {
    expect(errorOf(() => loadWorkerConfig({ KMS_PKCS11_MODULE: "/lib/x.so" })).variable).toBe("KMS_PKCS11_PIN");
  });

  it("names the variable of a bad number", () => {
    const e = errorOf(() => loadWorkerConfig({ KMS_PKCS11_MODULE: "/x", KMS_PKCS11_PIN: "1", KMS_PKCS11_POOL_SIZE: "eight" }));
    expect(e.message).toBe('KMS_PKCS11_POOL_SIZE: must be a whole number, got "eight"');
  });
});

describe("key generation limits and libuv's thread pool", () => {
  const hsm = { KMS_PKCS11_MODULE: "/lib/x.so", KMS_PKCS11_PIN: "1" };

  it("defaults to one generation at a time and a backlog of 8", () => {
    expect(loadWorkerConfig(hsm).keyGeneration).toEqual({ concurrency: 1, queue: 8 });
  });

  it("keeps generations below the session pool, so that one session is always left", () => {
    expect(loadWorkerConfig({ ...hsm, KMS_PKCS11_POOL_SIZE: "4", KMS_KEYGEN_CONCURRENCY: "8" }).keyGeneration.concurrency).toBe(3);
    expect(loadWorkerConfig({ ...hsm, KMS_PKCS11_POOL_SIZE: "1", KMS_KEYGEN_CONCURRENCY: "2" }).keyGeneration.concurrency).toBe(1);
    expect(loadWorkerConfig({ KMS_KEYGEN_CONCURRENCY: "3" }).keyGeneration.concurrency).toBe(3);
  });

  it("sizes the thread pool as sessions plus generations, keeping a larger value the operator set", () => {
    expect(workerThreadPoolSize(hsm)).toBe(9);
    expect(workerThreadPoolSize({ ...hsm, KMS_PKCS11_POOL_SIZE: "16", KMS_KEYGEN_CONCURRENCY: "2" })).toBe(18);
    expect(workerThreadPoolSize({ ...hsm, UV_THREADPOOL_SIZE: "4" })).toBe(9);
    expect(workerThreadPoolSize({ ...hsm, UV_THREADPOOL_SIZE: "32" })).toBe(32);
    expect(workerThreadPoolSize({ ...hsm, KMS_PKCS11_POOL_SIZE: "1024", KMS_KEYGEN_CONCURRENCY: "4" })).toBe(1024);
  });

  it("names a bad limit", () => {
    expect(errorOf(() => loadWorkerConfig({ KMS_KEYGEN_CONCURRENCY: "0" })).message).toBe("KMS_KEYGEN_CONCURRENCY: must be between 1 and 64, got 0");
    expect(errorOf(() => loadWorkerConfig({ KMS_KEYGEN_QUEUE: "-1" })).message).toBe('KMS_KEYGEN_QUEUE: must be a whole number, got "-1"');
  });
});

describe("loadApiConfig", () => {
  const base = { DATABASE_URL: "postgres://postgres@127.0.0.1:5432/kms" };

  it("defaults to loopback port 7300", () => {
    expect(loadApiConfig(base).listen).toEqual({ host: "127.0.0.1", port: 7300 });
  });

  it("reads the access lists", () => {
    const c = loadApiConfig({ ...base, KMS_ADMINS: "root, ops ", KMS_AUDITORS: "" });
    expect(c.access).toEqual({ admins: ["root", "ops"], creators: ["*"], auditors: [] });
  });

  it("names the JWT variables that are missing", () => {
    expect(errorOf(() => loadApiConfig({ ...base, KMS_JWT_JWKS_URL: "https://idp/jwks" })).variable).toBe("KMS_JWT_ISSUER");
    expect(errorOf(() => loadApiConfig({ ...base, KMS_JWT_JWKS_URL: "https://idp/jwks", KMS_JWT_ISSUER: "i" })).variable).toBe("KMS_JWT_AUDIENCE");
    expect(errorOf(() => loadApiConfig({ ...base, KMS_JWT_JWKS_FILE: "/nonexistent", KMS_JWT_ISSUER: "i", KMS_JWT_AUDIENCE: "a" })).variable).toBe("KMS_JWT_JWKS_FILE");
  });

  it("names an unreadable certificate", () => {
    expect(errorOf(() => loadApiConfig({ ...base, KMS_TLS_CERT: "/nonexistent.pem", KMS_TLS_KEY: "/nonexistent.key" })).variable).toBe("KMS_TLS_CERT");
    expect(errorOf(() => loadApiConfig({ ...base, KMS_TLS_CLIENT_CA: "/etc/hostname" })).variable).toBe("KMS_TLS_CLIENT_CA");
  });

  it("refuses plaintext on a non-loopback address", () => {
    expect(errorOf(() => loadApiConfig({ ...base, KMS_LISTEN: "0.0.0.0:7300" })).variable).toBe("KMS_LISTEN");
  });

  it("requires a postgres URL", () => {
    expect(errorOf(() => loadApiConfig({})).variable).toBe("DATABASE_URL");
    expect(errorOf(() => loadApiConfig({ DATABASE_URL: "mysql://x" })).variable).toBe("DATABASE_URL");
  });
});

describe("parseListen", () => {
  it("parses IPv6 in brackets", () => {
    expect(parseListen("[::1]:7300")).toEqual({ host: "::1", port: 7300 });
  });
  it("rejects a port out of range", () => {
    expect(errorOf(() => parseListen("127.0.0.1:70000")).variable).toBe("KMS_LISTEN");
  });
});
