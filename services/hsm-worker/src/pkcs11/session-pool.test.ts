// The pool's retry and give-up rules against a fake module whose sessions keep failing.
import * as pkcs11js from "pkcs11js";
import { hsmCall, Pkcs11CallError } from "./errors";
import type { Pkcs11Module } from "./module";
import { HsmUnavailableError, SessionPool } from "./session-pool";

/** A module where every session opens fine; calls on them fail as the test decides. */
function fakeModule() {
  let nextHandle = 1;
  const calls: string[] = [];
  const module = {
    epoch: 0,
    lib: {
      C_OpenSession: () => {
        calls.push("open");
        return Buffer.from([nextHandle++]);
      },
      C_Login: () => calls.push("login"),
      C_CloseSession: () => calls.push("close"),
    },
    findSlot: () => {
      calls.push("findSlot");
      return Buffer.from([0]);
    },
    reinitialize: () => {
      calls.push("reinitialize");
      module.epoch++;
    },
  };
  return { module: module as unknown as Pkcs11Module, calls };
}

const fail = (code: number) => () => {
  hsmCall("C_Encrypt(test)", () => {
    throw new pkcs11js.Pkcs11Error("test", code, "C_Encrypt");
  });
};

describe("SessionPool", () => {
  it("retries once after a lost session and succeeds on the new one", async () => {
    const { module, calls } = fakeModule();
    const pool = new SessionPool(module, { tokenLabel: "t", pin: "p", size: 1 });
    let attempt = 0;
    const result = await pool.run(async (s) => {
      if (attempt++ === 0) fail(pkcs11js.CKR_SESSION_HANDLE_INVALID)();
      return s.handle[0];
    });
    expect(result).toBe(2);
    expect(calls).toEqual(["findSlot", "open", "login", "open", "login"]);
    expect(pool.generation).toBe(1);
  });

  it("re-initialises the module when the token went away, then gives UNAVAILABLE if it fails again", async () => {
    const { module, calls } = fakeModule();
    const pool = new SessionPool(module, { tokenLabel: "t", pin: "p", size: 2 });
    let err: unknown;
    try {
      await pool.run(async () => fail(pkcs11js.CKR_DEVICE_REMOVED)());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HsmUnavailableError);
    expect((err as HsmUnavailableError).cause).toBeInstanceOf(Pkcs11CallError);
    expect(calls.filter((c) => c === "reinitialize")).toEqual(["reinitialize", "reinitialize"]);
  });

  it("passes other errors through and replaces the session they may have left busy", async () => {
    const { module, calls } = fakeModule();
    const pool = new SessionPool(module, { tokenLabel: "t", pin: "p", size: 1 });
    await expect(pool.run(async () => fail(pkcs11js.CKR_ARGUMENTS_BAD)())).rejects.toThrow("C_Encrypt(test): CKR_ARGUMENTS_BAD");
    expect(await pool.run(async (s) => s.handle[0])).toBe(2);
    expect(calls).toEqual(["findSlot", "open", "login", "close", "open", "login"]);
    expect(pool.generation).toBe(0);
  });

  it("serves waiters in FIFO order, one call per session", async () => {
    const { module } = fakeModule();
    const pool = new SessionPool(module, { tokenLabel: "t", pin: "p", size: 1 });
    const order: number[] = [];
    let active = 0;
    await Promise.all(
      [0, 1, 2, 3, 4].map((i) =>
        pool.run(async () => {
          active++;
          expect(active).toBe(1);
          await new Promise((r) => setTimeout(r, 2));
          order.push(i);
          active--;
        }),
      ),
    );
    expect(order).toEqual([0, 1, 2, 3, 4]);
  });
});
