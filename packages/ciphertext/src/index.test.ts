import fc from "fast-check";
import { status } from "@grpc/grpc-js";
import { INVALID_CIPHERTEXT_MESSAGE, KmsError } from "@kms/errors";
import {
  HEADER_LENGTH,
  MIN_BLOB_LENGTH,
  assembleBlob,
  buildAad,
  bytesToUuid,
  canonicalContext,
  encodeHeader,
  parseBlob,
  validateEncryptionContext,
} from "./index";

const VERSION_ID = "0f8e2b9c-3d4a-4e5f-8a6b-7c8d9e0f1a2b";

function expectInvalidCiphertext(fn: () => unknown): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(KmsError);
  expect((thrown as KmsError).status).toBe(status.INVALID_ARGUMENT);
  expect((thrown as KmsError).message).toBe(INVALID_CIPHERTEXT_MESSAGE);
}

describe("blob", () => {
  const sealed = Buffer.alloc(12 + 5 + 16, 7);

  it("round-trips header and sealed part", () => {
    const blob = assembleBlob(encodeHeader(VERSION_ID), sealed);
    expect(blob[0]).toBe(1);
    expect(blob.length).toBe(HEADER_LENGTH + sealed.length);
    const parsed = parseBlob(blob);
    expect(parsed.keyVersionId).toBe(VERSION_ID);
    expect(parsed.header).toEqual(encodeHeader(VERSION_ID));
    expect(parsed.sealed).toEqual(sealed);
  });

  it("refuses every blob shorter than the minimum", () => {
    const blob = assembleBlob(encodeHeader(VERSION_ID), sealed);
    for (let n = 0; n < MIN_BLOB_LENGTH; n++) expectInvalidCiphertext(() => parseBlob(blob.subarray(0, n)));
  });

  it("refuses an unknown format version", () => {
    const blob = assembleBlob(encodeHeader(VERSION_ID), sealed);
    blob[0] = 2;
    expectInvalidCiphertext(() => parseBlob(blob));
  });

  it("refuses an oversized blob", () => {
    expectInvalidCiphertext(() => parseBlob(Buffer.alloc(7000, 1)));
  });

  it("never throws anything but the one error on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          const parsed = parseBlob(bytes);
          expect(parsed.header.length).toBe(HEADER_LENGTH);
        } catch (err) {
          expect((err as KmsError).message).toBe(INVALID_CIPHERTEXT_MESSAGE);
        }
      }),
    );
  });

  it("converts UUIDs both ways", () => {
    expect(bytesToUuid(encodeHeader(VERSION_ID).subarray(1))).toBe(VERSION_ID);
  });
});

describe("encryption context", () => {
  it("is canonical whatever the insertion order", () => {
    expect(canonicalContext({ b: "2", a: "1" })).toEqual(canonicalContext({ a: "1", b: "2" }));
  });

  it("has a fixed encoding", () => {
    expect(canonicalContext({ a: "xy" }).toString("hex")).toBe("00000001" + "00000001" + "61" + "00000002" + "7879");
    expect(canonicalContext({}).toString("hex")).toBe("00000000");
  });

  it("tells apart contexts that concatenate the same", () => {
    expect(canonicalContext({ ab: "c" })).not.toEqual(canonicalContext({ a: "bc" }));
    expect(canonicalContext({ a: "" })).not.toEqual(canonicalContext({}));
  });

  it("is order-independent and injective (property)", () => {
    const ctx = fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 5 });
    fc.assert(
      fc.property(ctx, ctx, (x, y) => {
        const reversed = Object.fromEntries(Object.entries(x).reverse());
        expect(canonicalContext(reversed)).toEqual(canonicalContext(x));
        const same = JSON.stringify(Object.entries(x).sort()) === JSON.stringify(Object.entries(y).sort());
        expect(canonicalContext(x).equals(canonicalContext(y))).toBe(same);
      }),
    );
  });

  it("binds the header into the AAD", () => {
    const aad = buildAad(encodeHeader(VERSION_ID), { k: "v" });
    expect(aad.subarray(0, HEADER_LENGTH)).toEqual(encodeHeader(VERSION_ID));
    expect(aad.subarray(HEADER_LENGTH)).toEqual(canonicalContext({ k: "v" }));
  });

  it("validates keys, size and UTF-8", () => {
    expect(() => validateEncryptionContext({ "": "v" })).toThrow("encryption_context: keys must not be empty");
    expect(() => validateEncryptionContext({ k: "x".repeat(8192) })).toThrow(
      "encryption_context: keys and values together must be at most 8192 characters",
    );
    expect(() => validateEncryptionContext({ k: "x".repeat(8191) })).not.toThrow();
    expect(() => validateEncryptionContext({ k: "\uD800" }, "source_encryption_context")).toThrow(
      "source_encryption_context: keys and values must be valid UTF-8",
    );
    expect(() => validateEncryptionContext({ "😀": "é" })).not.toThrow();
    expect(() => validateEncryptionContext({ k: "a\u0000" })).toThrow("encryption_context: keys and values must not contain U+0000");
    expect(() => validateEncryptionContext({ "\u0000": "v" })).toThrow("encryption_context: keys and values must not contain U+0000");
  });
});
