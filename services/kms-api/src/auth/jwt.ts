// Bearer JWTs (e.g. Kubernetes projected service-account tokens) verified with jose against a JWKS
// from a file or a URL, with the configured issuer and audience. jose 5 is used for its CommonJS build.
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify } from "jose";
import type { JSONWebKeySet } from "jose";
import { status } from "@grpc/grpc-js";
import { ConfigError } from "@kms/config";
import type { JwtConfig } from "@kms/config";
import { ErrorCode, KmsError } from "@kms/errors";

export interface JwtVerifier {
  /** The token's `sub`; UNAUTHENTICATED for anything wrong (signature, iss, aud, exp, nbf, no sub). */
  verify(token: string): Promise<string>;
}

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
  return {
    async verify(token: string): Promise<string> {
      try {
        const { payload } = await jwtVerify(token, keys, { issuer: config.issuer, audience: config.audience, algorithms: ALGORITHMS });
        if (typeof payload.sub !== "string" || payload.sub === "") throw new Error("no sub");
        return payload.sub;
      } catch {
        // One message whatever failed: the reason goes nowhere the caller can probe.
        throw new KmsError(status.UNAUTHENTICATED, ErrorCode.Unauthenticated, "bearer token is not valid for this service");
      }
    },
  };
}
