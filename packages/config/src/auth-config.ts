// Who kms-api's callers are: TLS (with client certificates or not), a JWKS for bearer JWTs, the
// administrators, creators, auditors and alias prefixes, and the refusal of any set-up in which every
// caller would share one identity without being told so.
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { ConfigError, VARIABLES, raw } from "./variables";
import type { Env, VariableName } from "./variables";
import { boolean, isLoopback, readPem } from "./values";

export interface TlsConfig {
  cert: Buffer;
  key: Buffer;
  /** Present: clients must show a certificate signed by it (mutual TLS). */
  clientCa: Buffer | undefined;
}

export interface JwtConfig {
  jwks: { file: string; keys: { keys: object[] } } | { url: string };
  issuer: string;
  audience: string;
}

export interface AccessConfig {
  admins: string[];
  creators: string[];
  auditors: string[];
  /** KMS_ALIAS_PREFIXES: principal (or "*") → alias name prefixes it may manage. */
  aliasPrefixes: Record<string, string[]>;
}

/** KMS_TLS_CERT must be a PEM certificate and KMS_TLS_KEY its private key (kms-api's and its clients'). */
export function checkCertificateAndKey(cert: Buffer, key: Buffer): void {
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    throw new ConfigError("KMS_TLS_CERT", "is not a PEM certificate");
  }
  let matches: boolean;
  try {
    matches = certificate.checkPrivateKey(createPrivateKey(key));
  } catch {
    throw new ConfigError("KMS_TLS_KEY", "is not a PEM private key");
  }
  if (!matches) throw new ConfigError("KMS_TLS_KEY", "does not match the certificate in KMS_TLS_CERT");
}

export function tlsConfig(env: Env): TlsConfig | undefined {
  const cert = readPem(env, "KMS_TLS_CERT");
  const key = readPem(env, "KMS_TLS_KEY");
  const clientCa = readPem(env, "KMS_TLS_CLIENT_CA");
  if (!cert && !key) {
    if (clientCa) throw new ConfigError("KMS_TLS_CLIENT_CA", "needs KMS_TLS_CERT and KMS_TLS_KEY");
    return undefined;
  }
  if (!cert) throw new ConfigError("KMS_TLS_CERT", "is required with KMS_TLS_KEY");
  if (!key) throw new ConfigError("KMS_TLS_KEY", "is required with KMS_TLS_CERT");
  checkCertificateAndKey(cert, key);
  if (clientCa) {
    try {
      new X509Certificate(clientCa);
    } catch {
      throw new ConfigError("KMS_TLS_CLIENT_CA", "is not a PEM certificate bundle");
    }
  }
  return { cert, key, clientCa };
}

export function jwtConfig(env: Env): JwtConfig | undefined {
  const file = raw(env, "KMS_JWT_JWKS_FILE");
  const url = raw(env, "KMS_JWT_JWKS_URL");
  if (file === undefined && url === undefined) return undefined;
  if (file !== undefined && url !== undefined) throw new ConfigError("KMS_JWT_JWKS_URL", "set either KMS_JWT_JWKS_FILE or KMS_JWT_JWKS_URL, not both");
  const issuer = raw(env, "KMS_JWT_ISSUER");
  if (issuer === undefined) throw new ConfigError("KMS_JWT_ISSUER", "is required with a JWKS");
  const audience = raw(env, "KMS_JWT_AUDIENCE");
  if (audience === undefined) throw new ConfigError("KMS_JWT_AUDIENCE", "is required with a JWKS");
  if (url !== undefined) {
    // Keys fetched in clear text from another host could be swapped on the way: anyone could mint tokens.
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      parsed = undefined;
    }
    const loopbackHttp = parsed?.protocol === "http:" && isLoopback(parsed.hostname.replace(/^\[(.*)\]$/, "$1"));
    if (parsed?.protocol !== "https:" && !loopbackHttp) {
      throw new ConfigError("KMS_JWT_JWKS_URL", `must be an https URL (http only on a loopback host), got ${JSON.stringify(url)}`);
    }
    return { jwks: { url }, issuer, audience };
  }
  let keys: unknown;
  try {
    keys = JSON.parse(readFileSync(file!, "utf8"));
  } catch (err) {
    throw new ConfigError("KMS_JWT_JWKS_FILE", `cannot read a JSON JWKS from ${file} (${(err as NodeJS.ErrnoException).code ?? "invalid JSON"})`);
  }
  const list = (keys as { keys?: unknown }).keys;
  if (!Array.isArray(list) || list.length === 0) throw new ConfigError("KMS_JWT_JWKS_FILE", "must hold {\"keys\": [...]} with at least one key");
  return { jwks: { file: file!, keys: { keys: list as object[] } }, issuer, audience };
}

export function principals(env: Env, name: VariableName): string[] {
  return (raw(env, name) ?? VARIABLES[name].default).split(",").map((p) => p.trim()).filter((p) => p !== "");
}

const ALIAS_PREFIX = /^alias\/[a-zA-Z0-9:/_-]*$/;

