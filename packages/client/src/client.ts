// KmsClient: every kms.v1 RPC as a typed async method over the generated stubs, with a deadline on every
// call, retries on UNAVAILABLE only, KmsClientError for every failure, CRC32C end-to-end integrity
// (@kms/integrity: sent and checked by default, IntegrityError on a mismatch), and streaming envelope
// encryption.
import type { DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import { InterceptingCall, credentials as grpcCredentials, status } from "@grpc/grpc-js";
import type { ChannelCredentials, ChannelOptions, Interceptor, Metadata } from "@grpc/grpc-js";
import { checkResponseChecksums, integrityOf, withRequestChecksums } from "@kms/integrity";
import { createPromiseClient, kms, kmsResources } from "@kms/proto";
import type { PromiseCallOptions, PromiseClient } from "@kms/proto";
import type { DataKeyCache } from "./cache";
import type { DataKeySource } from "./data-keys";
import { KmsClientError, REQUEST_ID_KEY, fromGrpcError } from "./errors";
import type { EncryptionContext } from "./format";
import { DEFAULT_RETRY, isRetryable, withRetry } from "./retry";
import type { RetryOptions } from "./retry";
import { DecryptStream, EncryptStream } from "./stream";
import type { EncryptStreamOptions } from "./stream";

type Service = typeof kms.KeyManagementService;
type Methods = Service["method"];

export interface KmsCallOptions {
  /** Overrides the client's deadlineMs for this call (per attempt). */
  deadlineMs?: number;
  metadata?: Metadata;
  /** Called with the `kms-request-id` the service gave a call that got an answer (its audit row's request_id). */
  onRequestId?: (requestId: string) => void;
}

/** One typed async method per RPC, named as in protobuf-es (`createKey`, `encrypt`, `listAuditEvents`, ...). */
export type KmsMethods = {
  [K in keyof Methods]: (request: MessageInitShape<Methods[K]["input"]>, options?: KmsCallOptions) => Promise<MessageShape<Methods[K]["output"]>>;
};

export interface KmsClientOptions {
  /** host:port, or any grpc-js target (e.g. "unix:///run/kms.sock"). */
  address: string;
  /** Default: plaintext (the service's loopback dev mode). Use credentials.createSsl(...) for TLS / mTLS. */
  credentials?: ChannelCredentials;
  /** Deadline of every attempt of every call. Default 10 000 ms. */
  deadlineMs?: number;
  /** Further attempts after an UNAVAILABLE answer (a number), or the full backoff settings. Default 3. */
  retries?: number | Partial<RetryOptions>;
  /** Opt-in data-key cache for encryptStream (see DataKeyCache). */
  dataKeyCache?: DataKeyCache;
  channelOptions?: ChannelOptions;
  /**
   * Send the CRC32C of every request byte field and check the response's (`*_crc32c`, `verified_*`;
   * docs/integrity.md). A mismatch rejects the call with IntegrityError. Default true; false only for a
   * service that predates these fields (it would never say verified).
   */
  crc32c?: boolean;
}

export const DEFAULT_DEADLINE_MS = 10_000;

/** The RPCs that take dry_run (docs/grants.md#dry-runs). */
export type DryRunMethod = {
  [K in keyof Methods]: MessageInitShape<Methods[K]["input"]> extends { dryRun?: boolean } ? K : never;
}[keyof Methods];

/** What a dry run says: the real call would succeed, or the error it would get. */
export type DryRunResult = { wouldSucceed: true } | { wouldSucceed: false; error: KmsClientError };

/** The kms-error-code of a dry run that would have succeeded (FAILED_PRECONDITION, as AWS's DryRunOperationException). */
export const DRY_RUN_OPERATION = "DryRunOperation";

/**
 * The service sends kms-request-id as a response header, but a failed call surfaces only the trailers:
 * copy the id into them so that the error can carry it.
 */
const requestIdInterceptor: Interceptor = (options, nextCall) => {
  let requestId: string | undefined;
  return new InterceptingCall(nextCall(options), {
    start(metadata, _listener, next) {
      next(metadata, {
        onReceiveMetadata(header, nextHeader) {
          const value = header.get(REQUEST_ID_KEY)[0];
          if (typeof value === "string") requestId = value;
          nextHeader(header);
        },
        onReceiveStatus(status, nextStatus) {
          if (requestId !== undefined && status.metadata.get(REQUEST_ID_KEY).length === 0) status.metadata.set(REQUEST_ID_KEY, requestId);
          nextStatus(status);
        },
      });
    },
  });
};

// Declaration merging gives the class one typed method per RPC; the constructor installs them.
export interface KmsClient extends KmsMethods {}
export class KmsClient {
  private readonly stub: PromiseClient<Methods>;
  private readonly deadlineMs: number;
  private readonly retry: RetryOptions;
  private readonly dataKeys: DataKeySource;
  private readonly crc32c: boolean;

  constructor(options: KmsClientOptions) {
    this.deadlineMs = options.deadlineMs ?? DEFAULT_DEADLINE_MS;
    this.crc32c = options.crc32c ?? true;
    const retries = typeof options.retries === "number" ? { retries: options.retries } : (options.retries ?? {});
    this.retry = { ...DEFAULT_RETRY, ...retries };
    this.stub = createPromiseClient<Methods>(
      kms.KeyManagementService as Service & DescService,
      options.address,
      options.credentials ?? grpcCredentials.createInsecure(),
      { ...options.channelOptions, interceptors: [requestIdInterceptor] },
    );
    const methods = this as unknown as Record<string, unknown>;
    for (const method of kms.KeyManagementService.methods) {
      const name = method.localName as keyof Methods;
      methods[name] = (request: never, callOptions: KmsCallOptions = {}) => this.call(name, method.name, request, callOptions);
    }
    const direct = this.directDataKeys();
    this.dataKeys = options.dataKeyCache ? options.dataKeyCache.wrap(direct) : direct;
  }

  private async call<K extends keyof Methods>(
    name: K,
    rpc: string,
    request: MessageInitShape<Methods[K]["input"]>,
    options: KmsCallOptions,
  ): Promise<MessageShape<Methods[K]["output"]>> {
    const integrity = this.crc32c ? integrityOf(rpc) : undefined;
    if (integrity === undefined) return this.send(name, request, options);
    const sent = withRequestChecksums(integrity, request);
    const response = await this.send(name, sent, options);
    checkResponseChecksums(integrity, sent as Record<string, unknown>, response as unknown as Record<string, unknown>);
    return response;
  }

  private send<K extends keyof Methods>(name: K, request: MessageInitShape<Methods[K]["input"]>, options: KmsCallOptions): Promise<MessageShape<Methods[K]["output"]>> {
    const invoke = this.stub[name] as unknown as (r: typeof request, o: PromiseCallOptions) => Promise<MessageShape<Methods[K]["output"]>>;
    const deadline = options.deadlineMs ?? this.deadlineMs;
    const onRequestId = options.onRequestId;
    const onHeaders = onRequestId
      ? (headers: Metadata) => {
          const id = headers.get(REQUEST_ID_KEY)[0];
          if (typeof id === "string") onRequestId(id);
        }
      : undefined;
    return withRetry(async () => {
      try {
        return await invoke(request, { deadline, ...(options.metadata ? { metadata: options.metadata } : {}), ...(onHeaders ? { onHeaders } : {}) });
      } catch (err) {
        throw fromGrpcError(err);
      }
    }, this.retry);
  }

  /**
   * Asks whether `method(request)` would succeed, without doing it: the request goes with dry_run = true
   * (authorization, key state and input are checked; nothing is encrypted, signed, counted or changed).
   * Failures that say nothing about the call (UNAVAILABLE, DEADLINE_EXCEEDED after the retries, a local
   * error) are thrown, not reported as "would fail".
   */
  async dryRun<K extends DryRunMethod>(method: K, request: MessageInitShape<Methods[K]["input"]>, options: KmsCallOptions = {}): Promise<DryRunResult> {
    const call = (this as unknown as Record<K, (r: unknown, o: KmsCallOptions) => Promise<unknown>>)[method];
    try {
      await call({ ...request, dryRun: true }, options);
    } catch (err) {
      if (err instanceof KmsClientError && err.kmsErrorCode === DRY_RUN_OPERATION) return { wouldSucceed: true };
      if (err instanceof KmsClientError && !isRetryable(err) && err.code !== status.DEADLINE_EXCEEDED) return { wouldSucceed: false, error: err };
      throw err;
    }
    // A service without dry runs would have done the call: say so loudly rather than report a guess.
    throw new Error(`${String(method)} with dry_run answered with a result: the service does not support dry runs and performed the call`);
  }

  private directDataKeys(): DataKeySource {
    return {
      generateDataKey: async (keyId, encryptionContext) => {
        const res = await this.generateDataKey({ keyId, keySpec: kmsResources.DataKeySpec.AES_256, encryptionContext });
        return { plaintext: Buffer.from(res.plaintext.buffer, res.plaintext.byteOffset, res.plaintext.byteLength), ciphertextBlob: Buffer.from(res.ciphertextBlob), countBytes: () => {} };
      },
      decryptDataKey: async (ciphertextBlob, encryptionContext) => {
        const res = await this.decrypt({ ciphertextBlob, encryptionContext });
        return Buffer.from(res.plaintext.buffer, res.plaintext.byteOffset, res.plaintext.byteLength);
      },
    };
  }

  /**
   * A Transform stream: plaintext in, the envelope format (FORMAT.md) out. One GenerateDataKey per stream
   * (or a cached key when the client has a dataKeyCache).
   */
  encryptStream(keyId: string, context: EncryptionContext = {}, options: EncryptStreamOptions = {}): EncryptStream {
    return new EncryptStream(this.dataKeys, keyId, context, options);
  }

  /**
   * A Transform stream: the envelope format in, plaintext out; errors on any tampering, reordering or
   * truncation. `context` must equal the one the stream was encrypted under.
   */
  decryptStream(context: EncryptionContext = {}): DecryptStream {
    return new DecryptStream(this.dataKeys, context);
  }

  close(): void {
    this.stub.close();
  }
}
