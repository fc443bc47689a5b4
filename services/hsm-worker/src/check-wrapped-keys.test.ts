// CheckWrappedKeys over the worker's gRPC socket, on a SoftHSM2 token and on the software root: every spec
// and level checks OK without being cached; tampered, re-labelled and foreign material gets its own result;
// a worker without a root key reports every key's root as missing.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import type { Server, ServiceError } from "@grpc/grpc-js";
import { createPromiseClient, kmsResources } from "@kms/proto";
import type { PromiseClient } from "@kms/proto";
import { hsm } from "@kms/proto/internal";
import type { Backend } from "./backend";
import { MAX_CHECKED_KEYS } from "./check-wrapped-keys";
import { HsmBackend } from "./pkcs11/hsm-backend";
import type { HsmBackendOptions } from "./pkcs11/hsm-backend";
import { createHsmWorkerServer, listen, shutdown } from "./server";
import { SoftwareRootBackend } from "./software/software-root";
import { createTestToken } from "./testing/softhsm-token";
import type { TestToken } from "./testing/softhsm-token";

jest.setTimeout(60_000);

const { KeySpec, ProtectionLevel } = kmsResources;
const { WrappedKeyCondition } = hsm;
type Client = PromiseClient<(typeof hsm.HsmWorkerService)["method"]>;

let dir: string;
let token: TestToken;
let options: HsmBackendOptions;
const opened: { server: Server; client: Client; backend: Backend }[] = [];

async function serve(backend: Backend): Promise<{ client: Client; backend: Backend }> {
  const server = createHsmWorkerServer(backend);
  const socket = path.join(dir, `run-${opened.length}`, "worker.sock");
  await listen(server, socket);
  const client = createPromiseClient(hsm.HsmWorkerService, `unix://${socket}`);
  opened.push({ server, client, backend });
  return { client, backend };
}

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "check-wrapped-keys-"));
  token = createTestToken("check-wrapped-keys");
  options = { module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 2, rootKeyLabel: "check-root", keyCacheSize: 8 };
});

afterAll(async () => {
  for (const o of opened) {
    o.client.close();
    await shutdown(o.server);
    await o.backend.close();
  }
  token.remove();
  rmSync(dir, { recursive: true, force: true });
});

async function stored(client: Client, keyVersionId: string, keySpec: kmsResources.KeySpec, protectionLevel: kmsResources.ProtectionLevel): Promise<hsm.WrappedKey> {
  const made = await client.generateKeyMaterial({ keySpec, protectionLevel, label: keyVersionId, keyVersionId });
  return create(hsm.WrappedKeySchema, { keyVersionId, keySpec, protectionLevel, wrappedMaterial: made.wrappedMaterial, rootKeyId: made.rootKeyId });
}

async function grpcCode(promise: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await promise;
  } catch (err) {
    return { code: (err as ServiceError).code, details: (err as ServiceError).details };
  }
  throw new Error("expected the call to fail");
}

const SPECS = [KeySpec.AES_256, KeySpec.AES_128, KeySpec.HMAC_SHA256, KeySpec.HMAC_SHA512, KeySpec.RSA_2048, KeySpec.EC_P256, KeySpec.EC_P384, KeySpec.EC_P256K, KeySpec.ED25519];

