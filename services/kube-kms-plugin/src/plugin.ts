// The KMS v2 operations over kms-api: Status (version, health, the primary version's key_id), Encrypt and
// Decrypt of the apiserver's seeds under the CMK with this cluster's encryption context.
import { randomBytes, timingSafeEqual } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { IntegrityError, KmsClientError } from "@kms/client";
import type { KmsCallOptions, KmsMethods } from "@kms/client";
import { checkAnnotations, checkCiphertext, checkKeyId, checkPlaintext, loggedUid } from "./limits";

export type KmsCalls = Pick<KmsMethods, "describeKey" | "encrypt" | "decrypt">;

export interface Log {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

/** A refusal the gRPC front sends as it is: a status code and a message without secrets. */
export class PluginError extends Error {
  override readonly name = "PluginError";
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

export interface PluginOptions {
  kms: KmsCalls;
  /** KMS_PLUGIN_KEY_ID: key id or alias. */
  keyId: string;
  cluster: string;
  log: Log;
  clock?: () => number;
  /** How long Status reuses the primary version it read (DescribeKey). */
  keyCacheMs?: number;
  /** How long a healthy / failed round trip answers Status polls. */
  healthOkMs?: number;
  healthFailMs?: number;
}

export const API_VERSION = "v2";
export const HEALTHY = "ok";

/** The key_id the apiserver stores with each object: the CMK and the version that encrypted it. */
export function pluginKeyId(kmsKeyId: string, keyVersionId: string): string {
  return `${kmsKeyId}/${keyVersionId}`;
}

interface Primary {
  keyId: string;
  readAt: number;
}

/** What a kms-api failure becomes: UNAVAILABLE when kms-api cannot answer (the apiserver retries). */
function translate(err: unknown): PluginError {
  if (err instanceof PluginError) return err;
  if (err instanceof KmsClientError) {
    const code = err.code === status.DEADLINE_EXCEEDED ? status.UNAVAILABLE : err.code;
    return new PluginError(code, `kms-api: ${err.codeName}${err.kmsErrorCode ? ` ${err.kmsErrorCode}` : ""}`);
  }
  // An answer corrupted on the way (its CRC32C does not match): the apiserver's retry asks again.
  if (err instanceof IntegrityError) return new PluginError(status.UNAVAILABLE, `kms-api: ${err.message}`);
  return new PluginError(status.INTERNAL, "internal error");
}

export class KubeKmsPlugin {
  readonly encryptionContext: Record<string, string>;
  private readonly kms: KmsCalls;
  private readonly keyId: string;
  private readonly log: Log;
  private readonly clock: () => number;
  private readonly keyCacheMs: number;
  private readonly healthOkMs: number;
  private readonly healthFailMs: number;
  private primary: Primary | undefined;
  /** Bumped whenever an answer sets the primary: a DescribeKey begun before it must not undo it. */
  private primaryGeneration = 0;
  private describing: Promise<Primary> | undefined;
  private health: { healthz: string; at: number } | undefined;
  private probing: Promise<string> | undefined;

  constructor(o: PluginOptions) {
    this.kms = o.kms;
    this.keyId = o.keyId;
    this.log = o.log;
    this.clock = o.clock ?? Date.now;
    this.keyCacheMs = o.keyCacheMs ?? 1000;
    this.healthOkMs = o.healthOkMs ?? 5000;
    this.healthFailMs = o.healthFailMs ?? 1000;
    this.encryptionContext = { "k8s-cluster": o.cluster, purpose: "kubernetes-kms-v2" };
  }

  async status(): Promise<{ version: string; healthz: string; keyId: string }> {
    // Side by side, so that a slow kms-api costs Status one deadline, not three.
    const keyId = this.currentPrimary().then(
      (primary) => primary.keyId,
      (err: unknown) => {
        // kms-api unreachable: the last key_id still names the key (healthz says what is wrong).
        if (!this.primary) throw translate(err);
        return this.primary.keyId;
      },
    );
    const [healthz, current] = await Promise.all([this.healthz(), keyId]);
    return { version: API_VERSION, healthz, keyId: current };
  }

  async encrypt(plaintext: Uint8Array, uid: string): Promise<{ ciphertext: Uint8Array; keyId: string }> {
    checkPlaintext(plaintext);
    const call = this.callOptions();
    try {
      const res = await this.kms.encrypt({ keyId: this.keyId, plaintext, encryptionContext: this.encryptionContext }, call.options);
      const keyId = this.noteVersion(res.keyId, res.keyVersionId);
      checkCiphertext(res.ciphertextBlob);
      checkKeyId(keyId);
      this.log.info("Encrypt", { uid: loggedUid(uid), kmsRequestId: call.requestId(), keyId });
      return { ciphertext: res.ciphertextBlob, keyId };
    } catch (err) {
      throw this.failed("Encrypt", uid, call.requestId(), err);
    }
  }

