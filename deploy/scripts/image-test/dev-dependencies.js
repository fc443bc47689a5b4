// Lists the packages that package-lock.json marks dev-only (dev or devOptional) and that are present under
// an image's app directory: a runtime image must have none. Usage: node dev-dependencies.js LOCKFILE APP_DIR
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const [lockFile, appDir] = process.argv.slice(2);
if (!lockFile || !appDir) throw new Error("usage: dev-dependencies.js LOCKFILE APP_DIR");
const lock = JSON.parse(fs.readFileSync(lockFile, "utf8"));
const found = Object.entries(lock.packages)
  .filter(([where, entry]) => where.includes("node_modules/") && (entry.dev || entry.devOptional))
  .map(([where]) => where)
  .filter((where) => fs.existsSync(path.join(appDir, where, "package.json")));
for (const where of found) console.log(where);
process.exit(found.length ? 1 : 0);
