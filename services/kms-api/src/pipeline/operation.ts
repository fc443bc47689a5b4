// What an operation is to the pipeline: its handler, plus what the pipeline needs to know about its
// messages, declared here instead of guessed from field names. Every front (gRPC kms.v1, the
// AWS-compatible JSON API) runs the same operations through the same pipeline (pipeline.ts).
import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { Integrity } from "@kms/integrity";
import type { CallContext, Services } from "../context";

/** Does the work of one call. Checks the key policy itself (through findKey), as only it knows the key. */
export type Handler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: CallContext,
  services: Services,
) => Promise<MessageInitShape<O>>;

/** Byte fields that may hold plaintext or key material: zeroed once the call is done with them. */
type Secrets<M> = (message: M) => readonly (Uint8Array | undefined)[];

export interface Declarations<I extends DescMessage, O extends DescMessage> {
  /** The key the request names, so even a call refused before its lookup gets an audit row naming it. */
  keyId?: (request: MessageShape<I>) => string;
  /** The encryption context the key policy's conditions and the audit row see. */
  encryptionContext?: (request: MessageShape<I>) => Record<string, string>;
  /** The request's dry_run flag (docs/grants.md#dry-runs). */
  dryRun?: (request: MessageShape<I>) => boolean;
  /** The request's grant_tokens. */
  grantTokens?: (request: MessageShape<I>) => readonly string[];
  /** Items a batch carries: each beyond the first takes one more rate-limit token. */
  items?: (request: MessageShape<I>) => number;
  /** The request's secret fields (zeroed after the handler). */
  requestSecrets?: Secrets<MessageShape<I>>;
  /** The response's secret fields (zeroed once the front has encoded the reply). */
  responseSecrets?: Secrets<MessageInitShape<O>>;
  /**
   * The byte fields that come with a CRC32C (@kms/integrity): the request's are checked after decode,
   * before the handler; the response's `verified_*` flags and CRC32Cs are filled before encode.
   */
  checksums?: Integrity;
}

export interface Operation<I extends DescMessage = DescMessage, O extends DescMessage = DescMessage> extends Declarations<I, O> {
  /** The operation's name: the kms.v1 RPC, and the key policy action `kms:<name>`. */
  name: string;
  method: DescMethod & { input: I; output: O };
  handle: Handler<I, O>;
}

export function operation<I extends DescMessage, O extends DescMessage>(
  method: DescMethod & { input: I; output: O },
  handle: Handler<I, O>,
  declarations: Declarations<I, O> = {},
): Operation<I, O> {
  return { name: method.name, method, handle, ...declarations };
}
