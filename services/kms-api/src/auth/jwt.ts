// Bearer JWTs (e.g. Kubernetes projected service-account tokens) verified with jose against a JWKS
// from a file or a URL, with the configured issuer and audience. jose 5 is used for its CommonJS build.
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify } from "jose";
import type { JSONWebKeySet } from "jose";
import { ConfigError } from "@kms/config";
import type { JwtConfig } from "@kms/config";
import { ErrorCode, KmsError } from "@kms/errors";
import { isReservedPrincipal } from "./principals";

export interface JwtVerifier {
  /** The token's `sub`; UNAUTHENTICATED for anything wrong (signature, iss, aud, no exp, exp, nbf, no sub, a cn: or kms: sub). */
  verify(token: string): Promise<string>;
}

/**
 * Tokens already verified, so that a client reusing its token (the usual case: a Kubernetes projected
 * token lives an hour) costs one signature check a minute instead of one per call. An entry lives until
 * the token expires or VERIFIED_TTL_MS passes, whichever is first, so a key removed from the JWKS stops
 * being honoured within a minute. Only successes are kept; bounded, oldest first out.
 */
const VERIFIED_TTL_MS = 60_000;
const MAX_VERIFIED = 10_000;

const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

/** Builds the verifier; a JWKS that cannot be loaded or used stops start-up naming the variable. */
export async function createJwtVerifier(config: JwtConfig): Promise<JwtVerifier> {
  let keys: ReturnType<typeof createLocalJWKSet> | ReturnType<typeof createRemoteJWKSet>;
  if ("url" in config.jwks) {
    const remote = createRemoteJWKSet(new URL(config.jwks.url), { cooldownDuration: 30_000, cacheMaxAge: 600_000 });
    try {
      await remote.reload();
    } catch (err) {
      throw new ConfigError("KMS_JWT_JWKS_URL", `cannot load a JWKS from ${config.jwks.url} (${(err as Error).message})`);
    }
    keys = remote;
  } else {
    try {
      keys = createLocalJWKSet(config.jwks.keys as JSONWebKeySet);
    } catch (err) {
      throw new ConfigError("KMS_JWT_JWKS_FILE", `is not a usable JWKS (${(err as Error).message})`);
    }
  }
  const verified = new Map<string, { sub: string; until: number }>();
  return {
    async verify(token: string): Promise<string> {
      const known = verified.get(token);
      if (known !== undefined && Date.now() < known.until) return known.sub;
      try {
        // A token without exp would be a credential for ever; without sub it names nobody.
        const { payload } = await jwtVerify(token, keys, { issuer: config.issuer, audience: config.audience, algorithms: ALGORITHMS, requiredClaims: ["exp", "sub"] });
        // U+0000 and lone surrogates cannot be stored (the audit trail is Postgres text); "cn:" names
        // principals taken from a certificate's CN, which a token must not impersonate.
        const sub = payload.sub;
        if (typeof sub !== "string" || sub === "" || sub.includes("\u0000") || !sub.isWellFormed() || isReservedPrincipal(sub)) throw new Error("no usable sub");
        if (typeof payload.exp !== "number") throw new Error("no exp");
        if (verified.size >= MAX_VERIFIED) verified.delete(verified.keys().next().value as string);
        verified.set(token, { sub, until: Math.min(payload.exp * 1000, Date.now() + VERIFIED_TTL_MS) });
        return sub;
      } catch {
        // One message whatever failed: the reason goes nowhere the caller can probe.
        throw new KmsError(ErrorCode.Unauthenticated, "bearer token is not valid for this service");
      }
    },
  };
}
