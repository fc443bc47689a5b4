// Private-key operations off the event loop (private-key-threads.ts): RSA against node:crypto's own
// public-key operations, ML-DSA against its verification. Order, not time: an operation's answer comes
// only after the event loop has run other work.
import { constants, generateKeyPairSync, publicDecrypt, publicEncrypt, randomBytes } from "node:crypto";
import { mlDsaFromSeed, mlDsaPublicKeyOf, mlDsaVerify } from "../asymmetric/ml-dsa";
import { PrivateKeyOperationError, PrivateKeyThreads } from "./private-key-threads";

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 4096 });
const threads = new PrivateKeyThreads(2);
afterAll(() => threads.stop());

/** An encoded message of the modulus length below the modulus (leading zero byte). */
function message(fill: number): Buffer {
  const em = Buffer.alloc(512, fill);
  em[0] = 0;
  return em;
}

it("m^d mod n on a thread: the public operation gives the message back", async () => {
  const em = message(7);
  const signature = await threads.raw(privateKey, em);
  expect(publicDecrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, signature).equals(em)).toBe(true);
});

it("the event loop runs other work while eight RSA-4096 operations are on the threads", async () => {
  const order: string[] = [];
  const ops = Array.from({ length: 8 }, (_, i) =>
    threads.raw(privateKey, message(i + 1)).then(() => {
      order.push(`rsa ${i}`);
    }),
  );
  setImmediate(() => order.push("immediate"));
  await Promise.all(ops);
  expect(order[0]).toBe("immediate");
  expect(order).toHaveLength(9);
});

it("RSAES-OAEP decryption on a thread; a ciphertext OpenSSL refuses is PrivateKeyOperationError", async () => {
  const sealed = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, Buffer.from("hello"));
  expect((await threads.oaepDecrypt(privateKey, "sha256", sealed)).toString()).toBe("hello");
  const flipped = Buffer.from(sealed);
  flipped[100]! ^= 1;
  await expect(threads.oaepDecrypt(privateKey, "sha256", flipped)).rejects.toBeInstanceOf(PrivateKeyOperationError);
  // The other hash: refused the same way, not by a different error.
  await expect(threads.oaepDecrypt(privateKey, "sha1", sealed)).rejects.toBeInstanceOf(PrivateKeyOperationError);
});

it("a view into a larger buffer: the operation uses exactly its bytes", async () => {
  const slab = Buffer.alloc(2048, 0xee);
  const em = message(9);
  em.copy(slab, 1024);
  const view = slab.subarray(1024, 1536);
  const signature = await threads.raw(privateKey, view);
  expect(publicDecrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, signature).equals(em)).toBe(true);
});

it("threads stopped with operations in flight: those fail, the next ones run on new threads", async () => {
  const inFlight = threads.raw(privateKey, message(3));
  await threads.stop();
  await expect(inFlight).rejects.toThrow(/private-key thread stopped/);
  const em = message(4);
  expect(publicDecrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, await threads.raw(privateKey, em)).equals(em)).toBe(true);
});

describe("ML-DSA-65 signing on a thread", () => {
  const { privateKey: mlDsaKey, spki } = mlDsaFromSeed(65, randomBytes(32));
  const publicKey65 = mlDsaPublicKeyOf(spki, 65)!;
  afterAll(() => mlDsaKey.wipe());

  it("a message's signature verifies, for that message only; the caller's secret key is left intact", async () => {
    const before = Buffer.from(mlDsaKey.secretKey);
    const message = Buffer.from("signed on a thread");
    const signature = await threads.mlDsaSign(65, mlDsaKey.secretKey, { kind: "message", message });
    expect(mlDsaVerify(65, publicKey65, { kind: "message", message }, signature)).toBe(true);
    expect(mlDsaVerify(65, publicKey65, { kind: "message", message: Buffer.from("another") }, signature)).toBe(false);
    expect(Buffer.from(mlDsaKey.secretKey).equals(before)).toBe(true); // the thread wiped its own copy only
  });

  it("an external μ's signature verifies as one", async () => {
    const mu = randomBytes(64);
    const signature = await threads.mlDsaSign(65, mlDsaKey.secretKey, { kind: "external-mu", mu });
    expect(mlDsaVerify(65, publicKey65, { kind: "external-mu", mu }, signature)).toBe(true);
  });

  it("the event loop runs other work while eight signatures are on the threads", async () => {
    const order: string[] = [];
    const ops = Array.from({ length: 8 }, (_, i) =>
      threads.mlDsaSign(65, mlDsaKey.secretKey, { kind: "message", message: Buffer.from([i]) }).then(() => {
        order.push(`ml-dsa ${i}`);
      }),
    );
    setImmediate(() => order.push("immediate"));
    await Promise.all(ops);
    expect([order[0], order.length]).toEqual(["immediate", 9]);
  });
});
