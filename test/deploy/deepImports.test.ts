/**
 * The bundle's effect imports go to effect's modules, not through its barrels, with the same
 * meaning: what the code does not use is left out of the Lambda bundle.
 */
import { assert, describe, it } from "@effect/vitest"
import { build, type Plugin } from "esbuild"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { barrelExports, effectDeepImports, rewriteBarrelImports } from "../../src/deploy/deepImports.ts"
import { root } from "../../src/deploy/build.ts"

const barrel = barrelExports(
  [
    "export * as Effect from \"./Effect.js\";",
    "export * as Schema from \"./Schema.js\";",
    "export {",
    "absurd,",
    "pipe } from \"./Function.js\";"
  ].join("\n"),
  "/m/effect/dist/index.js"
)
const rewrite = (source: string) => rewriteBarrelImports(source, (specifier) => specifier === "effect" ? barrel : undefined)

describe("rewriteBarrelImports", () => {
  it("imports each namespace from its module and a named export from the module that has it, on the same line", () => {
    assert.strictEqual(
      rewrite("import { Effect, Schema as S, pipe } from \"effect\"\nconst x = 1"),
      "import * as Effect from \"/m/effect/dist/Effect.js\"; import * as S from \"/m/effect/dist/Schema.js\"; " +
        "import { pipe as pipe } from \"/m/effect/dist/Function.js\";\nconst x = 1"
    )
  })

  it("leaves to the barrel what it does not re-export, and type-only names", () => {
    assert.strictEqual(
      rewrite("import {\n  Effect,\n  type Stream,\n  Unknown\n} from 'effect';"),
      "import * as Effect from \"/m/effect/dist/Effect.js\"; import { type Stream, Unknown } from \"effect\";"
    )
  })

  it("leaves alone type-only imports, other packages and what is not a barrel", () => {
    for (
      const source of [
        "import type { Effect } from \"effect\"",
        "import { Effect } from \"effect-extra\"",
        "import { HttpClient } from \"effect/http\"",
        "import * as Effect from \"effect/Effect\""
      ]
    ) assert.strictEqual(rewrite(source), source)
  })
})

describe("the effectDeepImports plugin", () => {
  const bundle = async (plugins: Array<Plugin>) => {
    const dir = mkdtempSync(join(tmpdir(), "deep-imports-"))
    try {
      const entry = join(dir, "entry.ts")
      writeFileSync(
        entry,
        [
          "import { Schema, pipe } from \"effect\"",
          "import { HttpClientError } from \"effect/http\"",
          "export const decoded = pipe(\"a\", Schema.decodeUnknownSync(Schema.String))",
          "export const isHttpError = HttpClientError.isHttpClientError(decoded)"
        ].join("\n")
      )
      const result = await build({
        entryPoints: [entry],
        bundle: true,
        format: "esm",
        platform: "node",
        write: false,
        nodePaths: [join(root, "node_modules")],
        plugins
      })
      return result.outputFiles![0]!.text
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }

  it("bundles the same meaning in a fraction of the code", async () => {
    const barrels = await bundle([])
    const deep = await bundle([effectDeepImports])
    // measured (not minified): 696 KB through the barrels, 164 KB through the modules
    assert.isBelow(deep.length, barrels.length / 3)
    for (const code of [barrels, deep]) {
      const module = await import(`data:text/javascript;base64,${Buffer.from(code).toString("base64")}`) as {
        decoded: string
        isHttpError: boolean
      }
      assert.deepStrictEqual({ ...module }, { decoded: "a", isHttpError: false })
    }
  })
})
