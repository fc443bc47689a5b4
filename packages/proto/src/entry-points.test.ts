// The public entry point is what the SDK and any client may use; the worker protocol and the plugin
// contract are only in "@kms/proto/internal" (the package's exports map has no other way in).
import { readFileSync } from "node:fs";
import path from "node:path";
import * as internal from "./internal";
import * as publicApi from "./index";

describe("@kms/proto entry points", () => {
  it("keep the worker protocol and the plugin contract out of the public one", () => {
    expect(Object.keys(publicApi)).toEqual(expect.arrayContaining(["kms", "kmsResources", "createPromiseClient"]));
    expect(Object.keys(publicApi)).not.toEqual(expect.arrayContaining(["hsm"]));
    expect(Object.keys(publicApi)).not.toEqual(expect.arrayContaining(["k8sKmsV2"]));
    expect(Object.keys(internal).sort()).toEqual(["hsm", "k8sKmsV2", "listenOnPrivateSocket"]);
  });

  it("are the only ways into the package", () => {
    const pkg = JSON.parse(readFileSync(path.join(__dirname, "..", "package.json"), "utf8")) as { exports: Record<string, unknown> };
    expect(Object.keys(pkg.exports)).toEqual([".", "./internal", "./package.json"]);
  });
});