  async decrypt(ciphertext: Uint8Array, keyId: string, annotations: Record<string, Uint8Array>, uid: string): Promise<Uint8Array> {
    checkCiphertext(ciphertext);
    checkKeyId(keyId);
    checkAnnotations(annotations);
    const call = this.callOptions();
    try {
      const res = await this.kms.decrypt({ ciphertextBlob: ciphertext, encryptionContext: this.encryptionContext }, call.options);
      // The blob names its key version; the key_id stored beside it must name the same one. Any key the
      // blob names is accepted (not only today's CMK), so that objects written before KMS_PLUGIN_KEY_ID's
      // alias moved to another key still decrypt.
      const madeBy = pluginKeyId(res.keyId, res.keyVersionId);
      if (keyId !== "" && keyId !== madeBy) {
        res.plaintext.fill(0);
        throw new PluginError(status.INVALID_ARGUMENT, "key_id: does not name the key version of the ciphertext");
      }
      this.log.info("Decrypt", { uid: loggedUid(uid), kmsRequestId: call.requestId(), keyId: madeBy });
      return res.plaintext;
    } catch (err) {
      throw this.failed("Decrypt", uid, call.requestId(), err);
    }
  }

  /** "ok" when an Encrypt + Decrypt round trip through kms-api works; cached so Status polls stay cheap. */
  async healthz(): Promise<string> {
    const cached = this.health;
    if (cached && this.clock() - cached.at < (cached.healthz === HEALTHY ? this.healthOkMs : this.healthFailMs)) return cached.healthz;
    this.probing ??= this.probe().finally(() => (this.probing = undefined));
    return this.probing;
  }

  private async probe(): Promise<string> {
    const probe = randomBytes(32);
    let healthz: string;
    try {
      const enc = await this.kms.encrypt({ keyId: this.keyId, plaintext: probe, encryptionContext: this.encryptionContext });
      this.noteVersion(enc.keyId, enc.keyVersionId);
      const dec = await this.kms.decrypt({ ciphertextBlob: enc.ciphertextBlob, encryptionContext: this.encryptionContext });
      const same = dec.plaintext.length === probe.length && timingSafeEqual(dec.plaintext, probe);
      dec.plaintext.fill(0);
      healthz = same ? HEALTHY : "round trip through kms-api returned other bytes";
    } catch (err) {
      healthz = `round trip through kms-api failed: ${translate(err).message}`;
    } finally {
      probe.fill(0);
    }
    this.health = { healthz, at: this.clock() };
    if (healthz !== HEALTHY) this.log.warn("unhealthy", { healthz });
    return healthz;
  }

  /** The CMK's primary version, read with DescribeKey at most every keyCacheMs. */
  private async currentPrimary(): Promise<Primary> {
    const cached = this.primary;
    if (cached && this.clock() - cached.readAt < this.keyCacheMs) return cached;
    this.describing ??= this.describe().finally(() => (this.describing = undefined));
    return this.describing;
  }

  private async describe(): Promise<Primary> {
    const generation = this.primaryGeneration;
    const res = await this.kms.describeKey({ keyId: this.keyId });
    const meta = res.keyMetadata;
    if (!meta || meta.primaryKeyVersionId === "") throw new PluginError(status.FAILED_PRECONDITION, "kms-api: the key has no primary version");
    const primary = { keyId: pluginKeyId(meta.keyId, meta.primaryKeyVersionId), readAt: this.clock() };
    if (generation === this.primaryGeneration) this.setPrimary(primary);
    return this.primary ?? primary;
  }

  /** An Encrypt's answer names the version that is primary now: Status reports the same key_id from here on. */
  private noteVersion(kmsKeyId: string, keyVersionId: string): string {
    const keyId = pluginKeyId(kmsKeyId, keyVersionId);
    if (this.primary?.keyId !== keyId) this.setPrimary({ keyId, readAt: this.clock() });
    return keyId;
  }

  private setPrimary(primary: Primary): void {
    if (this.primary && this.primary.keyId !== primary.keyId) this.log.info("key_id changed", { from: this.primary.keyId, to: primary.keyId });
    this.primaryGeneration += 1;
    this.primary = primary;
  }

  private callOptions(): { options: KmsCallOptions; requestId: () => string | undefined } {
    let requestId: string | undefined;
    return { options: { onRequestId: (id) => (requestId = id) }, requestId: () => requestId };
  }

  private failed(operation: string, uid: string, kmsRequestId: string | undefined, err: unknown): PluginError {
    const refusal = translate(err);
    // kms-api down: the next Status must not report the round trip of a few seconds ago as healthy.
    if (refusal.code === status.UNAVAILABLE) this.health = undefined;
    this.log.warn(`${operation} failed`, { uid: loggedUid(uid), kmsRequestId: kmsRequestId ?? (err instanceof KmsClientError ? err.requestId : undefined), code: status[refusal.code], error: refusal.message });
    return refusal;
  }
}
