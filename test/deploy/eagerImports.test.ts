import { join, sep } from "node:path"
import { build } from "esbuild"
import { assert, describe, it } from "vitest"
import { lambdaBundleOptions, root } from "../../src/deploy/build.ts"
import { lambdaEagerModules, rewriteEagerImports } from "../../src/deploy/eagerImports.ts"

describe("rewriteEagerImports", () => {
  const dir = "/app/src/services"
  const eager = (path: string) => path === "/app/src/services/queue/sqs"

  it("makes a dynamic import of an eager module static, on the first line, and leaves the others", () => {
    const source = [
      "import { Effect } from \"effect\"",
      "const sqs = Effect.promise(() => import(\"./queue/sqs.ts\"))",
      "const local = Effect.promise(() => import(\"./queue/local.ts\"))"
    ].join("\n")
    const rewritten = rewriteEagerImports(source, dir, eager)
    assert.strictEqual(
      rewritten,
      [
        "import * as __eagerImport0 from \"./queue/sqs.ts\"; import { Effect } from \"effect\"",
        "const sqs = Effect.promise(() => Promise.resolve(__eagerImport0))",
        "const local = Effect.promise(() => import(\"./queue/local.ts\"))"
      ].join("\n")
    )
  })

  it("leaves a file without such imports as it is", () => {
    const source = "const x = import(\"./queue/local.ts\")\nexport const y = import(\"effect\")"
    assert.strictEqual(rewriteEagerImports(source, dir, eager), source)
  })
})

describe("the Lambda bundle", () => {
  it("has the implementations every init loads in the handler's static module graph, not in chunks of their own", async () => {
    const result = await build({
      ...lambdaBundleOptions,
      entryPoints: [join(root, "src", "lambda", "handler.ts")],
      outdir: join(root, "node_modules", ".cache", "eager-imports-test"),
      splitting: true,
      write: false,
      metafile: true
    })
    const outputs = result.metafile.outputs
    const handler = Object.keys(outputs).find((path) => path.endsWith(`${sep}handler.js`) || path.endsWith("/handler.js"))!
    // every module in handler.js or a chunk it imports statically, transitively
    const loaded = new Set<string>()
    const visit = (path: string) => {
      if (loaded.has(path) || outputs[path] === undefined) return
      loaded.add(path)
      for (const imported of outputs[path].imports) if (imported.kind === "import-statement") visit(imported.path)
    }
    visit(handler)
    const inputs = new Set([...loaded].flatMap((path) => Object.keys(outputs[path]!.inputs)))
    for (const module of lambdaEagerModules) {
      assert.isTrue([...inputs].some((input) => input.startsWith(`src/${module}.`)), `${module} in the handler's static graph`)
    }
    // nothing imports them dynamically any more
    const dynamic = Object.values(outputs).flatMap((output) => output.imports.filter((imported) => imported.kind === "dynamic-import"))
    for (const imported of dynamic) {
      const entry = outputs[imported.path]?.entryPoint ?? ""
      assert.isFalse(lambdaEagerModules.some((module) => entry.startsWith(`src/${module}.`)), entry)
    }
  })
})
