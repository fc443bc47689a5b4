// Third-party AWS clients in other languages, unchanged, against the real stack's AWS listener: Debian's
// python3-boto3 (examples/aws/boto3_smoke.py) and its aws CLI 2 (examples/aws/cli_smoke.sh). Each script
// checks its own answers and prints one JSON summary line, compared here; the audit rows are read back.
import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import postgres from "postgres";
import { kmsResources } from "@kms/proto";
import { startStack } from "../harness";
import type { AwsAccess, Stack } from "../harness";

const run = promisify(execFile);
const repo = path.resolve(__dirname, "../..");
// Debian's python3-boto3 is visible to /usr/bin/python3 only, and /usr/bin/aws is Debian's awscli 2 (a
// pyenv or pip `aws` earlier on PATH may be version 1).
const PYTHON = "/usr/bin/python3";
const AWS_CLI = "/usr/bin/aws";
const INTRUDER = "spiffe://example.org/ns/other/sa/intruder";

let stack: Stack;
let sql: postgres.Sql;
beforeAll(async () => {
  stack = await startStack({ aws: { principals: [INTRUDER] } });
  sql = postgres(stack.db.url, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  await sql?.end();
  await stack?.stop();
});

interface Summary {
  client: string;
  passed: number;
  failed: number;
  failure?: string;
  [member: string]: unknown;
}

/** Runs a script with the access's keys in its environment; its last stdout line is the JSON summary. */
async function summaryOf(access: AwsAccess, file: string, args: string[]): Promise<Summary> {
  const env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: access.accessKeyId,
    AWS_SECRET_ACCESS_KEY: access.secretAccessKey,
    AWS_DEFAULT_REGION: access.region,
    AWS_CLI,
  };
  let stdout: string;
  try {
    ({ stdout } = await run(file, args, { cwd: repo, env, timeout: 120_000 }));
  } catch (err) {
    const { stdout: out = "", stderr = "" } = err as { stdout?: string; stderr?: string };
    throw new Error(`${path.basename(file)} failed:\n${stderr}\n${out}`);
  }
  return JSON.parse(stdout.trim().split("\n").pop()!) as Summary;
}

const boto3 = (access: AwsAccess, ...args: string[]) =>
  summaryOf(access, PYTHON, [path.join(repo, "examples/aws/boto3_smoke.py"), "--endpoint", access.endpoint, "--principal", access.principal, ...args]);

/** The operations the audit recorded for a principal's calls, with their error codes. */
async function auditOf(principal: string) {
  return sql<{ operation: string; error_code: string; n: number }[]>`
    SELECT operation, error_code, count(*)::int AS n FROM audit_events WHERE principal = ${principal}
    GROUP BY operation, error_code ORDER BY operation, error_code`;
}

let boto3Keys: { symmetric: string; ecc: string; hmac: string };

it("boto3: every operation, the error names, no retry hiding a refusal; audited under the AWS names", async () => {
  const summary = await boto3(stack.aws!.access("dev"));
  expect(summary).toMatchObject({ client: "boto3", failed: 0 });
  expect(summary.passed).toBeGreaterThanOrEqual(60);
  // RotateKeyOnDemand is newer than Debian 12's botocore model (1.29): the script runs it where it is known.
  const { RotateKeyOnDemand: rotateOnDemand, ...operations } = summary.operations as Record<string, unknown>;
  expect([undefined, "ok"]).toContain(rotateOnDemand);
  expect(operations).toEqual({
    CreateKey: ["SYMMETRIC_DEFAULT", "ECC_NIST_P256", "HMAC_256"],
    DescribeKey: ["id", "arn", "alias", "alias-arn"],
    CreateAlias: "ok", ListAliases: "ok", DeleteAlias: "ok", ListKeys: "ok",
    Encrypt: "ok", Decrypt: "ok", ReEncrypt: "ok",
    GenerateDataKey: "ok", GenerateDataKeyWithoutPlaintext: "ok", GenerateRandom: "ok",
    GetPublicKey: "ok", Sign: ["RAW", "DIGEST"], Verify: ["RAW", "DIGEST"], local_verify: "cryptography",
    GenerateMac: "ok", VerifyMac: "ok",
    TagResource: "ok", ListResourceTags: "ok", UntagResource: "ok",
    PutKeyPolicy: "ok", GetKeyPolicy: "ok",
    EnableKeyRotation: "ok", GetKeyRotationStatus: "ok", DisableKeyRotation: "ok",
    DisableKey: "ok", EnableKey: "ok", ScheduleKeyDeletion: "ok", CancelKeyDeletion: "ok",
  });
  expect(summary.errors).toEqual({
    tampered: "InvalidCiphertextException",
    wrong_context: "InvalidCiphertextException",
    incorrect_key: "IncorrectKeyException",
    bad_signature: "KMSInvalidSignatureException",
    sign_with_encrypt_key: "InvalidKeyUsageException",
    bad_mac: "KMSInvalidMacException",
    malformed_policy: "MalformedPolicyDocumentException",
    disabled: "DisabledException",
    pending_deletion: "KMSInvalidStateException",
    missing_key: "NotFoundException", // dev administers every key: a missing one is NotFound to it
    missing_key_arn: "NotFoundException",
    missing_alias: "NotFoundException",
    alias_exists: "AlreadyExistsException",
    unsupported_spec: "UnsupportedOperationException",
    unsupported_operation: "UnsupportedOperationException",
    wrong_secret: "InvalidSignatureException",
  });
  boto3Keys = summary.keys as typeof boto3Keys;

  const rows = await auditOf("dev");
  const audited = new Set(rows.map((r) => r.operation));
  for (const name of [
    "CreateKey", "DescribeKey", "ListKeys", "CreateAlias", "ListAliases", "DeleteAlias", "Encrypt", "Decrypt", "ReEncrypt",
    "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateRandom", "GetPublicKey", "Sign", "Verify", "GenerateMac",
    "VerifyMac", "TagResource", "UntagResource", "ListResourceTags", "PutKeyPolicy", "GetKeyPolicy", "ListKeyPolicies",
    "EnableKeyRotation", "DisableKeyRotation", "GetKeyRotationStatus", "DisableKey", "EnableKey",
    "ScheduleKeyDeletion", "CancelKeyDeletion", "ReplicateKey", ...(rotateOnDemand ? ["RotateKeyOnDemand"] : []),
  ]) {
    expect({ name, audited: audited.has(name) }).toEqual({ name, audited: true });
  }
  // The AWS names, not the kms.v1 methods they run.
  for (const grpcName of ["SetKeyPolicy", "AsymmetricSign", "AsymmetricVerify", "UpdateRotationPolicy", "CreateKeyVersion"]) {
    expect({ grpcName, audited: audited.has(grpcName) }).toEqual({ grpcName, audited: false });
  }
  const refusal = (operation: string, errorCode: string) => rows.some((r) => r.operation === operation && r.error_code === errorCode);
  expect(refusal("Decrypt", "InvalidCiphertext")).toBe(true);
  expect(refusal("Decrypt", "Rejected.IncorrectKey")).toBe(true);
  expect(refusal("Verify", "Rejected.InvalidSignature")).toBe(true);
  expect(refusal("Encrypt", "Rejected.Disabled")).toBe(true);
  // Each refused call was sent once (botocore retried none): one row per refusal the script made.
  expect(rows.filter((r) => r.operation === "Decrypt" && r.error_code === "InvalidCiphertext")).toEqual([
    { operation: "Decrypt", error_code: "InvalidCiphertext", n: 2 },
  ]);
}, 180_000);

