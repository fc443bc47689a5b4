import type { Services } from "./context";
import { UsageCounter } from "./usage-counter";

/** The parts of Services a flush touches: addEncryptions, and a key read that fails (the rotation's first step). */
function fakeServices() {
  const written: Array<[string, number]> = [];
  let totals = 0;
  const rotations = { tried: 0 };
  const services = {
    store: {
      addEncryptions: async (keyVersionId: string, count: number) => {
        written.push([keyVersionId, count]);
        return (totals += count);
      },
      getKey: async () => {
        rotations.tried++;
        throw new Error("database went away during the rotation");
      },
    },
    log: { warn: () => {}, info: () => {} },
  } as unknown as Services;
  return { services, written, rotations };
}

describe("UsageCounter", () => {
  it("writes a count once even when the rotation it triggers fails, and tries the rotation again on the next count", async () => {
    const { services, written, rotations } = fakeServices();
    const counter = new UsageCounter({ threshold: 3, batchSize: 100, flushIntervalMs: 60_000, maxWithoutRotation: 2 ** 31 });
    counter.start(services);
    for (let i = 0; i < 3; i++) counter.record("k", "v1");
    await counter.flush();
    await counter.flush(); // nothing was put back: no second write of the same 3
    counter.record("k", "v1");
    await counter.flush();
    await counter.stop();
    expect(written).toEqual([
      ["v1", 3],
      ["v1", 1],
    ]);
    expect(rotations.tried).toBe(2);
  });
});
