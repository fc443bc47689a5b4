// What one call carries from the front through the pipeline and its handler. Its own module so that
// the components Services holds can name it without importing Services.
/** What one call carries through its handler: who asks, and what the audit row will name. */
export interface CallContext {
  requestId: string;
  /** The RPC name, e.g. "Encrypt"; key policies see it as the action "kms:Encrypt". */
  operation: string;
  principal: string;
  /** The principal came from a trusted client certificate (kms:MutualTLS), not from a token. */
  mutualTls: boolean;
  /** The request's encryption context (empty if it has none): policy conditions and the audit row. */
  encryptionContext: Record<string, string>;
  /** dry_run: checks only; the handler stops at dryRunStop() (pipeline/dry-run.ts) before doing anything. */
  dryRun?: boolean;
  /** The request's grant_tokens: grants read from Postgres by id, usable before the cache knows them. */
  grantTokens?: readonly string[];
  /** The call's own deadline, if the client set one; worker calls never outlive it. */
  deadline: Date | undefined;
  /**
   * Filled in by the handler as soon as it knows them, so even a failed call's audit row names the key.
   * `operation`: the name the row records (the front's own, e.g. the AWS API's "Sign" for
   * AsymmetricSign). `written`: a change's row went in with the change (audited-change.ts); the
   * pipeline writes no other. `grantId`: the grant(s) that allowed the call, when the key policy did not.
   */
  audit: { operation: string; keyId: string; keyVersionId: string; written?: boolean; grantId?: string };
}
