// Writes an OCI runtime config (config.json for `runc run`) that runs a container the way deploy/k8s's
// Deployment does: uid/gid 10001, read-only root filesystem, no capabilities, no privilege escalation,
// /tmp as an emptyDir-like tmpfs. It keeps the host's network namespace (kms-api reaches the machine's
// Postgres on 127.0.0.1) and sets no rlimits (the sandbox refuses setrlimit).
// Usage: node oci-config.js OUT --root DIR --cwd DIR [--env K=V]... [--mount SRC:DST[:ro]]... -- ARGS...
"use strict";
const fs = require("node:fs");

const [out, ...rest] = process.argv.slice(2);
const opts = { root: "", cwd: "/", env: [], mount: [], args: [] };
for (let i = 0; i < rest.length; i++) {
  const flag = rest[i];
  if (flag === "--") {
    opts.args = rest.slice(i + 1);
    break;
  }
  const value = rest[++i];
  if (value === undefined) throw new Error(`${flag} needs a value`);
  if (flag === "--root") opts.root = value;
  else if (flag === "--cwd") opts.cwd = value;
  else if (flag === "--env") opts.env.push(value);
  else if (flag === "--mount") opts.mount.push(value);
  else throw new Error(`unknown option ${flag}`);
}
if (!out || !opts.root || opts.args.length === 0) throw new Error("usage: oci-config.js OUT --root DIR --cwd DIR [--env K=V] [--mount SRC:DST[:ro]] -- ARGS");

const binds = opts.mount.map((m) => {
  const [source, destination, mode] = m.split(":");
  return { destination, type: "bind", source, options: ["rbind", "nosuid", "nodev", mode === "ro" ? "ro" : "rw"] };
});

const config = {
  ociVersion: "1.0.2",
  process: {
    terminal: false,
    user: { uid: 10001, gid: 10001, additionalGids: [10001] },
    args: opts.args,
    env: opts.env,
    cwd: opts.cwd,
    capabilities: { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] },
    noNewPrivileges: true,
  },
  root: { path: opts.root, readonly: true },
  hostname: "kms-image-test",
  mounts: [
    { destination: "/proc", type: "proc", source: "proc" },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
    { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    // The Deployment's emptyDir "*-tmp" volumes: the only writable place besides the bind mounts.
    { destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777", "size=65536k"] },
    // Name resolution as a pod has it (kms-api resolves 127.0.0.1 only, but Node reads these at start).
    { destination: "/etc/hosts", type: "bind", source: "/etc/hosts", options: ["rbind", "ro"] },
    { destination: "/etc/resolv.conf", type: "bind", source: "/etc/resolv.conf", options: ["rbind", "ro"] },
    ...binds,
  ],
  linux: {
    // No "network" namespace: the host's, as the brief's 127.0.0.1 Postgres needs.
    namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
    maskedPaths: ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
      "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
  },
};
fs.writeFileSync(out, JSON.stringify(config, null, 2));