/** `principal=alias/a/,alias/b/;other=alias/c/`: split at each entry's last "=" (prefixes have none). */
export function aliasPrefixes(env: Env): Record<string, string[]> {
  const result: Record<string, string[]> = {};
  for (const entry of (raw(env, "KMS_ALIAS_PREFIXES") ?? "").split(";").map((e) => e.trim()).filter((e) => e !== "")) {
    const at = entry.lastIndexOf("=");
    const principal = entry.slice(0, Math.max(at, 0)).trim();
    const prefixes = entry.slice(at + 1).split(",").map((p) => p.trim()).filter((p) => p !== "");
    if (at <= 0 || principal === "" || prefixes.length === 0) {
      throw new ConfigError("KMS_ALIAS_PREFIXES", `entry ${JSON.stringify(entry)} must be principal=alias/prefix[,alias/prefix]`);
    }
    for (const p of prefixes) {
      if (!ALIAS_PREFIX.test(p)) throw new ConfigError("KMS_ALIAS_PREFIXES", `prefix ${JSON.stringify(p)} must be "alias/" followed by [a-zA-Z0-9:/_-]`);
    }
    result[principal] = [...(result[principal] ?? []), ...prefixes];
  }
  return result;
}

function anonymousPrincipal(env: Env): string | undefined {
  const name = raw(env, "KMS_ANONYMOUS_PRINCIPAL");
  if (name === undefined) return undefined;
  // It appears in access lists (comma-separated), policies ("*" is everyone) and audit rows (Postgres text).
  if (name === "*" || /[,\s\u0000-\u001f]/.test(name) || !name.isWellFormed() || name.length > 256) {
    throw new ConfigError("KMS_ANONYMOUS_PRINCIPAL", `must be a principal name (no "*", commas, spaces or control characters; at most 256), got ${JSON.stringify(name)}`);
  }
  return name;
}

/**
 * Who a caller is must come from something it shows (a client certificate or a bearer JWT). Without
 * either, every caller shares one principal, so that is refused unless explicitly asked for: a TLS
 * listener names the shared principal in KMS_ANONYMOUS_PRINCIPAL, plaintext dev mode (every caller the
 * administrator "dev") needs KMS_INSECURE_DEV_MODE=true, because in a pod loopback is shared with
 * sidecars and proxies.
 */
export function callerAuthentication(env: Env, tls: TlsConfig | undefined, jwt: JwtConfig | undefined, access: AccessConfig) {
  const anonymous = anonymousPrincipal(env);
  const insecureDevMode = boolean(env, "KMS_INSECURE_DEV_MODE", false);
  const authenticated = tls?.clientCa !== undefined || jwt !== undefined;
  if (authenticated) {
    if (anonymous !== undefined) throw new ConfigError("KMS_ANONYMOUS_PRINCIPAL", "callers authenticate (KMS_TLS_CLIENT_CA or a JWKS is set): unset it");
    return { devMode: false, anonymousPrincipal: undefined };
  }
  if (!tls) {
    if (anonymous !== undefined) throw new ConfigError("KMS_ANONYMOUS_PRINCIPAL", "is for a TLS listener (KMS_TLS_CERT, KMS_TLS_KEY); plaintext dev mode is KMS_INSECURE_DEV_MODE");
    if (!insecureDevMode) {
      throw new ConfigError(
        "KMS_INSECURE_DEV_MODE",
        'plaintext without a JWKS makes every caller on loopback (in a pod: every sidecar and proxy) the administrator "dev"; ' +
          "set KMS_INSECURE_DEV_MODE=true for a local dev stack, else KMS_TLS_CERT and KMS_TLS_KEY with KMS_TLS_CLIENT_CA, or a JWKS (KMS_JWT_JWKS_FILE or KMS_JWT_JWKS_URL)",
      );
    }
    return { devMode: true, anonymousPrincipal: undefined };
  }
  if (anonymous === undefined) {
    throw new ConfigError(
      "KMS_TLS_CLIENT_CA",
      "a TLS listener needs client authentication: set KMS_TLS_CLIENT_CA or a JWKS (KMS_JWT_JWKS_FILE or KMS_JWT_JWKS_URL), " +
        "or name the one principal every caller then shares in KMS_ANONYMOUS_PRINCIPAL",
    );
  }
  for (const list of ["KMS_ADMINS", "KMS_AUDITORS"] as const) {
    const names = list === "KMS_ADMINS" ? access.admins : access.auditors;
    if (names.includes(anonymous) || names.includes("*")) {
      throw new ConfigError(list, `must not include KMS_ANONYMOUS_PRINCIPAL (${anonymous}) or "*": every caller would be one`);
    }
  }
  return { devMode: false, anonymousPrincipal: anonymous };
}

/**
 * With KMS_REQUIRE_DATABASE_TLS=true, the URL must ask for verified TLS: postgres.js reads the last
 * `sslmode` of the query string, and only verify-full checks both the certificate and the host name
 * (require, prefer and allow accept any certificate; disable and no sslmode send everything in clear).
 */
export function checkDatabaseTls(env: Env, databaseUrl: string): void {
  if (!boolean(env, "KMS_REQUIRE_DATABASE_TLS", false)) return;
  const query = databaseUrl.includes("?") ? databaseUrl.slice(databaseUrl.indexOf("?") + 1).split("#")[0]! : "";
  const sslmode = new URLSearchParams(query).getAll("sslmode").at(-1);
  if (sslmode !== "verify-full") {
    throw new ConfigError(
      "DATABASE_URL",
      `must set sslmode=verify-full when KMS_REQUIRE_DATABASE_TLS=true (it has ${sslmode === undefined ? "no sslmode" : `sslmode=${sslmode}`})`,
    );
  }
}
