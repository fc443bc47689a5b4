import { execFileSync } from "node:child_process";
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
  it("has no PKCS#11 settings when no module is set", () => {
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

  it("takes the software root key only with KMS_ALLOW_SOFTWARE_ROOT=true (the worker refuses otherwise)", () => {
    expect(loadWorkerConfig({}).allowSoftwareRoot).toBe(false);
    expect(loadWorkerConfig({ KMS_ALLOW_SOFTWARE_ROOT: "true" }).allowSoftwareRoot).toBe(true);
    expect(errorOf(() => loadWorkerConfig({ KMS_ALLOW_SOFTWARE_ROOT: "yes" })).message).toBe('KMS_ALLOW_SOFTWARE_ROOT: must be true or false, got "yes"');
  });

  it("takes a source root file only beside a PKCS#11 module (it is moved onto the token)", () => {
    const c = loadWorkerConfig({ KMS_PKCS11_MODULE: "/lib/x.so", KMS_PKCS11_PIN: "1", KMS_SOURCE_ROOT_KEY_FILE: "/data/root-key" });
    expect(c.pkcs11?.sourceRootKeyFile).toBe("/data/root-key");
    expect(loadWorkerConfig({ KMS_PKCS11_MODULE: "/lib/x.so", KMS_PKCS11_PIN: "1" }).pkcs11?.sourceRootKeyFile).toBeUndefined();
    const err = errorOf(() => loadWorkerConfig({ KMS_ALLOW_SOFTWARE_ROOT: "true", KMS_SOURCE_ROOT_KEY_FILE: "/data/root-key" }));
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/^KMS_SOURCE_ROOT_KEY_FILE: needs KMS_PKCS11_MODULE/);
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
  // Plaintext loopback needs the dev-mode switch (see "caller authentication" below).
  const base = { DATABASE_URL: "postgres://postgres@127.0.0.1:5432/kms", KMS_INSECURE_DEV_MODE: "true" };

  it("defaults to loopback port 7300", () => {
    expect(loadApiConfig(base).listen).toEqual({ host: "127.0.0.1", port: 7300 });
  });

  it("with KMS_REQUIRE_DATABASE_TLS=true accepts only sslmode=verify-full (the last sslmode counts, as in postgres.js)", () => {
    const tls = { KMS_REQUIRE_DATABASE_TLS: "true", KMS_INSECURE_DEV_MODE: "true" };
    const url = "postgres://kms:pw@db.example.com:5432/kms";
    expect(loadApiConfig({ ...tls, DATABASE_URL: `${url}?sslmode=verify-full` }).databaseUrl).toBe(`${url}?sslmode=verify-full`);
    expect(loadApiConfig({ ...tls, DATABASE_URL: `${url}?sslmode=disable&sslmode=verify-full` }).databaseUrl).toContain("verify-full");
    const refused = (query: string) => errorOf(() => loadApiConfig({ ...tls, DATABASE_URL: `${url}${query}` })).message;
    expect(refused("")).toBe("DATABASE_URL: must set sslmode=verify-full when KMS_REQUIRE_DATABASE_TLS=true (it has no sslmode)");
    expect(refused("?sslmode=verify-ca")).toBe("DATABASE_URL: must set sslmode=verify-full when KMS_REQUIRE_DATABASE_TLS=true (it has sslmode=verify-ca)");
    expect(refused("?sslmode=verify-full&sslmode=require")).toBe("DATABASE_URL: must set sslmode=verify-full when KMS_REQUIRE_DATABASE_TLS=true (it has sslmode=require)");
    expect(refused("?application_name=x#sslmode=verify-full")).toBe("DATABASE_URL: must set sslmode=verify-full when KMS_REQUIRE_DATABASE_TLS=true (it has no sslmode)");
    // Off (the default): any postgres:// URL, as before.
    expect(loadApiConfig({ KMS_INSECURE_DEV_MODE: "true", DATABASE_URL: url }).databaseUrl).toBe(url);
  });

  it("reads the access lists", () => {
    const c = loadApiConfig({ ...base, KMS_ADMINS: "root, ops ", KMS_AUDITORS: "" });
    // aliasPrefixes is new (KMS_ALIAS_PREFIXES); unset it grants no alias names to anyone but KMS_ADMINS.
    expect(c.access).toEqual({ admins: ["root", "ops"], creators: ["*"], auditors: [], aliasPrefixes: {} });
  });

  it("reads the alias name prefixes per principal, and names a malformed entry", () => {
    const c = loadApiConfig({ ...base, KMS_ALIAS_PREFIXES: " spiffe://ex.org/ns/pay/sa/web=alias/pay/, alias/shared/pay- ; *=alias/tmp/;bob=alias/bob/" });
    expect(c.access.aliasPrefixes).toEqual({
      "spiffe://ex.org/ns/pay/sa/web": ["alias/pay/", "alias/shared/pay-"],
      "*": ["alias/tmp/"],
      bob: ["alias/bob/"],
    });
    expect(errorOf(() => loadApiConfig({ ...base, KMS_ALIAS_PREFIXES: "bob" })).message).toBe(
      'KMS_ALIAS_PREFIXES: entry "bob" must be principal=alias/prefix[,alias/prefix]',
    );
    expect(errorOf(() => loadApiConfig({ ...base, KMS_ALIAS_PREFIXES: "bob=pay/" })).message).toBe(
      'KMS_ALIAS_PREFIXES: prefix "pay/" must be "alias/" followed by [a-zA-Z0-9:/_-]',
    );
  });

  it("bounds every database statement (KMS_DB_STATEMENT_TIMEOUT_MS)", () => {
    expect(loadApiConfig(base).dbStatementTimeoutMs).toBe(5000);
    expect(loadApiConfig({ ...base, KMS_DB_STATEMENT_TIMEOUT_MS: "250" }).dbStatementTimeoutMs).toBe(250);
    expect(errorOf(() => loadApiConfig({ ...base, KMS_DB_STATEMENT_TIMEOUT_MS: "0" })).variable).toBe("KMS_DB_STATEMENT_TIMEOUT_MS");
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

describe("loadApiConfig: caller authentication", () => {
  const db = { DATABASE_URL: "postgres://postgres@127.0.0.1:5432/kms" };
  const dir = mkdtempSync(path.join(os.tmpdir(), "cfg-tls-"));
  // Any PEM certificate and its key will do: the checks here are about which settings go together.
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "k.pem", "-out", "c.pem", "-subj", "/CN=t", "-days", "1"], { cwd: dir, stdio: "ignore" });
  const tls = { ...db, KMS_TLS_CERT: path.join(dir, "c.pem"), KMS_TLS_KEY: path.join(dir, "k.pem") };
  const jwks = path.join(dir, "jwks.json");
  writeFileSync(jwks, JSON.stringify({ keys: [{ kty: "oct", k: "AA" }] }));
  const jwt = { KMS_JWT_JWKS_FILE: jwks, KMS_JWT_ISSUER: "i", KMS_JWT_AUDIENCE: "a" };

  it("refuses plaintext without a JWKS unless KMS_INSECURE_DEV_MODE=true, naming the ways out", () => {
    expect(errorOf(() => loadApiConfig(db)).message).toBe(
      'KMS_INSECURE_DEV_MODE: plaintext without a JWKS makes every caller on loopback (in a pod: every sidecar and proxy) the administrator "dev"; ' +
        "set KMS_INSECURE_DEV_MODE=true for a local dev stack, else KMS_TLS_CERT and KMS_TLS_KEY with KMS_TLS_CLIENT_CA, or a JWKS (KMS_JWT_JWKS_FILE or KMS_JWT_JWKS_URL)",
    );
    expect(errorOf(() => loadApiConfig({ ...db, KMS_INSECURE_DEV_MODE: "yes" })).message).toBe('KMS_INSECURE_DEV_MODE: must be true or false, got "yes"');
    const dev = loadApiConfig({ ...db, KMS_INSECURE_DEV_MODE: "true" });
    expect([dev.devMode, dev.anonymousPrincipal]).toEqual([true, undefined]);
  });

  it("allows plaintext loopback with a JWKS, where every caller shows a token, and then is not dev mode", () => {
    expect(loadApiConfig({ ...db, ...jwt }).devMode).toBe(false);
    expect(loadApiConfig({ ...db, ...jwt, KMS_INSECURE_DEV_MODE: "true" }).devMode).toBe(false);
  });

  it("refuses TLS without client authentication unless KMS_ANONYMOUS_PRINCIPAL names the shared principal", () => {
    expect(errorOf(() => loadApiConfig(tls)).message).toBe(
      "KMS_TLS_CLIENT_CA: a TLS listener needs client authentication: set KMS_TLS_CLIENT_CA or a JWKS (KMS_JWT_JWKS_FILE or KMS_JWT_JWKS_URL), " +
        "or name the one principal every caller then shares in KMS_ANONYMOUS_PRINCIPAL",
    );
    // The dev-mode switch does not make a TLS listener anonymous.
    expect(errorOf(() => loadApiConfig({ ...tls, KMS_INSECURE_DEV_MODE: "true" })).variable).toBe("KMS_TLS_CLIENT_CA");
    const anon = loadApiConfig({ ...tls, KMS_ANONYMOUS_PRINCIPAL: "anyone-with-tls" });
    expect([anon.devMode, anon.anonymousPrincipal]).toEqual([false, "anyone-with-tls"]);
    expect(loadApiConfig({ ...tls, ...jwt }).anonymousPrincipal).toBeUndefined();
  });

  it("refuses an anonymous principal that is an admin or auditor, or where it would never apply", () => {
    const anon = { ...tls, KMS_ANONYMOUS_PRINCIPAL: "anyone" };
    expect(errorOf(() => loadApiConfig({ ...anon, KMS_ADMINS: "root,anyone" })).message).toBe('KMS_ADMINS: must not include KMS_ANONYMOUS_PRINCIPAL (anyone) or "*": every caller would be one');
    expect(errorOf(() => loadApiConfig({ ...anon, KMS_AUDITORS: "*" })).variable).toBe("KMS_AUDITORS");
    expect(errorOf(() => loadApiConfig({ ...tls, ...jwt, KMS_ANONYMOUS_PRINCIPAL: "anyone" })).message).toBe(
      "KMS_ANONYMOUS_PRINCIPAL: callers authenticate (KMS_TLS_CLIENT_CA or a JWKS is set): unset it",
    );
    expect(errorOf(() => loadApiConfig({ ...db, KMS_INSECURE_DEV_MODE: "true", KMS_ANONYMOUS_PRINCIPAL: "anyone" })).variable).toBe("KMS_ANONYMOUS_PRINCIPAL");
    for (const bad of ["*", "a,b", "a b", "a\u0000"]) {
      expect(errorOf(() => loadApiConfig({ ...tls, KMS_ANONYMOUS_PRINCIPAL: bad })).variable).toBe("KMS_ANONYMOUS_PRINCIPAL");
    }
  });

  it("takes a JWKS URL over https only, or http on a loopback host", () => {
    const url = (u: string) => loadApiConfig({ ...db, ...jwt, KMS_JWT_JWKS_FILE: undefined, KMS_JWT_JWKS_URL: u }).jwt?.jwks;
    expect(url("https://idp.example/jwks")).toEqual({ url: "https://idp.example/jwks" });
    for (const ok of ["http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]:9/jwks"]) expect(url(ok)).toEqual({ url: ok });
    for (const bad of ["http://idp.example/jwks", "http://192.0.2.1/jwks", "http://127.0.0.1.example/jwks", "ftp://idp/jwks", "idp/jwks"]) {
      expect(errorOf(() => url(bad)).message).toBe(`KMS_JWT_JWKS_URL: must be an https URL (http only on a loopback host), got ${JSON.stringify(bad)}`);
    }
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

describe("the AWS-compatible listener (KMS_AWS_*)", () => {
  const dev = { DATABASE_URL: "postgres://x/y", KMS_INSECURE_DEV_MODE: "true" };

  it("is off unless KMS_AWS_LISTEN is set; then needs the access keys file", () => {
    expect(loadApiConfig(dev).aws).toBeUndefined();
    expect(errorOf(() => loadApiConfig({ ...dev, KMS_AWS_LISTEN: "127.0.0.1:7301" })).variable).toBe("KMS_AWS_ACCESS_KEYS_FILE");
    expect(loadApiConfig({ ...dev, KMS_AWS_LISTEN: "127.0.0.1:7301", KMS_AWS_ACCESS_KEYS_FILE: "/etc/kms/aws-keys" }).aws).toEqual({
      listen: { host: "127.0.0.1", port: 7301 },
      region: "us-east-1",
      accountId: "000000000000",
      accessKeysFile: "/etc/kms/aws-keys",
    });
  });

  it("serves plaintext only on loopback in dev mode", () => {
    const keys = { KMS_AWS_ACCESS_KEYS_FILE: "/k" };
    expect(errorOf(() => loadApiConfig({ ...dev, ...keys, KMS_AWS_LISTEN: "0.0.0.0:7301" })).variable).toBe("KMS_AWS_LISTEN");
    expect(errorOf(() => loadApiConfig({ ...dev, ...keys, KMS_INSECURE_DEV_MODE: "false", KMS_AWS_LISTEN: "127.0.0.1:7301" })).message).toContain(
      "only on loopback with KMS_INSECURE_DEV_MODE=true",
    );
  });

  it("checks the region and the 12-digit account id of the ARNs", () => {
    const on = { ...dev, KMS_AWS_LISTEN: "127.0.0.1:0", KMS_AWS_ACCESS_KEYS_FILE: "/k" };
    expect(loadApiConfig({ ...on, KMS_AWS_REGION: "eu-central-1", KMS_AWS_ACCOUNT_ID: "123456789012" }).aws).toMatchObject({ region: "eu-central-1", accountId: "123456789012" });
    expect(errorOf(() => loadApiConfig({ ...on, KMS_AWS_REGION: "Europe" })).variable).toBe("KMS_AWS_REGION");
    expect(errorOf(() => loadApiConfig({ ...on, KMS_AWS_ACCOUNT_ID: "1234" })).variable).toBe("KMS_AWS_ACCOUNT_ID");
  });
});
