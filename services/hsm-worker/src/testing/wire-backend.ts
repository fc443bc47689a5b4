// Tests call a backend as the handlers do, on wire keys: this gives a backend the key operations of
// checked-calls.ts (onWire) in place of its own checked ones, and passes everything else through.
import type { Backend } from "../backend";
import { onWire } from "../checked-calls";
import type { WireOperations } from "../checked-calls";

export type WireBackend<B extends Backend> = Omit<B, keyof WireOperations> & WireOperations & { readonly checked: B };

export function wireBackend<B extends Backend>(backend: B): WireBackend<B> {
  const wire = onWire(backend) as unknown as Record<PropertyKey, unknown>;
  return new Proxy(backend, {
    get(target, prop) {
      if (prop === "checked") return target;
      if (prop in wire) return wire[prop];
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  }) as unknown as WireBackend<B>;
}
