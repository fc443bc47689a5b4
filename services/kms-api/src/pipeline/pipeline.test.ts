// The pipeline's layers, with in-memory stand-ins for the audit writer and the refusal aggregator:
// what runs in which order, what the audit row records, which secrets are zeroed, and what a caller
// is told when something fails.
import { create, toBinary } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { ErrorCode, KmsError, invalidArgument } from "@kms/errors";
import { crc32c, integrityOf } from "@kms/integrity";
import type { AuditEvent } from "@kms/db";
import { kms } from "@kms/proto";
import { CallsInProgress } from "../calls-in-progress";
import type { Refusal } from "../refusals";
import type { CallContext, Services } from "../context";
import { dryRunStop } from "./dry-run";
import { operation } from "./operation";
import type { Handler } from "./operation";
import { OperationPipeline, newCallContext } from "./pipeline";
import type { Caller, IncomingCall } from "./pipeline";

const KEY_ID = "0b7e3a52-3c2d-4c47-9c55-5d1f0f6c1a11";
const ALICE: Caller = { principal: "alice", mutualTls: false };

interface Fakes {
  rows: AuditEvent[];
  refusals: Refusal[];
  logged: Record<string, unknown>[];
  auditFails: boolean;
}

function pipelineWith(fakes: Fakes): OperationPipeline {
  const services = {
    clock: () => new Date("2030-01-01T00:00:00Z"),
    calls: new CallsInProgress(),
    audit: {
      append: async (row: AuditEvent) => {
        if (fakes.auditFails) throw new Error("disk full");
        fakes.rows.push(row);
      },
    },
    refusals: { record: async (r: Refusal) => void fakes.refusals.push(r) },
    log: { error: (_m: string, f: Record<string, unknown> = {}) => void fakes.logged.push(f), warn: () => {}, info: () => {}, debug: () => {} },
  } as unknown as Services;
  return new OperationPipeline(services);
}

function fakes(): Fakes {
  return { rows: [], refusals: [], logged: [], auditFails: false };
}

const decryptMethod = kms.KeyManagementService.method.decrypt;
const encryptMethod = kms.KeyManagementService.method.encrypt;
/** An encoder that ignores the reply (the tests that use it look at the audit row or the failure). */
const encode = () => () => new Uint8Array(1);

function call<I>(request: I, steps: string[] = [], caller: Promise<Caller> = Promise.resolve(ALICE)): IncomingCall<never> {
  return {
    peer: "ipv4:10.0.0.1",
    identify: () => {
      steps.push("identify");
      return caller;
    },
    decode: () => {
      steps.push("decode");
      return request as never;
    },
  };
}

function ctxFor(name: string, auditName?: string): CallContext {
  return newCallContext("req-1", name, undefined, auditName);
}

