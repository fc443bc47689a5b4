import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadPluginConfig } from "./config";

const dir = mkdtempSync(path.join(os.tmpdir(), "kube-kms-plugin-config-"));
function openssl(args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
}
openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=ca", "-days", "1"]);
openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "plugin.key", "-out", "plugin.pem", "-subj", "/CN=plugin", "-days", "1"]);
const file = (name: string) => path.join(dir, name);
writeFileSync(file("token"), "eyJhbGciOi.x.y\n");
writeFileSync(file("empty"), "\n");

const base = { KMS_PLUGIN_LISTEN: "unix:///run/kmsplugin/kms.sock", KMS_PLUGIN_KEY_ID: "alias/k8s/prod", KMS_PLUGIN_CLUSTER: "prod-1" };
const refusal = (env: Record<string, string>) => {
  try {
    loadPluginConfig(env);
  } catch (err) {
    return (err as Error).message;
  }
  return "accepted";
};

describe("loadPluginConfig", () => {
  it("reads a plaintext dev setting: loopback kms-api, defaults", () => {
    expect(loadPluginConfig(base)).toEqual({
      socketPath: "/run/kmsplugin/kms.sock",
      keyId: "alias/k8s/prod",
      cluster: "prod-1",
      kmsAddress: "127.0.0.1:7300",
      tls: undefined,
      logLevel: "info",
    });
  });

  it("reads mutual TLS and a token file", () => {
    const config = loadPluginConfig({ ...base, KMS_ADDR: "kms.example.org:443", KMS_TLS_CA: file("ca.pem"), KMS_TLS_CERT: file("plugin.pem"), KMS_TLS_KEY: file("plugin.key"), KMS_JWT_TOKEN_FILE: file("token") });
    expect(config.kmsAddress).toBe("kms.example.org:443");
    expect([config.tls?.ca.length! > 0, config.tls?.cert?.length! > 0, config.tls?.key?.length! > 0, config.tls?.tokenFile]).toEqual([true, true, true, file("token")]);
  });

  it.each([
    [{ KMS_PLUGIN_LISTEN: "" }, "KMS_PLUGIN_LISTEN: is required"],
    [{ KMS_PLUGIN_LISTEN: "/run/kms.sock" }, 'KMS_PLUGIN_LISTEN: must be unix:///absolute/path/to/socket, got "/run/kms.sock"'],
    [{ KMS_PLUGIN_LISTEN: "unix://relative.sock" }, 'KMS_PLUGIN_LISTEN: must be unix:///absolute/path/to/socket, got "unix://relative.sock"'],
    [{ KMS_PLUGIN_LISTEN: "unix:///kms.sock" }, "KMS_PLUGIN_LISTEN: the socket needs a directory of its own (it is made 0700), not /"],
    [{ KMS_PLUGIN_KEY_ID: "" }, "KMS_PLUGIN_KEY_ID: is required"],
    [{ KMS_PLUGIN_KEY_ID: "my-key" }, 'KMS_PLUGIN_KEY_ID: must be a key id (UUID) or alias/<name>, got "my-key"'],
    [{ KMS_PLUGIN_CLUSTER: "" }, "KMS_PLUGIN_CLUSTER: is required"],
    [{ KMS_PLUGIN_CLUSTER: "a cluster" }, 'KMS_PLUGIN_CLUSTER: must be 1 to 253 letters, digits, ".", "_" or "-" (starting and ending with a letter or digit), got "a cluster"'],
    [{ KMS_ADDR: "kms:7300" }, "KMS_ADDR: plaintext reaches a loopback kms-api only, got kms; set KMS_TLS_CA (and KMS_TLS_CERT, KMS_TLS_KEY or KMS_JWT_TOKEN_FILE)"],
    [{ KMS_ADDR: "7300" }, 'KMS_ADDR: must be host:port, got "7300"'],
    [{ KMS_TLS_CERT: file("plugin.pem"), KMS_TLS_KEY: file("plugin.key") }, "KMS_TLS_CERT: needs KMS_TLS_CA (TLS to kms-api)"],
    [{ KMS_JWT_TOKEN_FILE: file("token") }, "KMS_JWT_TOKEN_FILE: needs KMS_TLS_CA (TLS to kms-api)"],
    [{ KMS_TLS_CA: file("missing.pem") }, `KMS_TLS_CA: cannot read ${file("missing.pem")} (ENOENT)`],
    [{ KMS_TLS_CA: file("token") }, "KMS_TLS_CA: is not a PEM certificate bundle"],
    [{ KMS_TLS_CA: file("ca.pem") }, "KMS_TLS_CERT: the plugin calls kms-api as its own principal: set KMS_TLS_CERT and KMS_TLS_KEY (mutual TLS) or KMS_JWT_TOKEN_FILE"],
    [{ KMS_TLS_CA: file("ca.pem"), KMS_TLS_CERT: file("plugin.pem") }, "KMS_TLS_KEY: is required with KMS_TLS_CERT"],
    [{ KMS_TLS_CA: file("ca.pem"), KMS_TLS_CERT: file("plugin.pem"), KMS_TLS_KEY: file("ca.key") }, "KMS_TLS_KEY: does not match the certificate in KMS_TLS_CERT"],
    [{ KMS_TLS_CA: file("ca.pem"), KMS_JWT_TOKEN_FILE: file("empty") }, `KMS_JWT_TOKEN_FILE: ${file("empty")} is empty`],
    [{ KMS_LOG_LEVEL: "loud" }, 'KMS_LOG_LEVEL: must be error, warn, info or debug, got "loud"'],
  ])("refuses %j naming the variable", (change, message) => {
    expect(refusal({ ...base, ...change })).toBe(message);
  });
});
