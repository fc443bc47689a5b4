// Grant tokens (docs/grants.md): the grant id and an HMAC of it under a secret every replica shares
// (stored in Postgres, like the page-token key). Nothing is stored per token, so a second CreateGrant
// with the same name gives the same token; a token is worth nothing once its grant is retired or revoked
// (the row is gone). A token that does not verify is treated as no token: the caller gets the same
// PERMISSION_DENIED as without one. checkGrantTokens bounds a request's grant_tokens before any is read.
import { createHmac, timingSafeEqual } from "node:crypto";
import { invalidArgument } from "@kms/errors";

const PREFIX = "kmsgt1.";
const MAC_BYTES = 32;
const UUID_BYTES = 16;

export class GrantTokens {
  constructor(private readonly secret: Buffer) {}

  issue(grantId: string): string {
    const id = Buffer.from(grantId.replaceAll("-", ""), "hex");
    return PREFIX + Buffer.concat([id, this.mac(id)]).toString("base64url");
  }

  /** The grant id a genuine token names; undefined for anything else. */
  grantIdOf(token: string): string | undefined {
    if (!token.startsWith(PREFIX) || token.length > 128) return undefined;
    const body = token.slice(PREFIX.length);
    if (!/^[A-Za-z0-9_-]+$/.test(body)) return undefined;
    const bytes = Buffer.from(body, "base64url");
    if (bytes.length !== UUID_BYTES + MAC_BYTES) return undefined;
    const id = bytes.subarray(0, UUID_BYTES);
    if (!timingSafeEqual(bytes.subarray(UUID_BYTES), this.mac(id))) return undefined;
    const hex = id.toString("hex");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  private mac(id: Buffer): Buffer {
    return createHmac("sha256", this.secret).update("kms grant token\0").update(id).digest();
  }
}

const MAX_GRANT_TOKENS = 10;
const MAX_GRANT_TOKEN_CHARS = 256;

/** grant_tokens within bounds (INVALID_ARGUMENT); whether each is genuine is the lookup's business. */
export function checkGrantTokens(tokens: readonly string[], field = "grant_tokens"): readonly string[] {
  if (tokens.length > MAX_GRANT_TOKENS) throw invalidArgument(field, `at most ${MAX_GRANT_TOKENS}, got ${tokens.length}`);
  tokens.forEach((t, i) => {
    if (t.length === 0 || t.length > MAX_GRANT_TOKEN_CHARS) throw invalidArgument(`${field}[${i}]`, `must be 1 to ${MAX_GRANT_TOKEN_CHARS} characters`);
  });
  return tokens;
}
