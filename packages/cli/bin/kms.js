#!/usr/bin/env node
// The `kms` command. A file that exists before the build, so that `npm ci` links it into
// node_modules/.bin (npm skips a bin whose target is missing, and dist/ is made by `npm run build`).
require("../dist/main.js");
