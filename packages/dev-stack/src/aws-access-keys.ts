// Access keys for the AWS-compatible API (KMS_AWS_ACCESS_KEYS_FILE): the dev stack's own pair, and the
// files tests write. The file format is kms-api's (services/kms-api/src/fronts/aws/access-keys.ts).
import { randomBytes, randomInt } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";

export interface AwsAccessKey {
  accessKeyId: string;
  secretAccessKey: string;
  principal: string;
}

const ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** A fresh key pair shaped like AWS's: AKIA + 16 of A-Z2-7, and a 40-character secret. */
export function newAccessKey(principal: string): AwsAccessKey {
  let id = "AKIA";
  for (let i = 0; i < 16; i++) id += ID_ALPHABET[randomInt(ID_ALPHABET.length)];
  const secretAccessKey = randomBytes(30).toString("base64").replace(/\+/g, "A").replace(/\//g, "B");
  return { accessKeyId: id, secretAccessKey, principal };
}

/** Writes the keys file with mode 0600 (kms-api refuses one that group or others can read). */
export function writeAccessKeysFile(file: string, keys: readonly AwsAccessKey[]): void {
  const lines = keys.map((k) => `${k.accessKeyId} ${k.secretAccessKey} ${k.principal}`);
  writeFileSync(file, `# <access key id> <secret access key> <principal>\n${lines.join("\n")}\n`, { mode: 0o600 });
}

/** The dev stack's one key pair (principal "dev", the dev-mode administrator): made once, then reused. */
export function ensureDevAccessKey(file: string): AwsAccessKey {
  if (existsSync(file)) {
    const line = readFileSync(file, "utf8").split("\n").find((l) => l.trim() !== "" && !l.startsWith("#"));
    const [accessKeyId, secretAccessKey, principal] = (line ?? "").trim().split(/\s+/);
    if (accessKeyId && secretAccessKey && principal) return { accessKeyId, secretAccessKey, principal };
  }
  const key = newAccessKey("dev");
  writeAccessKeysFile(file, [key]);
  return key;
}