it("aws CLI: create-key, a file encrypted and decrypted back, generate-data-key, list-keys, describe-key, refusals", async () => {
  const access = stack.aws!.access("dev");
  const summary = await summaryOf(access, path.join(repo, "examples/aws/cli_smoke.sh"), [access.endpoint]);
  expect(summary).toMatchObject({
    client: "aws-cli",
    failed: 0,
    passed: 11,
    refused: ["InvalidCiphertextException", "NotFoundException"],
    exit_status: 254,
  });
  expect(summary.version).toMatch(/^aws-cli\/2\./);
  const keyId = String(summary.key).split("/").pop()!;
  const rows = await sql<{ operation: string; error_code: string }[]>`
    SELECT operation, error_code FROM audit_events WHERE key_id = ${keyId} ORDER BY sequence`;
  expect(rows.map((r) => r.operation)).toEqual(
    expect.arrayContaining(["CreateKey", "CreateAlias", "Encrypt", "Decrypt", "GenerateDataKey", "DescribeKey", "DeleteAlias"]),
  );
  expect(rows).toContainEqual({ operation: "Decrypt", error_code: "InvalidCiphertext" });
}, 180_000);

it("boto3 as another principal: refused on the first principal's key exactly as on a missing one, and sees nothing", async () => {
  expect(boto3Keys).toBeDefined();
  const intruder = stack.aws!.access(INTRUDER);
  // An alias and a blob of dev's key, made through the gRPC front (the blobs are the same through either).
  const keyId = boto3Keys.symmetric.split("/").pop()!;
  const alias = "alias/intruder-target";
  await stack.client.createAlias({ aliasName: alias, keyId });
  const { ciphertextBlob } = await stack.client.encrypt({ keyId, plaintext: Buffer.from("not for the intruder") });
  const blob = Buffer.from(ciphertextBlob).toString("base64");

  const summary = await boto3(intruder, "--refused-on", boto3Keys.symmetric, "--refused-alias", alias, "--refused-blob", blob);
  expect(summary).toMatchObject({ client: "boto3", failed: 0 });
  expect(summary.passed).toBeGreaterThanOrEqual(30);
  expect(summary.refused).toEqual({
    DescribeKey: "AccessDeniedException",
    Encrypt: "AccessDeniedException",
    GenerateDataKey: "AccessDeniedException",
    GetKeyPolicy: "AccessDeniedException",
    ListResourceTags: "AccessDeniedException",
    GetKeyRotationStatus: "AccessDeniedException",
    DisableKey: "AccessDeniedException",
    ScheduleKeyDeletion: "AccessDeniedException",
    PutKeyPolicy: "AccessDeniedException",
    Decrypt: "AccessDeniedException",
    "DescribeKey(alias)": "AccessDeniedException",
  });
  // Nothing changed on dev's key, and the audit names the intruder's refusals.
  expect((await stack.client.describeKey({ keyId })).keyMetadata!.keyState).toBe(kmsResources.KeyState.ENABLED);
  const rows = await auditOf(INTRUDER);
  const denied = rows.filter((r) => r.error_code === "Forbidden.NoPermission").map((r) => r.operation);
  expect(denied).toEqual(expect.arrayContaining(["DescribeKey", "Encrypt", "PutKeyPolicy", "ScheduleKeyDeletion", "Decrypt"]));
  expect(rows.filter((r) => r.error_code === "")).toEqual(
    expect.arrayContaining([expect.objectContaining({ operation: "ListKeys" }), expect.objectContaining({ operation: "ListAliases" })]),
  );
}, 180_000);
