// The AWS API's access keys (KMS_AWS_ACCESS_KEYS_FILE): one `<access key id> <secret access key>
// <principal>` a line, blank lines and `#` comments allowed. The file must not be readable by group or
// others (it holds secrets). It is reloaded when it changes (the directory is watched, so an editor's or a
// Secret's atomic replace is seen) and on SIGHUP; a reload that fails keeps the keys already loaded.
// Secrets are never logged.
import { readFileSync, statSync, watch } from "node:fs";
import type { FSWatcher } from "node:fs";
import path from "node:path";
import { isReservedPrincipal } from "../../auth/principals";
import type { Logger } from "@kms/telemetry";
import { describeError } from "@kms/telemetry";

export interface AccessKey {
  accessKeyId: string;
  secretAccessKey: string;
  principal: string;
}

export class AccessKeysError extends Error {
  override readonly name = "AccessKeysError";
}

const ACCESS_KEY_ID = /^[A-Z0-9]{16,128}$/;
const SECRET = /^[\x21-\x7e]{16,128}$/;
const PRINCIPAL = /^[^\s,*\u0000-\u001f]{1,256}$/;

/** The keys a file's text holds (throws AccessKeysError naming the line, never its secret). */
export function parseAccessKeys(text: string): Map<string, AccessKey> {
  const keys = new Map<string, AccessKey>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const where = `line ${index + 1}`;
    const fields = line.split(/\s+/);
    if (fields.length !== 3) throw new AccessKeysError(`${where}: expected "<access key id> <secret access key> <principal>"`);
    const [accessKeyId, secretAccessKey, principal] = fields as [string, string, string];
    if (!ACCESS_KEY_ID.test(accessKeyId)) throw new AccessKeysError(`${where}: the access key id must be 16 to 128 of A-Z and 0-9`);
    if (!SECRET.test(secretAccessKey)) throw new AccessKeysError(`${where}: the secret must be 16 to 128 printable characters`);
    if (!PRINCIPAL.test(principal) || isReservedPrincipal(principal)) {
      throw new AccessKeysError(`${where}: the principal must be a name without spaces, commas or "*", outside the cn: and kms: namespaces`);
    }
    if (keys.has(accessKeyId)) throw new AccessKeysError(`${where}: access key id ${accessKeyId} is listed twice`);
    keys.set(accessKeyId, { accessKeyId, secretAccessKey, principal });
  });
  return keys;
}

/** Reads the file, refusing one that group or others may read (or write). */
export function readAccessKeys(file: string): Map<string, AccessKey> {
  let mode: number;
  let text: string;
  try {
    mode = statSync(file).mode;
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new AccessKeysError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
  if ((mode & 0o077) !== 0) {
    throw new AccessKeysError(`${file} is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  }
  try {
    return parseAccessKeys(text);
  } catch (err) {
    throw new AccessKeysError(`${file}: ${(err as Error).message}`);
  }
}

export class AccessKeys {
  private keys: Map<string, AccessKey>;
  private watcher: FSWatcher | undefined;
  private pending: NodeJS.Timeout | undefined;
  private readonly onHangup = () => this.reload("SIGHUP");

  /** Loads the file now (throws AccessKeysError: the listener must not start without it). */
  constructor(
    readonly file: string,
    private readonly log: Logger,
  ) {
    this.keys = readAccessKeys(file);
  }

  get(accessKeyId: string): AccessKey | undefined {
    return this.keys.get(accessKeyId);
  }

  get size(): number {
    return this.keys.size;
  }

  /** Reloads on changes to the file and on SIGHUP until stop(). */
  watch(): void {
    const name = path.basename(this.file);
    this.watcher = watch(path.dirname(this.file), (_event, changed) => {
      if (changed !== null && changed !== name) return;
      clearTimeout(this.pending); // an editor's save is several events: reload once they settle
      this.pending = setTimeout(() => this.reload("change"), 50);
    });
    this.watcher.on("error", (err) => this.log.error("watching the AWS access keys file failed; reload it with SIGHUP", { file: this.file, ...describeError(err) }));
    process.on("SIGHUP", this.onHangup);
  }

  /** Reads the file again; if it cannot be used, the keys loaded before stay in force. */
  reload(reason: string): boolean {
    try {
      this.keys = readAccessKeys(this.file);
      this.log.info("AWS access keys loaded", { file: this.file, keys: this.keys.size, reason });
      return true;
    } catch (err) {
      this.log.error("AWS access keys file not reloaded; the keys loaded before stay in force", { reason, problem: (err as Error).message });
      return false;
    }
  }

  stop(): void {
    clearTimeout(this.pending);
    this.watcher?.close();
    process.off("SIGHUP", this.onHangup);
  }
}
