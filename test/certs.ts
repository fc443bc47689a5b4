// Test PKI made with the openssl CLI: a CA, a server certificate for 127.0.0.1, and client certificates.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
}

export function makeCa(name = "test-ca"): Pki {
  const dir = mkdtempSync(path.join(os.tmpdir(), `kms-pki-${name}-`));
  openssl(dir, ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-subj", `/CN=${name}`, "-days", "2"]);
  return { dir, caCert: path.join(dir, "ca.pem"), caKey: path.join(dir, "ca.key") };
}

/** A certificate signed by the CA; `sans` like "URI:spiffe://…,DNS:x"; negative days make it expired. */
export function issue(pki: Pki, name: string, opts: { cn?: string; sans?: string; days?: number } = {}): { cert: string; key: string } {
  const key = path.join(pki.dir, `${name}.key`);
  const csr = path.join(pki.dir, `${name}.csr`);
  const cert = path.join(pki.dir, `${name}.pem`);
  openssl(pki.dir, ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${(opts.cn ?? name).replace(/\//g, "\\/")}`]); // "/" separates -subj fields
  const args = ["x509", "-req", "-in", csr, "-CA", pki.caCert, "-CAkey", pki.caKey, "-out", cert, "-days", String(opts.days ?? 1)];
  if (opts.sans) {
    const ext = path.join(pki.dir, `${name}.ext`);
    writeFileSync(ext, `subjectAltName=${opts.sans}\n`);
    args.push("-extfile", ext);
  }
  openssl(pki.dir, args);
  return { cert, key };
}
