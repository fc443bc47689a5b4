// The loaded PKCS#11 library. C_Initialize may run only once per process (a second call returns
// CKR_CRYPTOKI_ALREADY_INITIALIZED), so modules are shared per path and only `reinitialize` cycles them.
import * as pkcs11js from "pkcs11js";
import { hsmCall, hasCode, Pkcs11CallError } from "./errors";

export class Pkcs11Module {
  readonly lib: pkcs11js.PKCS11;
  /** Bumped on every C_Finalize/C_Initialize cycle: handles from an older one are meaningless. */
  epoch = 0;

  private constructor(readonly path: string) {
    this.lib = new pkcs11js.PKCS11();
    hsmCall(`load ${path}`, () => this.lib.load(path));
    this.initialize();
  }

  private static readonly loaded = new Map<string, Pkcs11Module>();

  /** Users that opened the module and have not released it: the last release finalizes it. */
  private users = 0;

  /** The process-wide module for `path`, loaded and initialised on first use; release() it when done. */
  static open(path: string): Pkcs11Module {
    let module = Pkcs11Module.loaded.get(path);
    if (module === undefined) {
      module = new Pkcs11Module(path);
      Pkcs11Module.loaded.set(path, module);
    }
    module.users++;
    return module;
  }

  /** Ends one user's use of the module; the last one ends the process's use of the library (C_Finalize). */
  release(): void {
    if (this.users === 0) return;
    this.users--;
    if (this.users === 0) this.finalize();
  }

  private initialize(): void {
    try {
      // Async calls run on several libuv threads at once: the module must lock (CKF_OS_LOCKING_OK).
      // With NULL arguments a module may assume a single-threaded caller (SoftHSM then fails at random).
      hsmCall("C_Initialize", () => this.lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK }));
    } catch (err) {
      // Another user of the same library in this process already initialised it: that is fine.
      if (!hasCode(err, pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED)) throw err;
    }
  }

  /** C_Finalize then C_Initialize: recovers from a removed token or a library that lost its state. */
  reinitialize(): void {
    try {
      hsmCall("C_Finalize", () => this.lib.C_Finalize());
    } catch {
      // Already finalised (CKR_CRYPTOKI_NOT_INITIALIZED) or broken: C_Initialize below is what matters.
    }
    this.initialize();
    this.epoch++;
  }

  /** Finds the slot whose token has this label. Slot ids change after C_InitToken, so never cache them across epochs. */
  findSlot(tokenLabel: string): pkcs11js.Handle {
    const slots = hsmCall("C_GetSlotList", () => this.lib.C_GetSlotList(true));
    for (const slot of slots) {
      const info = hsmCall("C_GetTokenInfo", () => this.lib.C_GetTokenInfo(slot));
      // Labels come back padded to 32 bytes with spaces (some modules: NULs).
      if (info.label.replace(/[\0 ]+$/, "") === tokenLabel) return slot;
    }
    throw new Pkcs11CallError(`find token ${JSON.stringify(tokenLabel)}`, pkcs11js.CKR_TOKEN_NOT_PRESENT);
  }

  /** Ends the process's use of the library, whoever else still uses it (release() is the usual way). */
  finalize(): void {
    this.users = 0;
    try {
      hsmCall("C_Finalize", () => this.lib.C_Finalize());
    } finally {
      Pkcs11Module.loaded.delete(this.path);
    }
  }
}
