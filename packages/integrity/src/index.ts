// @kms/integrity: CRC32C end-to-end integrity of kms.v1 byte fields (Google Cloud KMS's *_crc32c
// fields and semantics; docs/integrity.md).
export { crc32c } from "./crc32c";
export { CHECKSUM_FIELDS } from "./table";
export type { ChecksumFields } from "./table";
export { integrityOf } from "./fields";
export type { Integrity } from "./fields";
export { checkRequestChecksums, fillResponseChecksums } from "./server";
export { IntegrityError, checkResponseChecksums, withRequestChecksums } from "./client";
