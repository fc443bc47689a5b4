// RSA private-key operations off the event loop (rsa-threads.ts), against node:crypto's own public-key
// operations. Order, not time: an operation's answer comes only after the event loop has run other work.
import { constants, generateKeyPairSync, publicDecrypt, publicEncrypt } from "node:crypto";
import { RsaOperationError, RsaThreads } from "./rsa-threads";

const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 4096 });
const threads = new RsaThreads(2);
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

it("RSAES-OAEP decryption on a thread; a ciphertext OpenSSL refuses is RsaOperationError", async () => {
  const sealed = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, Buffer.from("hello"));
  expect((await threads.oaepDecrypt(privateKey, "sha256", sealed)).toString()).toBe("hello");
  const flipped = Buffer.from(sealed);
  flipped[100]! ^= 1;
  await expect(threads.oaepDecrypt(privateKey, "sha256", flipped)).rejects.toBeInstanceOf(RsaOperationError);
  // The other hash: refused the same way, not by a different error.
  await expect(threads.oaepDecrypt(privateKey, "sha1", sealed)).rejects.toBeInstanceOf(RsaOperationError);
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
  await expect(inFlight).rejects.toThrow(/RSA thread stopped/);
  const em = message(4);
  expect(publicDecrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, await threads.raw(privateKey, em)).equals(em)).toBe(true);
});
