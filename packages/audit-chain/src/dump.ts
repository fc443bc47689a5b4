// Reads audit rows out of a plain-format pg_dump (or `COPY audit_events TO STDOUT`) so the chain can
// be verified offline, with no database and no KMS running.
import type { ChainedRow } from "./index";

/** COPY text format: tab-separated, \N for NULL, backslash escapes. */
function unescapeCopy(value: string): string | null {
  if (value === "\\N") return null;
  return value.replace(/\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)/g, (_, e: string) => {
    switch (e[0]) {
      case "b": return "\b";
      case "f": return "\f";
      case "n": return "\n";
      case "r": return "\r";
      case "t": return "\t";
      case "v": return "\v";
      case "x": return String.fromCharCode(parseInt(e.slice(1), 16));
      default: return /^[0-7]+$/.test(e) ? String.fromCharCode(parseInt(e, 8)) : e;
    }
  });
}

/** "2026-11-28 10:40:33.506+00" (Postgres text output) → Date. */
function parseTimestamp(text: string): Date {
  const iso = text.replace(" ", "T").replace(/([+-]\d\d)$/, "$1:00");
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) throw new Error(`cannot read timestamp ${JSON.stringify(text)}`);
  return d;
}

function parseBytea(text: string): Buffer {
  if (!text.startsWith("\\x")) throw new Error("bytea not in hex format");
  return Buffer.from(text.slice(2), "hex");
}

export interface DumpContents {
  rows: ChainedRow[];
  head: { sequence: number; hash: Buffer } | undefined;
}

/** Finds the COPY blocks of audit_events and audit_head in `text`. */
export function readDump(text: string): DumpContents {
  const lines = text.split("\n");
  const rows: ChainedRow[] = [];
  let head: DumpContents["head"];
  for (let i = 0; i < lines.length; i++) {
    const m = /^COPY (?:\w+\.)?(audit_events|audit_head) \(([^)]*)\) FROM stdin;$/.exec(lines[i] ?? "");
    if (!m) continue;
    const table = m[1];
    const columns = (m[2] ?? "").split(",").map((c) => c.trim().replace(/"/g, ""));
    for (i++; i < lines.length && lines[i] !== "\\."; i++) {
      const values = (lines[i] ?? "").split("\t").map(unescapeCopy);
      const get = (name: string) => {
        const v = values[columns.indexOf(name)];
        if (v === undefined || v === null) throw new Error(`${table} row without ${name}`);
        return v;
      };
      if (table === "audit_head") {
        head = { sequence: Number(get("sequence")), hash: parseBytea(get("hash")) };
        continue;
      }
      rows.push({
        sequence: Number(get("sequence")),
        time: parseTimestamp(get("time")),
        requestId: get("request_id"),
        principal: get("principal"),
        operation: get("operation"),
        keyId: get("key_id"),
        keyVersionId: get("key_version_id"),
        resultCode: get("result_code"),
        errorCode: get("error_code"),
        encryptionContext: JSON.parse(get("encryption_context")) as Record<string, string>,
        // Columns a dump made before migration 9 does not have; the hash covers them only when set.
        ...(columns.includes("grant_id") && get("grant_id") !== "" ? { grantId: get("grant_id") } : {}),
        ...(columns.includes("dry_run") && get("dry_run") === "t" ? { dryRun: true } : {}),
        prevHash: parseBytea(get("prev_hash")),
        hash: parseBytea(get("hash")),
      });
    }
  }
  rows.sort((a, b) => a.sequence - b.sequence);
  return { rows, head };
}
