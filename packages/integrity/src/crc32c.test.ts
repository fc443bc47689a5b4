// The CRC32C library against RFC 3720's test vectors (appendix B.4, iSCSI) and the CRC catalogue's check value.
import { crc32c } from "./crc32c";

describe("crc32c", () => {
  it("gives RFC 3720's values", () => {
    const ascending = Uint8Array.from({ length: 32 }, (_, i) => i);
    const descending = Uint8Array.from({ length: 32 }, (_, i) => 31 - i);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(ascending)).toBe(0x46dd794e);
    expect(crc32c(descending)).toBe(0x113fdb5c);
  });

  it("gives the catalogue's check value and 0 for nothing", () => {
    expect(crc32c(new TextEncoder().encode("123456789"))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(0))).toBe(0);
  });

  it("reads only a view's own bytes", () => {
    const buffer = Uint8Array.from([9, 9, ...new Uint8Array(32), 9]);
    expect(crc32c(buffer.subarray(2, 34))).toBe(0x8a9136aa);
  });
});
