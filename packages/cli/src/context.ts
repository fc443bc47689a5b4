// What every command gets: a connected KmsClient and the global flags.
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { KmsClient, clientCredentials } from "@kms/client";
import { positiveInt } from "./parse";

export interface Globals {
  address: string;
  json?: boolean;
  deadlineMs?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** False with --no-crc32c. */
  crc32c?: boolean;
}

export interface Ctx {
  client: KmsClient;
  json: boolean;
}

export const DEFAULT_ADDRESS = "127.0.0.1:7300";

function connect(globals: Globals): KmsClient {
  // TLS when a CA is given (mTLS when a client certificate is too); plaintext for the loopback dev mode.
  const channel = clientCredentials(
    globals.tlsCa
      ? {
          ca: readFileSync(globals.tlsCa),
          ...(globals.tlsKey ? { key: readFileSync(globals.tlsKey) } : {}),
          ...(globals.tlsCert ? { cert: readFileSync(globals.tlsCert) } : {}),
        }
      : undefined,
  );
  return new KmsClient({
    address: globals.address,
    ...(channel ? { credentials: channel } : {}),
    ...(globals.deadlineMs ? { deadlineMs: positiveInt("--deadline-ms", globals.deadlineMs) } : {}),
    crc32c: globals.crc32c !== false,
  });
}

/** Wraps a command's action: commander passes (...positional args, options, command). */
export function handler<A extends unknown[]>(fn: (ctx: Ctx, ...args: A) => Promise<void>): (...raw: unknown[]) => Promise<void> {
  return async (...raw) => {
    const command = raw[raw.length - 1] as Command;
    const globals = command.optsWithGlobals<Globals>();
    const client = connect(globals);
    try {
      await fn({ client, json: globals.json === true }, ...(raw.slice(0, -1) as A));
    } finally {
      client.close();
    }
  };
}
