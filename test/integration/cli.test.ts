// The built `kms` CLI as a child process against the real stack: create-key, encrypt a file and decrypt it
// back, --json output, and the exit codes scripts rely on.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startStack } from "../harness";
import type { Stack } from "../harness";

const CLI = path.join(__dirname, "..", "..", "packages", "cli", "dist", "main.js");

let stack: Stack;
let dir: string;
beforeAll(async () => {
  stack = await startStack({ hsm: false });
  dir = mkdtempSync(path.join(os.tmpdir(), "kms-cli-it-"));
});
afterAll(async () => {
  await stack?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function kms(args: string[], input?: Buffer): { code: number | null; stdout: string; stderr: string; raw: Buffer } {
  const res = spawnSync(process.execPath, [CLI, "--address", stack.address, ...args], { input, env: { ...process.env, KMS_ADDR: "" } });
  return { code: res.status, stdout: res.stdout.toString(), stderr: res.stderr.toString(), raw: res.stdout };
}

function json<T>(args: string[]): T {
  const res = kms(["--json", ...args]);
  expect({ code: res.code, stderr: res.stderr }).toEqual({ code: 0, stderr: "" });
  return JSON.parse(res.stdout) as T;
}

type KeyJson = { keyMetadata: { keyId: string; keyState: string; keySpec: string; protectionLevel: string; description: string } };

it("creates and describes a key, as JSON", () => {
  const created = json<KeyJson>(["create-key", "--description", "cli-it", "--protection-level", "SOFTWARE", "--tag", "team=it"]);
  expect(created.keyMetadata.keyId).toMatch(/^[0-9a-f-]{36}$/);
  expect(created.keyMetadata.keyState).toBe("KEY_STATE_ENABLED");
  expect(created.keyMetadata.keySpec).toBe("KEY_SPEC_AES_256");
  expect(created.keyMetadata.protectionLevel).toBe("PROTECTION_LEVEL_SOFTWARE");
  const described = json<KeyJson>(["describe-key", created.keyMetadata.keyId]);
  expect(described.keyMetadata.description).toBe("cli-it");
  const listed = json<{ keys: { keyId: string }[] }>(["list-keys"]);
  expect(listed.keys.map((k) => k.keyId)).toContain(created.keyMetadata.keyId);
});

it("encrypts a file and decrypts it back, files and pipes", () => {
  const keyId = json<KeyJson>(["create-key", "--protection-level", "SOFTWARE"]).keyMetadata.keyId;
  const plaintext = randomBytes(300_000);
  const input = path.join(dir, "data.bin");
  const encrypted = path.join(dir, "data.kmse");
  const decrypted = path.join(dir, "data.out");
  writeFileSync(input, plaintext);

  const enc = json<{ plaintextBytes: number; ciphertextBytes: number; format: string }>(["encrypt", "--key", keyId, "--context", "app=it", "--in", input, "--out", encrypted]);
  expect(enc.plaintextBytes).toBe(300_000);
  expect(enc.format).toBe("envelope");
  expect(readFileSync(encrypted).subarray(0, 4).toString()).toBe("KMSS");

  const dec = kms(["decrypt", "--context", "app=it", "--in", encrypted, "--out", decrypted]);
  expect(dec.code).toBe(0);
  expect(readFileSync(decrypted).equals(plaintext)).toBe(true);

  // stdin → stdout, both directions.
  const piped = kms(["encrypt", "--key", keyId], Buffer.from("hello over pipes"));
  expect(piped.code).toBe(0);
  const back = kms(["decrypt"], piped.raw);
  expect(back.code).toBe(0);
  expect(back.stdout).toBe("hello over pipes");

  // A raw Encrypt blob decrypts through the same command.
  const raw = kms(["encrypt", "--raw", "--key", keyId], Buffer.from("tiny"));
  expect(raw.code).toBe(0);
  expect(raw.raw.subarray(0, 4).toString()).not.toBe("KMSS");
  expect(kms(["decrypt"], raw.raw).stdout).toBe("tiny");
});

it("exits 3 and leaves no output file for a wrong context or a tampered file", () => {
  const keyId = json<KeyJson>(["create-key", "--protection-level", "SOFTWARE"]).keyMetadata.keyId;
  const encrypted = path.join(dir, "ctx.kmse");
  expect(kms(["encrypt", "--key", keyId, "--context", "a=1", "--out", encrypted], randomBytes(1000)).code).toBe(0);
  const out = path.join(dir, "ctx.out");
  const wrong = kms(["decrypt", "--context", "a=2", "--in", encrypted, "--out", out]);
  expect(wrong.code).toBe(3);
  expect(wrong.stderr).toBe("kms: encryption context does not match the stream's\n");
  const bytes = readFileSync(encrypted);
  bytes[bytes.length - 1]! ^= 1;
  const tampered = kms(["decrypt", "--context", "a=1", "--out", out], bytes);
  expect(tampered.code).toBe(3);
  expect(tampered.stderr).toBe("kms: chunk 0 failed authentication (tampered, reordered, dropped or from another message)\n");
  expect(readdirSync(dir).filter((f) => f.startsWith("ctx.out") || f.startsWith(".ctx.out"))).toEqual([]);
});

it("exits 2 for an unknown key, with the status, kms-error-code and request id on stderr", () => {
  const res = kms(["describe-key", "2b6e0c3a-0000-4000-8000-000000000000"]);
  expect(res.code).toBe(2);
  expect(res.stdout).toBe("");
  expect(res.stderr).toMatch(/^kms: NOT_FOUND \(Forbidden\.KeyNotFound\): key "2b6e0c3a-0000-4000-8000-000000000000" not found \[request [0-9a-f-]{36}\]\n$/);
  const asJson = kms(["--json", "encrypt", "--key", "alias/nope"], Buffer.from("x"));
  expect(asJson.code).toBe(2);
  expect(JSON.parse(asJson.stderr)).toMatchObject({ error: { code: "NOT_FOUND", kmsErrorCode: "Forbidden.AliasNotFound" } });
});

it("exits 3 for an invalid argument, 4 for a disabled key, 1 for a usage error, 5 when nothing listens", () => {
  expect(kms(["describe-key", "not-a-key-id"]).code).toBe(3);
  const keyId = json<KeyJson>(["create-key", "--protection-level", "SOFTWARE"]).keyMetadata.keyId;
  expect(json<KeyJson>(["disable-key", keyId]).keyMetadata.keyState).toBe("KEY_STATE_DISABLED");
  const disabled = kms(["encrypt", "--key", keyId], Buffer.from("x"));
  expect(disabled.code).toBe(4);
  expect(disabled.stderr).toMatch(/^kms: FAILED_PRECONDITION \(Rejected\.Disabled\)/);
  expect(kms(["create-key", "--key-spec", "AES_512"]).code).toBe(1);
  expect(kms(["no-such-command"]).code).toBe(1);
  const down = spawnSync(process.execPath, [CLI, "--address", "127.0.0.1:1", "--deadline-ms", "1000", "list-keys"]);
  expect(down.status).toBe(5);
});

it("manages aliases, rotates and schedules deletion", () => {
  const keyId = json<KeyJson>(["create-key", "--protection-level", "SOFTWARE"]).keyMetadata.keyId;
  const alias = `alias/cli-it-${Date.now()}`;
  expect(json<{ alias: { aliasName: string; keyId: string } }>(["alias", "create", alias, keyId]).alias).toMatchObject({ aliasName: alias, keyId });
  expect(kms(["alias", "list", "--key", keyId]).stdout).toBe(`${alias}\t${keyId}\n`);
  expect(json<KeyJson>(["describe-key", alias]).keyMetadata.keyId).toBe(keyId);
  const version = json<{ keyVersion: { keyId: string; keyVersionId: string } }>(["rotate", alias]);
  expect(version.keyVersion.keyId).toBe(keyId);
  expect(json<KeyJson>(["schedule-deletion", keyId, "--days", "7"]).keyMetadata.keyState).toBe("KEY_STATE_PENDING_DELETION");
  expect(json<KeyJson>(["cancel-deletion", keyId]).keyMetadata.keyState).toBe("KEY_STATE_DISABLED");
  expect(kms(["alias", "delete", alias]).code).toBe(0);
  expect(kms(["alias", "list", "--key", keyId]).stdout).toBe("");
});

it("re-encrypts a directory of envelope files under another key", () => {
  const oldKey = json<KeyJson>(["create-key", "--protection-level", "SOFTWARE"]).keyMetadata.keyId;
  const newKey = json<KeyJson>(["create-key", "--protection-level", "SOFTWARE"]).keyMetadata.keyId;
  const tree = path.join(dir, "tree");
  const plaintexts = [randomBytes(10), randomBytes(70_000), Buffer.alloc(0)];
  mkdirSync(path.join(tree, "sub"), { recursive: true });
  plaintexts.forEach((p, i) => {
    expect(kms(["encrypt", "--key", oldKey, "--out", path.join(tree, i === 1 ? "sub" : "", `f${i}.kmse`)], p).code).toBe(0);
  });
  writeFileSync(path.join(tree, "notes.txt"), "not encrypted");
  const res = json<{ reencrypted: number; skipped: number }>(["reencrypt-dir", tree, "--key", newKey]);
  expect(res).toMatchObject({ reencrypted: 3, skipped: 1 });
  // Disable the old key: the files must now decrypt under the new one alone.
  json(["disable-key", oldKey]);
  plaintexts.forEach((p, i) => {
    const back = kms(["decrypt", "--in", path.join(tree, i === 1 ? "sub" : "", `f${i}.kmse`)]);
    expect(back.code).toBe(0);
    expect(back.raw.equals(p)).toBe(true);
  });
  expect(readFileSync(path.join(tree, "notes.txt"), "utf8")).toBe("not encrypted");
});

it("runs as `npx kms` and `npm exec kms` from the repository, as the README writes it", () => {
  const root = path.join(__dirname, "..", "..");
  for (const command of [["npx", "--no-install", "kms", "--help"], ["npm", "exec", "--no", "kms", "--", "--help"]]) {
    const res = spawnSync(command[0]!, command.slice(1), { cwd: root, env: { ...process.env, KMS_ADDR: "" } });
    expect({ command: command.join(" "), code: res.status, usage: res.stdout.toString().split("\n")[0] }).toEqual({
      command: command.join(" "),
      code: 0,
      usage: "Usage: kms [options] [command]",
    });
  }
});

it("creates, lists, retires and revokes grants; --dry-run checks without doing", () => {
  const keyId = json<KeyJson>(["create-key", "--protection-level", "SOFTWARE"]).keyMetadata.keyId;
  const dry = kms(["grant", "create", keyId, "--grantee", "cn:bob", "--operation", "Encrypt", "--dry-run"]);
  expect([dry.code, dry.stdout, dry.stderr]).toEqual([0, "dry run: the call would succeed (nothing was done)\n", ""]);
  expect(json<{ grants?: unknown[] }>(["grant", "list", keyId]).grants ?? []).toEqual([]);

  const args = ["grant", "create", keyId, "--grantee", "cn:bob", "--operation", "Encrypt", "--operation", "Decrypt", "--retiring", "cn:carol", "--context-subset", "app=x", "--name", "cli"];
  const made = json<{ grantId: string; grantToken: string }>(args);
  expect(json<{ grantId: string }>(args).grantId).toBe(made.grantId);
  const listed = kms(["grant", "list", keyId]);
  expect(listed.stdout).toBe(`${made.grantId}\tcn:bob\tEncrypt,Decrypt\tcn:carol\tcli\n`);
  const retirable = json<{ grants: { grantId: string }[] }>(["grant", "list-retirable", "--principal", "cn:carol"]);
  expect(retirable.grants.map((g) => g.grantId)).toContain(made.grantId);
  expect(kms(["grant", "create", keyId, "--grantee", "cn:bob", "--operation", "CreateGrant"]).code).toBe(3);

  expect(kms(["grant", "retire", "--token", made.grantToken, "--dry-run"]).code).toBe(0);
  expect(json<{ grantId: string }>(["grant", "retire", "--token", made.grantToken]).grantId).toBe(made.grantId);
  const second = json<{ grantId: string }>(["grant", "create", keyId, "--grantee", "cn:bob", "--operation", "GenerateMac"]);
  expect(kms(["grant", "revoke", keyId, second.grantId, "--dry-run"]).code).toBe(0);
  expect(json<{ revoked: string }>(["grant", "revoke", keyId, second.grantId]).revoked).toBe(second.grantId);
  const gone = kms(["grant", "revoke", keyId, second.grantId]);
  expect([gone.code, gone.stderr.startsWith("kms: NOT_FOUND (Forbidden.GrantNotFound)")]).toEqual([2, true]);
  expect(kms(["grant", "retire", "--key", keyId]).code).toBe(3);
});

it("--dry-run on encrypt --raw, generate-data-key and sign: exit 0 and no result when it would succeed, the real failure when not", () => {
  const keyId = json<KeyJson>(["create-key", "--protection-level", "SOFTWARE"]).keyMetadata.keyId;
  const enc = kms(["encrypt", "--raw", "--dry-run", "--key", keyId], Buffer.from("x"));
  expect([enc.code, enc.stdout]).toEqual([0, "dry run: the call would succeed (nothing was done)\n"]);
  expect(json<{ dryRun: boolean; wouldSucceed: boolean }>(["generate-data-key", "--key", keyId, "--dry-run"])).toEqual({ dryRun: true, wouldSucceed: true });
  expect(kms(["encrypt", "--dry-run", "--key", keyId], Buffer.from("x")).code).toBe(1); // needs --raw
  const wrongUsage = kms(["sign", "--dry-run", "--key", keyId, "--algorithm", "ECDSA_SHA_256", "--digest", "00".repeat(32)]);
  expect([wrongUsage.code, wrongUsage.stderr.startsWith("kms: FAILED_PRECONDITION (Rejected.KeyUsage)")]).toEqual([4, true]);
  json<KeyJson>(["disable-key", keyId]);
  const disabled = kms(["generate-data-key", "--key", keyId, "--dry-run"]);
  expect([disabled.code, disabled.stdout, disabled.stderr.startsWith("kms: FAILED_PRECONDITION (Rejected.Disabled)")]).toEqual([4, "", true]);
});
