// CRC32C (Castagnoli, RFC 3720 / iSCSI), as Google Cloud KMS's *_crc32c fields carry it. From
// @node-rs/crc32: napi-rs bindings to the Rust crc32c crate, which uses the CPU's CRC32 instructions
// (SSE 4.2 on x86-64, the ARMv8 CRC extension) and a table fallback; prebuilt for every platform we
// deploy on (glibc and musl, x64 and arm64), so nothing is compiled at install.
import { crc32c as nativeCrc32c } from "@node-rs/crc32";

/** The CRC32C of `bytes`, as an unsigned 32-bit number. */
export function crc32c(bytes: Uint8Array): number {
  return nativeCrc32c(bytes) >>> 0;
}
