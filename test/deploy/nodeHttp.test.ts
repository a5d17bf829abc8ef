import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { build } from "esbuild"
import { assert, describe, it } from "vitest"
import { nodeHttpViaRequire } from "../../src/deploy/nodeHttp.ts"

describe("the nodeHttpViaRequire plugin", () => {
  it("gives node:http through require, the same module, statically and dynamically imported, with no ES import of it left", async () => {
    const dir = mkdtempSync(join(tmpdir(), "node-http-"))
    try {
      const result = await build({
        stdin: {
          contents: [
            "import http, { request, Agent } from \"node:http\"",
            "import * as plain from \"http\"",
            "export const loaded = async () => {",
            "  const dynamic = await import(\"node:http\")",
            "  return { http, request, Agent, plain: plain.default, dynamic: dynamic.default ?? dynamic }",
            "}"
          ].join("\n"),
          resolveDir: dir,
          loader: "js"
        },
        bundle: true,
        format: "esm",
        platform: "node",
        write: false,
        plugins: [nodeHttpViaRequire]
      })
      const code = result.outputFiles[0]!.text
      assert.notMatch(code, /from\s*["']node:http["']|import\(\s*["']node:http["']\s*\)/)
      const file = join(dir, "bundle.mjs")
      writeFileSync(file, code)
      const module = await import(pathToFileURL(file).href) as { loaded: () => Promise<Record<string, unknown>> }
      const http = createRequire(import.meta.url)("node:http") as { request: unknown; Agent: unknown }
      const got = await module.loaded()
      assert.strictEqual(got["http"], http)
      assert.strictEqual(got["plain"], http)
      assert.strictEqual(got["dynamic"], http)
      assert.strictEqual(got["request"], http.request)
      assert.strictEqual(got["Agent"], http.Agent)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
