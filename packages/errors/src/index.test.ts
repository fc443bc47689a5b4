import { Metadata, status } from "@grpc/grpc-js";
import {
  ERROR_CODE_KEY,
  ErrorCode,
  INVALID_CIPHERTEXT_MESSAGE,
  InternalError,
  KmsError,
  fromPeerError,
  invalidArgument,
  invalidCiphertext,
  toStatus,
  outcomeOf,
  errorOfOutcome,
  isErrorCode,
  statusOfCode,
} from "./index";

describe("toStatus", () => {
  it("sends a KmsError's message and code", () => {
    const s = toStatus(invalidArgument("plaintext", "must be 1 to 6144 bytes"));
    expect(s.code).toBe(status.INVALID_ARGUMENT);
    expect(s.details).toBe("plaintext: must be 1 to 6144 bytes");
    expect(s.metadata.get(ERROR_CODE_KEY)).toEqual([ErrorCode.InvalidParameter]);
  });

  it("sends nothing of an internal error's message or cause", () => {
    const s = toStatus(new InternalError("SELECT * FROM keys failed", { cause: new Error("secret") }));
    expect(s.code).toBe(status.INTERNAL);
    expect(s.details).toBe("internal error");
    expect(s.metadata.get(ERROR_CODE_KEY)).toEqual([ErrorCode.Internal]);
  });

  it("treats a plain Error as internal", () => {
    const s = toStatus(new TypeError("cannot read properties of undefined"));
    expect(s.code).toBe(status.INTERNAL);
    expect(s.details).toBe("internal error");
  });

  it("gives every bad ciphertext the same message", () => {
    expect(toStatus(invalidCiphertext()).details).toBe(INVALID_CIPHERTEXT_MESSAGE);
  });
});

describe("fromPeerError", () => {
  const peerError = (code: status, details: string, kmsCode?: string) => {
    const metadata = new Metadata();
    if (kmsCode) metadata.set(ERROR_CODE_KEY, kmsCode);
    return Object.assign(new Error(details), { code, details, metadata });
  };

  it("maps an unreachable peer to UNAVAILABLE", () => {
    const e = fromPeerError(peerError(status.UNAVAILABLE, "No connection established"), "hsm-worker");
    expect(e).toBeInstanceOf(KmsError);
    expect((e as KmsError).status).toBe(status.UNAVAILABLE);
    expect((e as KmsError).code).toBe(ErrorCode.Unavailable);
  });

  it("maps a missed deadline to UNAVAILABLE", () => {
    const e = fromPeerError(peerError(status.DEADLINE_EXCEEDED, "Deadline exceeded"), "hsm-worker");
    expect((e as KmsError).status).toBe(status.UNAVAILABLE);
  });

  it("keeps a peer's KmsError", () => {
    const e = fromPeerError(
      peerError(status.INVALID_ARGUMENT, INVALID_CIPHERTEXT_MESSAGE, ErrorCode.InvalidCiphertext),
      "hsm-worker",
    );
    expect(e).toEqual(invalidCiphertext());
  });

  it("turns a peer's INTERNAL into an InternalError", () => {
    const e = fromPeerError(peerError(status.INTERNAL, "internal error", ErrorCode.Internal), "hsm-worker");
    expect(e).toBeInstanceOf(InternalError);
  });
});

describe("outcomeOf and errorOfOutcome", () => {
  it("carry a KmsError there and back", () => {
    const outcome = outcomeOf(invalidArgument("plaintext", "is required"));
    expect(outcome).toEqual({ code: status.INVALID_ARGUMENT, message: "plaintext: is required", errorCode: ErrorCode.InvalidParameter });
    expect(errorOfOutcome(outcome, "HSM worker")).toEqual(invalidArgument("plaintext", "is required"));
  });

  it("send nothing of an internal error, and bring back an InternalError", () => {
    const outcome = outcomeOf(new Error("secret detail"));
    expect(outcome).toEqual({ code: status.INTERNAL, message: "internal error", errorCode: ErrorCode.Internal });
    const back = errorOfOutcome(outcome, "worker");
    expect(back).toBeInstanceOf(InternalError);
    expect(back.message).toBe("worker operation failed: internal error");
  });
});

describe("the error code table", () => {
  it("gives every error code one status, which every KmsError of that code carries", () => {
    for (const code of Object.values(ErrorCode)) {
      expect([code, typeof statusOfCode(code)]).toEqual([code, "number"]);
      expect(new KmsError(code, "m").status).toBe(statusOfCode(code));
    }
    expect([statusOfCode(ErrorCode.KeyNotFound), statusOfCode(ErrorCode.Throttled), statusOfCode(ErrorCode.Internal)]).toEqual([
      status.NOT_FOUND,
      status.RESOURCE_EXHAUSTED,
      status.INTERNAL,
    ]);
  });

  it("treats a code this version does not know, from a peer, as internal", () => {
    expect(isErrorCode("Rejected.SomethingNew")).toBe(false);
    const metadata = new Metadata();
    metadata.set(ERROR_CODE_KEY, "Rejected.SomethingNew");
    expect(fromPeerError({ code: status.FAILED_PRECONDITION, details: "new", metadata }, "hsm-worker")).toBeInstanceOf(InternalError);
    expect(errorOfOutcome({ code: status.FAILED_PRECONDITION, message: "new", errorCode: "Rejected.SomethingNew" }, "hsm-worker")).toBeInstanceOf(InternalError);
  });
});
