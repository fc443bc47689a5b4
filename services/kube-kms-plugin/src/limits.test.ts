import { LimitError, MAX_ANNOTATIONS_BYTES, checkAnnotations, checkCiphertext, checkKeyId, checkPlaintext, isFullyQualifiedDomainName, loggedUid } from "./limits";

function refusal(check: () => void): string {
  try {
    check();
  } catch (err) {
    if (err instanceof LimitError) return err.message;
    throw err;
  }
  return "accepted";
}

describe("KMS v2 limits", () => {
  it("accepts the sizes kube-apiserver uses and refuses what it would refuse", () => {
    expect(refusal(() => checkCiphertext(Buffer.alloc(1024)))).toBe("accepted");
    expect(refusal(() => checkCiphertext(Buffer.alloc(1025)))).toBe("ciphertext: must be at most 1024 bytes, got 1025");
    expect(refusal(() => checkCiphertext(Buffer.alloc(0)))).toBe("ciphertext: must not be empty");
    expect(refusal(() => checkPlaintext(Buffer.alloc(32)))).toBe("accepted");
    expect(refusal(() => checkPlaintext(Buffer.alloc(513)))).toBe("plaintext: must be at most 512 bytes, got 513");
    expect(refusal(() => checkKeyId("k".repeat(1024)))).toBe("accepted");
    expect(refusal(() => checkKeyId("é".repeat(513)))).toBe("key_id: must be at most 1024 bytes, got 1026");
  });

  it("counts annotation keys and values together against 32 KiB", () => {
    const key = "kms.example.org";
    expect(refusal(() => checkAnnotations({ [key]: Buffer.alloc(MAX_ANNOTATIONS_BYTES - key.length) }))).toBe("accepted");
    expect(refusal(() => checkAnnotations({ [key]: Buffer.alloc(MAX_ANNOTATIONS_BYTES - key.length + 1) }))).toBe("annotations: must be at most 32768 bytes in total (keys and values), got 32769");
    expect(refusal(() => checkAnnotations({ "a.example.org": Buffer.alloc(20000), "b.example.org": Buffer.alloc(20000) }))).toBe("annotations: must be at most 32768 bytes in total (keys and values), got 40026");
  });

  it("wants annotation keys that are fully qualified domain names", () => {
    expect(["version.encryption.example.io", "a.b", "x-1.example.org."].map(isFullyQualifiedDomainName)).toEqual([true, true, true]);
    expect(["localhost", "Upper.example.org", "under_score.io", "-a.io", "a..io", "", `${"a".repeat(64)}.io`, `${"a.".repeat(127)}io`].map(isFullyQualifiedDomainName)).toEqual([false, false, false, false, false, false, false, false]);
    expect(refusal(() => checkAnnotations({ key: Buffer.from("v") }))).toBe('annotations: key "key" is not a fully qualified domain name');
  });

  it("bounds and cleans the uid it logs", () => {
    expect(loggedUid("1b4e28ba-2fa1-11d2-883f-0016d3cca427")).toBe("1b4e28ba-2fa1-11d2-883f-0016d3cca427");
    expect(loggedUid("a\nb\u0000c")).toBe("a?b?c");
    expect(loggedUid("u".repeat(500))).toBe("u".repeat(128));
  });
});
