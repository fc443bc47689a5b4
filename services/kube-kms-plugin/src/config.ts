// The plugin's configuration, read once at start-up; a bad value stops it with a message naming the
// variable (ConfigError). The variables are registered in @kms/config's VARIABLES with the services'.
import path from "node:path";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError, checkCertificateAndKey, isLoopback, logLevel, parseListen, raw, readPem } from "@kms/config";
import type { Env, LogLevel } from "@kms/config";
import type { ClientTls } from "@kms/client";

export interface PluginConfig {
  /** Absolute path of the Unix socket kube-apiserver calls. */
  socketPath: string;
  /** The CMK: a key id or "alias/<name>". */
  keyId: string;
  /** KMS_PLUGIN_CLUSTER: bound into every ciphertext's encryption context. */
  cluster: string;
  /** kms-api's host:port. */
  kmsAddress: string;
  /** Absent: plaintext, to a loopback kms-api only. */
  tls: ClientTls | undefined;
  logLevel: LogLevel;
}

const KEY_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ALIAS = /^alias\/[a-zA-Z0-9:/_-]{1,250}$/;
// A cluster name goes into the encryption context and the policy conditions that test it.
const CLUSTER = /^[a-zA-Z0-9]([a-zA-Z0-9._-]{0,251}[a-zA-Z0-9])?$/;

function required(env: Env, name: "KMS_PLUGIN_LISTEN" | "KMS_PLUGIN_KEY_ID" | "KMS_PLUGIN_CLUSTER"): string {
  const value = raw(env, name);
  if (value === undefined) throw new ConfigError(name, "is required");
  return value;
}

function socketPath(env: Env): string {
  const value = required(env, "KMS_PLUGIN_LISTEN");
  const m = /^unix:\/\/(\/.+)$/.exec(value);
  if (!m || m[1]!.endsWith("/")) throw new ConfigError("KMS_PLUGIN_LISTEN", `must be unix:///absolute/path/to/socket, got ${JSON.stringify(value)}`);
  const file = path.normalize(m[1]!);
  if (path.dirname(file) === "/") throw new ConfigError("KMS_PLUGIN_LISTEN", "the socket needs a directory of its own (it is made 0700), not /");
  return file;
}

function keyId(env: Env): string {
  const value = required(env, "KMS_PLUGIN_KEY_ID");
  if (!KEY_UUID.test(value) && !ALIAS.test(value)) throw new ConfigError("KMS_PLUGIN_KEY_ID", `must be a key id (UUID) or alias/<name>, got ${JSON.stringify(value)}`);
  return value;
}

function cluster(env: Env): string {
  const value = required(env, "KMS_PLUGIN_CLUSTER");
  if (!CLUSTER.test(value)) throw new ConfigError("KMS_PLUGIN_CLUSTER", `must be 1 to 253 letters, digits, ".", "_" or "-" (starting and ending with a letter or digit), got ${JSON.stringify(value)}`);
  return value;
}

function clientTls(env: Env): ClientTls | undefined {
  const ca = readPem(env, "KMS_TLS_CA");
  const cert = readPem(env, "KMS_TLS_CERT");
  const key = readPem(env, "KMS_TLS_KEY");
  const tokenFile = raw(env, "KMS_JWT_TOKEN_FILE");
  if (!ca) {
    for (const name of ["KMS_TLS_CERT", "KMS_TLS_KEY", "KMS_JWT_TOKEN_FILE"] as const) {
      if (raw(env, name) !== undefined) throw new ConfigError(name, "needs KMS_TLS_CA (TLS to kms-api)");
    }
    return undefined;
  }
  try {
    new X509Certificate(ca);
  } catch {
    throw new ConfigError("KMS_TLS_CA", "is not a PEM certificate bundle");
  }
  if (cert && !key) throw new ConfigError("KMS_TLS_KEY", "is required with KMS_TLS_CERT");
  if (key && !cert) throw new ConfigError("KMS_TLS_CERT", "is required with KMS_TLS_KEY");
  if (cert && key) checkCertificateAndKey(cert, key);
  if (tokenFile !== undefined) {
    let token: string;
    try {
      token = readFileSync(tokenFile, "utf8").trim();
    } catch (err) {
      throw new ConfigError("KMS_JWT_TOKEN_FILE", `cannot read ${tokenFile} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
    if (token === "") throw new ConfigError("KMS_JWT_TOKEN_FILE", `${tokenFile} is empty`);
  }
  if (!cert && tokenFile === undefined) {
    throw new ConfigError("KMS_TLS_CERT", "the plugin calls kms-api as its own principal: set KMS_TLS_CERT and KMS_TLS_KEY (mutual TLS) or KMS_JWT_TOKEN_FILE");
  }
  return { ca, ...(cert && key ? { cert, key } : {}), ...(tokenFile !== undefined ? { tokenFile } : {}) };
}

export function loadPluginConfig(env: Env = process.env): PluginConfig {
  const kmsAddress = raw(env, "KMS_ADDR") ?? "127.0.0.1:7300";
  const { host } = parseListen(kmsAddress, "KMS_ADDR");
  const tls = clientTls(env);
  if (!tls && !isLoopback(host)) {
    // Seeds in clear text over a network: never. Plaintext is for a dev stack on this machine.
    throw new ConfigError("KMS_ADDR", `plaintext reaches a loopback kms-api only, got ${host}; set KMS_TLS_CA (and KMS_TLS_CERT, KMS_TLS_KEY or KMS_JWT_TOKEN_FILE)`);
  }
  return { socketPath: socketPath(env), keyId: keyId(env), cluster: cluster(env), kmsAddress, tls, logLevel: logLevel(env) };
}