describe("OperationPipeline", () => {
  it("identifies, decodes, handles, encodes and audits, in that order, naming the declared key", async () => {
    const f = fakes();
    const steps: string[] = [];
    const handle: Handler<typeof encryptMethod.input, typeof encryptMethod.output> = async (req, ctx) => {
      steps.push(`handle as ${ctx.principal}`);
      return { ciphertextBlob: Buffer.from("sealed"), keyId: req.keyId };
    };
    const op = operation(encryptMethod, handle, { keyId: (r) => r.keyId, encryptionContext: (r) => r.encryptionContext });
    const request = create(encryptMethod.input, { keyId: KEY_ID.toUpperCase(), plaintext: Buffer.from("p"), encryptionContext: { app: "x" } });
    const reply = await pipelineWith(f).invoke(op, ctxFor("Encrypt"), call(request, steps), (r) => {
      steps.push("encode");
      return toBinary(encryptMethod.output, create(encryptMethod.output, r));
    });
    expect(reply.length).toBeGreaterThan(0);
    expect(steps).toEqual(["identify", "decode", "handle as alice", "encode"]);
    expect(f.rows.map((r) => [r.operation, r.principal, r.keyId, r.encryptionContext, r.resultCode, r.errorCode])).toEqual([
      ["Encrypt", "alice", KEY_ID, { app: "x" }, "OK", ""],
    ]);
  });

  it("records the front's own name for the operation when it gives one", async () => {
    const f = fakes();
    const op = operation(decryptMethod, async () => ({ plaintext: Buffer.from("x") }));
    await pipelineWith(f).invoke(op, ctxFor("Decrypt", "TrentService.Decrypt"), call(create(decryptMethod.input, {})), encode());
    expect(f.rows.map((r) => r.operation)).toEqual(["TrentService.Decrypt"]);
  });

  it("zeroes the declared request secrets after the handler and the response secrets after encoding", async () => {
    const f = fakes();
    const plaintextIn = Buffer.from("secret in");
    const plaintextOut = Buffer.from("secret out");
    let seenByEncode = "";
    const op = operation(encryptMethod, async () => ({ ciphertextBlob: plaintextOut }), {
      requestSecrets: (r) => [r.plaintext],
      responseSecrets: (r) => [r.ciphertextBlob as Uint8Array],
    });
    await pipelineWith(f).invoke(op, ctxFor("Encrypt"), call(create(encryptMethod.input, { plaintext: plaintextIn })), (r) => {
      seenByEncode = Buffer.from(r.ciphertextBlob as Uint8Array).toString();
      return new Uint8Array(1);
    });
    expect(seenByEncode).toBe("secret out");
    expect([...plaintextIn].every((b) => b === 0)).toBe(true);
    expect([...plaintextOut].every((b) => b === 0)).toBe(true);
  });

  it("checks the declared CRC32Cs before the handler and fills the response's before encoding", async () => {
    const f = fakes();
    const steps: string[] = [];
    const op = operation(
      encryptMethod,
      async () => {
        steps.push("handle");
        return { ciphertextBlob: Buffer.from("sealed") };
      },
      { keyId: (r) => r.keyId, checksums: integrityOf("Encrypt")! },
    );
    const plaintext = Buffer.from("p");
    let encoded: Record<string, unknown> = {};
    await pipelineWith(f).invoke(op, ctxFor("Encrypt"), call(create(encryptMethod.input, { plaintext, plaintextCrc32c: crc32c(plaintext) })), (r) => {
      encoded = r as Record<string, unknown>;
      return new Uint8Array(1);
    });
    expect(encoded).toMatchObject({ verifiedPlaintextCrc32c: true, ciphertextBlobCrc32c: crc32c(Buffer.from("sealed")) });
    expect(steps).toEqual(["handle"]);
    steps.length = 0;

    const wrong = create(encryptMethod.input, { keyId: KEY_ID, plaintext, plaintextCrc32c: crc32c(plaintext) + 1 });
    await expect(pipelineWith(f).invoke(op, ctxFor("Encrypt"), call(wrong, steps), encode())).rejects.toMatchObject({ code: ErrorCode.ChecksumMismatch });
    expect(steps).toEqual(["identify", "decode"]); // the handler never ran
    expect(f.rows.map((r) => [r.keyId, r.keyVersionId, r.errorCode])).toEqual([
      ["", "", ""],
      [KEY_ID, "", ErrorCode.ChecksumMismatch],
    ]);
  });

  it("refuses an unauthenticated caller before decoding anything, audited in aggregate", async () => {
    const f = fakes();
    const steps: string[] = [];
    const unauthenticated = Promise.reject(new KmsError(ErrorCode.Unauthenticated, "no credentials"));
    const op = operation(decryptMethod, async () => {
      throw new Error("must not run");
    });
    await expect(pipelineWith(f).invoke(op, ctxFor("Decrypt"), call({}, steps, unauthenticated), encode())).rejects.toMatchObject({
      code: ErrorCode.Unauthenticated,
    });
    expect(steps).toEqual(["identify"]);
    expect(f.rows).toEqual([]);
    expect(f.refusals.map((r) => [r.operation, r.errorCode, r.peer])).toEqual([["Decrypt", ErrorCode.Unauthenticated, "ipv4:10.0.0.1"]]);
  });

  it("audits a request that fails to decode, and one the handler refuses, naming the key asked for", async () => {
    const f = fakes();
    const refused = operation(encryptMethod, async () => {
      throw new KmsError(ErrorCode.PermissionDenied, "not allowed");
    }, { keyId: (r) => r.keyId });
    await expect(pipelineWith(f).invoke(refused, ctxFor("Encrypt"), call(create(encryptMethod.input, { keyId: KEY_ID })), encode())).rejects.toMatchObject({
      status: status.PERMISSION_DENIED,
    });
    const undecodable: IncomingCall<never> = { ...call({}), decode: () => { throw invalidArgument("request", "not a valid message"); } };
    await expect(pipelineWith(f).invoke(refused, ctxFor("Encrypt"), undecodable, encode())).rejects.toMatchObject({
      code: ErrorCode.InvalidParameter,
    });
    expect(f.rows.map((r) => [r.keyId, r.resultCode, r.errorCode])).toEqual([
      [KEY_ID, "PERMISSION_DENIED", ErrorCode.PermissionDenied],
      ["", "INVALID_ARGUMENT", ErrorCode.InvalidParameter],
    ]);
  });

  it("answers a bug with INTERNAL and a fixed message; the cause goes to the log only", async () => {
    const f = fakes();
    const op = operation(decryptMethod, async () => {
      throw new TypeError("cannot read SELECT secret_column FROM keys");
    });
    const failure = await pipelineWith(f).invoke(op, ctxFor("Decrypt"), call({}), encode()).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(KmsError);
    expect([(failure as KmsError).status, (failure as KmsError).message]).toEqual([status.INTERNAL, "internal error"]);
    expect(f.logged.map((l) => [l["requestId"], l["operation"], l["error"]])).toEqual([["req-1", "Decrypt", "TypeError: cannot read SELECT secret_column FROM keys"]]);
    expect(f.rows.map((r) => r.resultCode)).toEqual(["INTERNAL"]);
  });

  it("answers UNAVAILABLE instead of a reply whose audit row cannot be written, and zeroes the reply", async () => {
    const f = fakes();
    f.auditFails = true;
    let encoded: Uint8Array | undefined;
    const op = operation(decryptMethod, async () => ({ plaintext: Buffer.from("data key") }));
    await expect(
      pipelineWith(f).invoke(op, ctxFor("Decrypt"), call({}), (r) => (encoded = toBinary(decryptMethod.output, create(decryptMethod.output, r)))),
    ).rejects.toMatchObject({ status: status.UNAVAILABLE, message: "audit log is unavailable; retry is safe" });
    expect(encoded!.length).toBeGreaterThan(0);
    expect([...encoded!].every((b) => b === 0)).toBe(true);
  });

  it("writes no second row for a change whose row committed with it", async () => {
    const f = fakes();
    const op = operation(decryptMethod, async (_req, ctx) => {
      ctx.audit.written = true;
      return {};
    });
    await pipelineWith(f).invoke(op, ctxFor("Decrypt"), call({}), encode());
    expect(f.rows).toEqual([]);
  });

  it("marks a dry run's audit row, and never lets a dry run answer with a result", async () => {
    const f = fakes();
    const stopping: Handler<typeof encryptMethod.input, typeof encryptMethod.output> = async (_req, ctx) => {
      dryRunStop(ctx);
      return { ciphertextBlob: Buffer.from("sealed") };
    };
    const forgetful: Handler<typeof encryptMethod.input, typeof encryptMethod.output> = async () => ({ ciphertextBlob: Buffer.from("sealed") });
    const declarations = { keyId: (r: kms.EncryptRequest) => r.keyId, dryRun: (r: kms.EncryptRequest) => r.dryRun };
    const request = create(encryptMethod.input, { keyId: KEY_ID, plaintext: Buffer.from("p"), dryRun: true });
    const stopped = await pipelineWith(f).invoke(operation(encryptMethod, stopping, declarations), ctxFor("Encrypt"), call(request), encode()).catch((e: unknown) => e);
    expect(stopped).toMatchObject({ code: ErrorCode.DryRunOperation, status: status.FAILED_PRECONDITION });
    // A handler that forgot dryRunStop(): INTERNAL, logged, and still no result.
    const leaked = await pipelineWith(f).invoke(operation(encryptMethod, forgetful, declarations), ctxFor("Encrypt"), call(request), encode()).catch((e: unknown) => e);
    expect(leaked).toMatchObject({ code: ErrorCode.Internal });
    expect(f.rows.map((r) => [r.errorCode, r.dryRun])).toEqual([
      ["DryRunOperation", true],
      ["InternalFailure", true],
    ]);
    expect(f.logged).toHaveLength(1);
  });

  it("refuses more than 10 grant tokens before the handler runs", async () => {
    const f = fakes();
    const handle: Handler<typeof encryptMethod.input, typeof encryptMethod.output> = async () => ({});
    const op = operation(encryptMethod, handle, { grantTokens: (r) => r.grantTokens });
    const request = create(encryptMethod.input, { keyId: KEY_ID, plaintext: Buffer.from("p"), grantTokens: Array.from({ length: 11 }, () => "t") });
    const err = await pipelineWith(f).invoke(op, ctxFor("Encrypt"), call(request), encode()).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.InvalidParameter, message: "grant_tokens: at most 10, got 11" });
  });
});
