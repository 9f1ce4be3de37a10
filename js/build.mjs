// Build the widget: src/index.js -> ../llmsock_widget/static/widget.js (one minified ESM file,
// no imports left) and src/style.css -> ../llmsock_widget/static/widget.css.
// The output must be byte-identical across `npm ci && npm run build` runs: CI rebuilds and
// compares, so nothing here may depend on time, absolute paths or the environment.

import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, "..", "llmsock_widget", "static");

const common = {
  absWorkingDir: here,
  bundle: true,
  minify: true,
  sourcemap: false,
  legalComments: "eof",
  charset: "ascii",
  logLevel: "warning",
};

await mkdir(outdir, { recursive: true });
await esbuild.build({
  ...common,
  entryPoints: ["src/index.js"],
  outfile: join(outdir, "widget.js"),
  format: "esm",
  platform: "browser",
  target: "es2020",
  define: { "process.env.NODE_ENV": '"production"' },
});
await esbuild.build({
  ...common,
  entryPoints: ["src/style.css"],
  outfile: join(outdir, "widget.css"),
});
console.log("built llmsock_widget/static/widget.js and widget.css");
