// Build: esbuild bundles src/index.ts into one minified ES module (dist/goldwire.js, with a
// version banner) and tsc emits the .d.ts files. The output is copied to the gateway's static
// directory, where it is committed and served at GET /sdk/goldwire.js.
// `--check` builds into a temporary directory and fails if the committed copy differs:
// the build is deterministic (pinned esbuild, no timestamps, no absolute paths).
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, copyFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const served = join(here, "..", "..", "services", "gateway", "static", "goldwire.js");
const pkg = JSON.parse(readFileSync(join(here, "package.json"), "utf8"));
const check = process.argv.includes("--check");
const outdir = check ? mkdtempSync(join(tmpdir(), "goldwire-sdk-")) : join(here, "dist");
mkdirSync(outdir, { recursive: true });

const result = await build({
  entryPoints: [join(here, "src", "index.ts")],
  bundle: true,
  format: "esm",
  target: "es2020",
  platform: "neutral",
  minify: true,
  legalComments: "none",
  sourcemap: false,
  write: false,
  define: { __GOLDWIRE_VERSION__: JSON.stringify(pkg.version) },
  banner: { js: `/*! @goldwire/client ${pkg.version} | protocol v1 | built from libs/client-js: do not edit */` },
});
const js = result.outputFiles[0].text;
writeFileSync(join(outdir, "goldwire.js"), js);

if (check) {
  const committed = existsSync(served) ? readFileSync(served, "utf8") : "";
  if (committed !== js) {
    console.error(`${served} is stale: run \`npm run build\` in libs/client-js and commit it`);
    process.exit(1);
  }
  console.log(`${served} is up to date (${js.length} bytes)`);
} else {
  execFileSync(join(here, "node_modules", ".bin", "tsc"), ["-p", join(here, "tsconfig.json")], { stdio: "inherit" });
  mkdirSync(dirname(served), { recursive: true });
  copyFileSync(join(outdir, "goldwire.js"), served);
  console.log(`built dist/goldwire.js and ${served} (${js.length} bytes)`);
}
