#!/usr/bin/env node
// kms: the command-line client. Every command is one or a few SDK calls; errors become the exit codes in
// exit-codes.ts, with the gRPC status, kms-error-code and request id on stderr.
import { Command, CommanderError } from "commander";
import { KmsClientError } from "@kms/client";
import { registerAdminCommands } from "./commands/admin";
import { registerAliasCommands } from "./commands/aliases";
import { registerAuditCommands } from "./commands/audit";
import { registerDataCommands } from "./commands/data";
import { registerDataKeyPairCommands } from "./commands/data-key-pairs";
import { registerGrantCommands } from "./commands/grants";
import { registerKeyAgreementCommands } from "./commands/key-agreement";
import { registerKeyCommands } from "./commands/keys";
import { registerReencryptDir } from "./commands/reencrypt-dir";
import { registerSigningCommands } from "./commands/signing";
import { DEFAULT_ADDRESS } from "./context";
import { EXIT, ExitWith, exitCodeFor } from "./exit-codes";

function buildProgram(): Command {
  const program = new Command("kms")
    .description("command-line client for the Key Management Service (kms.v1)")
    .option("--address <host:port>", "kms-api address (env KMS_ADDR)", process.env.KMS_ADDR || DEFAULT_ADDRESS)
    .option("--json", "machine-readable output (proto3 JSON) on stdout")
    .option("--deadline-ms <ms>", "deadline of each call (default 10000)")
    .option("--tls-ca <file>", "CA bundle: connect over TLS")
    .option("--tls-cert <file>", "client certificate for mTLS (with --tls-key)")
    .option("--tls-key <file>", "client private key for mTLS")
    .option("--no-crc32c", "do not send or check the CRC32C integrity fields (for a service that predates them)")
    .showHelpAfterError()
    // Usage errors reach main() as CommanderError (subcommands inherit this) rather than exiting inside commander.
    .exitOverride();
  registerKeyCommands(program);
  registerDataCommands(program);
  registerDataKeyPairCommands(program);
  registerKeyAgreementCommands(program);
  registerSigningCommands(program);
  registerAliasCommands(program);
  registerGrantCommands(program);
  registerAuditCommands(program);
  registerReencryptDir(program);
  registerAdminCommands(program);
  return program;
}

function report(err: unknown, json: boolean): void {
  if (err instanceof KmsClientError) {
    const fields = { code: err.codeName, kmsErrorCode: err.kmsErrorCode, requestId: err.requestId, message: err.message };
    if (json) process.stderr.write(JSON.stringify({ error: fields }) + "\n");
    else process.stderr.write(`kms: ${err.codeName}${err.kmsErrorCode ? ` (${err.kmsErrorCode})` : ""}: ${err.message}${err.requestId ? ` [request ${err.requestId}]` : ""}\n`);
    return;
  }
  const message = err instanceof Error ? err.message : String(err);
  if (json) process.stderr.write(JSON.stringify({ error: { message } }) + "\n");
  else process.stderr.write(`kms: ${message}\n`);
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has printed the problem (or the help / version text) already.
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    if (!(err instanceof ExitWith)) report(err, program.opts<{ json?: boolean }>().json === true);
    return exitCodeFor(err);
  }
}

void main(process.argv).then((code) => {
  process.exitCode = code;
});
