// What kube-apiserver's KMS v2 contract allows (k8s.io/apiserver .../envelope/kmsv2): requests outside
// it are refused with INVALID_ARGUMENT naming the field before kms-api is called.

/** Largest ciphertext and key_id the apiserver accepts. */
export const MAX_CIPHERTEXT_BYTES = 1024;
export const MAX_KEY_ID_BYTES = 1024;
/** Annotation keys and values together. */
export const MAX_ANNOTATIONS_BYTES = 32 * 1024;
/**
 * Largest plaintext we encrypt: the apiserver sends a 32-byte seed; this leaves the ciphertext (plaintext,
 * kms-api's header with the key and version ids, IV and tag) under MAX_CIPHERTEXT_BYTES.
 */
export const MAX_PLAINTEXT_BYTES = 512;
/** The uid is for logs only; longer ones are cut in the log line. */
export const MAX_LOGGED_UID_CHARS = 128;

export class LimitError extends Error {
  override readonly name = "LimitError";
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** As Kubernetes' IsFullyQualifiedDomainName: a DNS-1123 subdomain of at least two labels, ≤ 253 characters. */
export function isFullyQualifiedDomainName(name: string): boolean {
  const trimmed = name.endsWith(".") ? name.slice(0, -1) : name;
  if (trimmed.length === 0 || trimmed.length > 253) return false;
  const labels = trimmed.split(".");
  return labels.length >= 2 && labels.every((l) => DNS_LABEL.test(l));
}

export function checkPlaintext(plaintext: Uint8Array): void {
  if (plaintext.length === 0) throw new LimitError("plaintext", "must not be empty");
  if (plaintext.length > MAX_PLAINTEXT_BYTES) throw new LimitError("plaintext", `must be at most ${MAX_PLAINTEXT_BYTES} bytes, got ${plaintext.length}`);
}

export function checkCiphertext(ciphertext: Uint8Array): void {
  if (ciphertext.length === 0) throw new LimitError("ciphertext", "must not be empty");
  if (ciphertext.length > MAX_CIPHERTEXT_BYTES) throw new LimitError("ciphertext", `must be at most ${MAX_CIPHERTEXT_BYTES} bytes, got ${ciphertext.length}`);
}

export function checkKeyId(keyId: string): void {
  const bytes = Buffer.byteLength(keyId, "utf8");
  if (bytes > MAX_KEY_ID_BYTES) throw new LimitError("key_id", `must be at most ${MAX_KEY_ID_BYTES} bytes, got ${bytes}`);
}

export function checkAnnotations(annotations: Record<string, Uint8Array>): void {
  let total = 0;
  for (const [key, value] of Object.entries(annotations)) {
    if (!isFullyQualifiedDomainName(key)) throw new LimitError("annotations", `key ${JSON.stringify(key.slice(0, 64))} is not a fully qualified domain name`);
    total += Buffer.byteLength(key, "utf8") + value.length;
  }
  if (total > MAX_ANNOTATIONS_BYTES) throw new LimitError("annotations", `must be at most ${MAX_ANNOTATIONS_BYTES} bytes in total (keys and values), got ${total}`);
}

/** The uid as it may appear in a log line: bounded, printable. */
export function loggedUid(uid: string): string {
  return uid.slice(0, MAX_LOGGED_UID_CHARS).replace(/[^\x20-\x7e]/g, "?");
}
