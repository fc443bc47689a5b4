// "Who wraps" without a PKCS#11 module: a 32-byte root key in a 0600 file stands in for the HSM. New
// material is format 2 (wrapped-format.ts), as on the PKCS#11 root: wrapped under a key derived from the
// file's key, and tagged with another derived key over its version id, spec and level, so a blob cannot be
// presented as another version or spec. Material wrapped directly under the file's key by earlier releases
// (format 1, the legacy root id) still unwraps; its spec is taken from the caller.
import { createHash, createHmac, createSecretKey, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import path from "node:path";
import { unwrapFailed } from "../backend";
import type { AcceptedRoots, CheckedKey } from "../backend";
import { wipe } from "../bytes";
import { joinFormat2, tagInput } from "../wrapped-format";
import type { Binding } from "../wrapped-format";
import { kwpUnwrap, kwpWrap, UnwrapError } from "./key-wrap";

const ROOT_KEY_BYTES = 32;

/** The keys made from the root file. */
interface SoftwareRoots {
  /** The file's key: unwraps format 1 only. */
  legacy: KeyObject;
  legacyId: string;
  wrap: KeyObject;
  mac: KeyObject;
  id: string;
}

/**
 * Root key id of format 1 material (wrapped directly under the file's key): derived from the key (never the
 * key itself), so the same file always gives the same id.
 */
export function softwareRootKeyId(rootKey: Buffer): string {
  return createHash("sha256").update("kms-root-key-id").update(rootKey).digest().subarray(0, 16).toString("hex");
}

/** Root key id of format 2 material: another id, because it is other keys (derived below). */
export function softwareRootKeyIdV2(rootKey: Buffer): string {
  return createHash("sha256").update("kms-root-key-id-v2").update(rootKey).digest().subarray(0, 16).toString("hex");
}

/** A key derived from the file's key for one purpose (HKDF-SHA256, RFC 5869). */
function derivedKey(rootKey: Buffer, purpose: string): KeyObject {
  const bytes = Buffer.from(hkdfSync("sha256", rootKey, Buffer.alloc(0), `kms software root v2 ${purpose}`, 32));
  try {
    return createSecretKey(bytes);
  } finally {
    wipe(bytes);
  }
}

/** Reads `${dataDir}/root-key`, creating it (0600, directory 0700) on first start. */
function loadOrCreateRootKey(file: string): Buffer {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  let fd: number;
  try {
    // "wx": exactly one process creates the key, even when two start at once.
    fd = openSync(file, "wx", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    return readRootKey(file);
  }
  const key = randomBytes(ROOT_KEY_BYTES);
  try {
    writeSync(fd, key);
  } finally {
    closeSync(fd);
  }
  return key;
}

function readRootKey(file: string): Buffer {
  const fd = openSync(file, "r");
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new Error(`root key file ${file} has mode ${mode.toString(8)}; it must be readable by its owner only (chmod 600)`);
    }
    const key = readFileSync(fd);
    if (key.length !== ROOT_KEY_BYTES) {
      wipe(key);
      throw new Error(`root key file ${file} must hold ${ROOT_KEY_BYTES} bytes, has ${key.length}`);
    }
    return key;
  } finally {
    closeSync(fd);
  }
}

export class FileRoot {
  private constructor(
    readonly file: string,
    private readonly roots: SoftwareRoots,
  ) {}

  /** Opens (or creates) the root key under `dataDir`. */
  static open(dataDir: string): FileRoot {
    const file = path.join(dataDir, "root-key");
    return FileRoot.fromKey(file, loadOrCreateRootKey(file));
  }

  /** Opens an existing root file, never creating one (a source root being moved onto an HSM). */
  static openExisting(file: string): FileRoot {
    return FileRoot.fromKey(file, readRootKey(file));
  }

  /** Takes the raw key (and wipes it). */
  private static fromKey(file: string, raw: Buffer): FileRoot {
    try {
      return new FileRoot(file, {
        legacy: createSecretKey(raw),
        legacyId: softwareRootKeyId(raw),
        wrap: derivedKey(raw, "wrap"),
        mac: derivedKey(raw, "mac"),
        id: softwareRootKeyIdV2(raw),
      });
    } finally {
      wipe(raw);
    }
  }

  get ids(): AcceptedRoots {
    return { current: this.roots.id, legacy: this.roots.legacyId, others: [] };
  }

  /** Format 2: wrapped under the derived wrapping key, tagged for `binding`. */
  seal(material: Buffer, binding: Binding): Buffer {
    const kwp = kwpWrap(this.roots.wrap, material);
    return joinFormat2(kwp, this.tag(binding, kwp));
  }

  /** A checked key's raw material: format 2 after its tag matched, format 1 under the file's key. The caller wipes it. */
  unwrapMaterial(checked: CheckedKey, field: string): Buffer {
    if (checked.format === "v2") {
      const expected = this.tag(checked, checked.kwp);
      if (!timingSafeEqual(expected, checked.tag)) throw unwrapFailed(field);
    }
    try {
      return kwpUnwrap(checked.format === "v2" ? this.roots.wrap : this.roots.legacy, checked.kwp);
    } catch (err) {
      if (err instanceof UnwrapError) throw unwrapFailed(field);
      throw err;
    }
  }

  legacyWrap(material: Buffer): Buffer {
    return kwpWrap(this.roots.legacy, material);
  }

  private tag(binding: Binding, kwp: Buffer): Buffer {
    return createHmac("sha256", this.roots.mac).update(tagInput(binding, kwp)).digest();
  }
}
