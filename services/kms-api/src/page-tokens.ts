// Opaque page tokens: the cursor plus an HMAC under a secret every replica shares (stored in Postgres),
// bound to the list and its filter. A token the service did not issue, or one issued for another list
// or filter, is INVALID_ARGUMENT.
import { createHmac, timingSafeEqual } from "node:crypto";
import { invalidArgument } from "@kms/errors";

const MAC_BYTES = 16;

export class PageTokens {
  constructor(private readonly secret: Buffer) {}

  encode(scope: string, cursor: readonly string[]): string {
    const payload = Buffer.from(JSON.stringify(cursor), "utf8");
    return Buffer.concat([this.mac(scope, payload), payload]).toString("base64url");
  }

  /** Returns undefined for an empty token (the first page). */
  decode(scope: string, token: string, field = "page_token"): string[] | undefined {
    if (token === "") return undefined;
    const bad = () => invalidArgument(field, "was not issued by this service for this request");
    if (token.length > 4096 || !/^[A-Za-z0-9_-]+$/.test(token)) throw bad();
    const bytes = Buffer.from(token, "base64url");
    if (bytes.length <= MAC_BYTES) throw bad();
    const payload = bytes.subarray(MAC_BYTES);
    if (!timingSafeEqual(bytes.subarray(0, MAC_BYTES), this.mac(scope, payload))) throw bad();
    const cursor: unknown = JSON.parse(payload.toString("utf8"));
    if (!Array.isArray(cursor) || !cursor.every((c) => typeof c === "string")) throw bad();
    return cursor as string[];
  }

  private mac(scope: string, payload: Buffer): Buffer {
    return createHmac("sha256", this.secret).update(scope).update("\0").update(payload).digest().subarray(0, MAC_BYTES);
  }
}
