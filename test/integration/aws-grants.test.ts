// Grants through the AWS-compatible API with @aws-sdk/client-kms, unchanged: dev (the administrator)
// grants bob Encrypt and Decrypt under a constraint; bob uses them with and without GrantTokens, lists,
// retires; a revoked grant stops. Principals are the access keys' principals.
import * as aws from "@aws-sdk/client-kms";
import type { KMSClient } from "@aws-sdk/client-kms";
import { startStack } from "../harness";
import type { Stack } from "../harness";
import { awsError, kmsClient } from "../aws-sdk-client";

jest.setTimeout(120_000);

let stack: Stack;
let dev: KMSClient;
let bob: KMSClient;

beforeAll(async () => {
  stack = await startStack({ hsm: false, aws: { principals: ["bob"] } });
  dev = kmsClient(stack.aws!.access(), { maxAttempts: 1 });
  bob = kmsClient(stack.aws!.access("bob"), { maxAttempts: 1 });
});
afterAll(async () => {
  dev?.destroy();
  bob?.destroy();
  await stack?.stop();
});

it("CreateGrant, use under its constraint, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant", async () => {
  const keyId = (await dev.send(new aws.CreateKeyCommand({}))).KeyMetadata!.KeyId!;
  const plaintext = Buffer.from("for bob");
  expect((await awsError(bob.send(new aws.EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: { app: "x" } })))).name).toBe("AccessDeniedException");

  const made = await dev.send(
    new aws.CreateGrantCommand({
      KeyId: keyId,
      GranteePrincipal: "bob",
      RetiringPrincipal: "bob",
      Operations: ["Encrypt", "Decrypt"],
      Constraints: { EncryptionContextSubset: { app: "x" } },
      Name: "bob-x",
    }),
  );
  expect(made.GrantId).toMatch(/^[0-9a-f-]{36}$/);
  const { CiphertextBlob } = await bob.send(new aws.EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: { app: "x", n: "1" }, GrantTokens: [made.GrantToken!] }));
  const decrypted = await bob.send(new aws.DecryptCommand({ CiphertextBlob, EncryptionContext: { app: "x", n: "1" } }));
  expect(Buffer.from(decrypted.Plaintext!).toString()).toBe("for bob");
  expect((await awsError(bob.send(new aws.EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: { app: "y" } })))).name).toBe("AccessDeniedException");
  // A dry run through a grant.
  expect((await awsError(bob.send(new aws.EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: { app: "x" }, DryRun: true })))).name).toBe("DryRunOperationException");

  const listed = await dev.send(new aws.ListGrantsCommand({ KeyId: keyId }));
  expect(listed.Grants!.map((g) => [g.GrantId, g.Name, g.GranteePrincipal, g.Operations, g.Constraints])).toEqual([
    [made.GrantId, "bob-x", "bob", ["Encrypt", "Decrypt"], { EncryptionContextSubset: { app: "x" } }],
  ]);
  expect(listed.Grants![0]!.CreationDate).toBeInstanceOf(Date);
  expect((await bob.send(new aws.ListRetirableGrantsCommand({ RetiringPrincipal: "bob" }))).Grants!.map((g) => g.GrantId)).toEqual([made.GrantId]);
  expect((await awsError(dev.send(new aws.CreateGrantCommand({ KeyId: keyId, GranteePrincipal: "bob", Operations: ["CreateGrant"] })))).name).toBe(
    "UnsupportedOperationException",
  );

  await bob.send(new aws.RetireGrantCommand({ GrantToken: made.GrantToken }));
  expect((await awsError(bob.send(new aws.EncryptCommand({ KeyId: keyId, Plaintext: plaintext, EncryptionContext: { app: "x" } })))).name).toBe("AccessDeniedException");

  const signing = await dev.send(new aws.CreateGrantCommand({ KeyId: keyId, GranteePrincipal: "bob", Operations: ["GenerateDataKey"] }));
  expect((await bob.send(new aws.GenerateDataKeyCommand({ KeyId: keyId, KeySpec: "AES_256" }))).KeyId).toContain(keyId);
  await dev.send(new aws.RevokeGrantCommand({ KeyId: keyId, GrantId: signing.GrantId }));
  expect((await awsError(bob.send(new aws.GenerateDataKeyCommand({ KeyId: keyId, KeySpec: "AES_256" })))).name).toBe("AccessDeniedException");
  expect((await awsError(dev.send(new aws.RevokeGrantCommand({ KeyId: keyId, GrantId: signing.GrantId })))).name).toBe("NotFoundException");
});