describe("on a PKCS#11 token", () => {
  let client: Client;
  let backend: HsmBackend;
  let rootKeyId: string;
  beforeAll(async () => {
    backend = await HsmBackend.open(options);
    ({ client } = await serve(backend));
    rootKeyId = backend.rootKeyId;
  });

  it("every spec at both levels is OK, and nothing is left cached or on the token", async () => {
    const keys: hsm.WrappedKey[] = [];
    for (const spec of SPECS) {
      keys.push(await stored(client, `sw-${spec}`, spec, ProtectionLevel.SOFTWARE));
      if (spec !== KeySpec.ED25519) keys.push(await stored(client, `hsm-${spec}`, spec, ProtectionLevel.HSM));
    }
    const before = await client.listTokenObjects({});
    const { results } = await client.checkWrappedKeys({ keys });
    expect(results.map((r) => [r.keyVersionId, r.condition, r.rootKeyId, r.problem])).toEqual(
      keys.map((k) => [k.keyVersionId, WrappedKeyCondition.OK, rootKeyId, ""]),
    );
    expect(backend.metrics().cachedKeys).toBe(0);
    expect((await client.listTokenObjects({})).objects).toEqual(before.objects);
  });

  it("tampered material, and material presented as another version, spec or level, is BAD; another root's is ROOT_MISSING naming it", async () => {
    const hsmKey = await stored(client, "kv-hsm", KeySpec.AES_256, ProtectionLevel.HSM);
    const rsa = await stored(client, "kv-rsa", KeySpec.RSA_2048, ProtectionLevel.SOFTWARE);
    const tampered = create(hsm.WrappedKeySchema, { ...rsa, wrappedMaterial: Buffer.from(rsa.wrappedMaterial).fill(9, 5, 13) });
    const moved = create(hsm.WrappedKeySchema, { ...hsmKey, keyVersionId: "kv-elsewhere" });
    const asSoftware = create(hsm.WrappedKeySchema, { ...hsmKey, protectionLevel: ProtectionLevel.SOFTWARE });
    const asHmac = create(hsm.WrappedKeySchema, { ...hsmKey, keySpec: KeySpec.HMAC_SHA256 });
    const foreign = create(hsm.WrappedKeySchema, { ...hsmKey, rootKeyId: "ab".repeat(16) });
    const { results } = await client.checkWrappedKeys({ keys: [hsmKey, tampered, moved, asSoftware, asHmac, foreign] });
    expect(results.map((r) => [r.keyVersionId, r.condition])).toEqual([
      ["kv-hsm", WrappedKeyCondition.OK],
      ["kv-rsa", WrappedKeyCondition.BAD],
      ["kv-elsewhere", WrappedKeyCondition.BAD],
      ["kv-hsm", WrappedKeyCondition.BAD],
      ["kv-hsm", WrappedKeyCondition.BAD],
      ["kv-hsm", WrappedKeyCondition.ROOT_MISSING],
    ]);
    expect(results[1]!.problem).toBe("keys[1].wrapped_material: does not unwrap under the root key");
    expect(results[5]).toMatchObject({ rootKeyId: "ab".repeat(16), problem: `wrapped under root key ${"ab".repeat(16)}, which this worker does not hold (it holds ${rootKeyId})` });
    // No answer carries material.
    for (const r of results) expect(r.problem).not.toContain(Buffer.from(hsmKey.wrappedMaterial).toString("hex").slice(0, 16));
  });

  it("a worker whose token has no root key (KMS_CREATE_ROOT_KEY false) reports ROOT_MISSING and creates none", async () => {
    const key = await stored(client, "kv-rootless", KeySpec.AES_256, ProtectionLevel.SOFTWARE);
    const rootless = await HsmBackend.open({ ...options, rootKeyLabel: "never-created", createRootKey: false });
    const { client: other } = await serve(rootless);
    const { results } = await other.checkWrappedKeys({ keys: [key] });
    expect(results.map((r) => [r.condition, r.rootKeyId, r.problem])).toEqual([
      [WrappedKeyCondition.ROOT_MISSING, rootKeyId, "this worker holds no root key (its token has none and KMS_CREATE_ROOT_KEY is not true)"],
    ]);
    const listing = await other.listTokenObjects({});
    expect(listing.objects.filter((o) => o.label.startsWith("never-created"))).toEqual([]);
  });

  it(`takes 1 to ${MAX_CHECKED_KEYS} keys a call`, async () => {
    expect(await grpcCode(client.checkWrappedKeys({ keys: [] }))).toEqual({ code: status.INVALID_ARGUMENT, details: `keys: must hold 1 to ${MAX_CHECKED_KEYS} keys, got 0` });
    const key = await stored(client, "kv-many", KeySpec.AES_256, ProtectionLevel.SOFTWARE);
    const many = Array.from({ length: MAX_CHECKED_KEYS + 1 }, () => key);
    expect((await grpcCode(client.checkWrappedKeys({ keys: many }))).code).toBe(status.INVALID_ARGUMENT);
  });
});

describe("on the software root", () => {
  it("SOFTWARE keys are OK; an HSM key and a malformed one are BAD", async () => {
    const backend = SoftwareRootBackend.open(path.join(dir, "software-root"), 4);
    const { client } = await serve(backend);
    const keys = [
      await stored(client, "sw-aes", KeySpec.AES_256, ProtectionLevel.SOFTWARE),
      await stored(client, "sw-ec", KeySpec.EC_P256, ProtectionLevel.SOFTWARE),
    ];
    const asHsm = create(hsm.WrappedKeySchema, { ...keys[0]!, protectionLevel: ProtectionLevel.HSM });
    const noSpec = create(hsm.WrappedKeySchema, { ...keys[1]!, keySpec: KeySpec.UNSPECIFIED });
    const { results } = await client.checkWrappedKeys({ keys: [...keys, asHsm, noSpec] });
    expect(results.map((r) => r.condition)).toEqual([WrappedKeyCondition.OK, WrappedKeyCondition.OK, WrappedKeyCondition.BAD, WrappedKeyCondition.BAD]);
    expect(results[3]!.problem).toBe("keys[3].key_spec: KEY_SPEC_UNSPECIFIED is not supported by the HSM worker");
    expect(backend.metrics().cachedKeys).toBe(0);
  });
});
