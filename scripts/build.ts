/**
 * `npm run build`: bundles the Lambda handler to dist/lambda/handler.js (handler
 * `dist/lambda/handler.handler`), ESM for Node 24.
 */
import { build } from "esbuild"
import { statSync, writeFileSync } from "node:fs"

const outfile = "dist/lambda/handler.js"

await build({
  entryPoints: ["src/lambda/handler.ts"],
  outfile,
  bundle: true,
  platform: "node",
  target: "node24",
  format: "esm",
  // sharp is native: it ships beside the bundle, not inside it
  external: ["sharp"],
  // ESM bundles of CommonJS dependencies need a require()
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  sourcemap: false,
  minify: true,
  legalComments: "none",
  logLevel: "warning"
})

// Lambda treats .js as CommonJS unless the nearest package.json says otherwise
writeFileSync("dist/lambda/package.json", `${JSON.stringify({ type: "module" })}\n`)

console.log(`${outfile}: ${(statSync(outfile).size / 1024).toFixed(0)} KiB`)
