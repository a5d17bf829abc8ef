/**
 * An esbuild plugin that turns imports from effect's barrels into imports of the modules they
 * re-export: `import { Effect, Schema, pipe } from "effect"` becomes
 * `import * as Effect from ".../effect/dist/Effect.js"`, `import * as Schema from ...` and
 * `import { pipe } from ".../Function.js"`. The meaning is the same (the same namespace objects).
 *
 * Why: esbuild cannot tree-shake a namespace that a barrel re-exports (`export * as Schema from
 * "./Schema.js"`, evanw/esbuild#1420): it keeps every export of the module and everything those
 * reach. Measured: a bundle that only uses `Schema.String` is 452 KB through the barrel, 75 KB
 * through `effect/Schema`; the Lambda handler's effect chunk, read and run at every cold start,
 * held crypto, net, cron, JSON Schema and HTTP cookie code it never calls.
 *
 * Only the project's own files (and an author's module) are rewritten, not node_modules (effect's
 * own packages import its modules directly). A name the barrel does not re-export is left to the barrel.
 */
import type { OnLoadArgs, Plugin, PluginBuild } from "esbuild"
import { readFile } from "node:fs/promises"
import { dirname, extname, resolve } from "node:path"

/** What a barrel re-exports: a name to the module whose namespace it is, or to a module and the name there. */
type BarrelExports = ReadonlyMap<string, { readonly file: string; readonly name?: string }>

/** `export * as X from "./X.js"` and `export { a, b as c } from "./F.js"` lines of a barrel. */
export const barrelExports = (source: string, barrelPath: string): BarrelExports => {
  const exports = new Map<string, { readonly file: string; readonly name?: string }>()
  const dir = dirname(barrelPath)
  for (const match of source.matchAll(/^export \* as (\w+) from "(\.[^"]+)";?$/gm)) {
    exports.set(match[1]!, { file: resolve(dir, match[2]!) })
  }
  for (const match of source.matchAll(/^export \{([^}]*)\} from "(\.[^"]+)";?$/gm)) {
    for (const specifier of match[1]!.split(",").map((text) => text.trim()).filter((text) => text !== "")) {
      const [name, alias = name] = specifier.split(/\s+as\s+/)
      exports.set(alias!, { file: resolve(dir, match[2]!), name: name! })
    }
  }
  return exports
}

/** `import { ... } from "effect"` or `"effect/<barrel>"`, value specifiers only (`import type` is left alone). */
const barrelImport = /\bimport\s*\{([^}]*)\}\s*from\s*(["'])(effect(?:\/[\w-]+)?)\2;?/g

/**
 * `source` with its barrel imports rewritten; `exportsOf` gives the barrel's exports for a
 * specifier such as `effect` or `effect/http`, or undefined when it is not a barrel.
 */
export const rewriteBarrelImports = (source: string, exportsOf: (specifier: string) => BarrelExports | undefined): string =>
  source.replace(barrelImport, (statement, specifiers: string, _quote: string, from: string) => {
    const exports = exportsOf(from)
    if (exports === undefined) return statement
    const deep: Array<string> = []
    const kept: Array<string> = []
    for (const specifier of specifiers.split(",").map((text) => text.trim()).filter((text) => text !== "")) {
      if (/^type\s/.test(specifier)) {
        kept.push(specifier)
        continue
      }
      const [name, local = name] = specifier.split(/\s+as\s+/)
      const target = exports.get(name!)
      if (target === undefined) kept.push(specifier)
      else if (target.name === undefined) deep.push(`import * as ${local} from ${JSON.stringify(target.file)};`)
      else deep.push(`import { ${target.name} as ${local} } from ${JSON.stringify(target.file)};`)
    }
    if (deep.length === 0) return statement
    // on one line, so that line numbers in stack traces stay the same
    return [...deep, ...(kept.length > 0 ? [`import { ${kept.join(", ")} } from ${JSON.stringify(from)};`] : [])].join(" ")
  })

/**
 * A function that rewrites the barrel imports of a project file's `source` (unchanged when it has
 * none), the barrels resolved as `build` resolves them. Other plugins that load project files
 * (eagerImports.ts) rewrite through it too, since esbuild takes the first plugin's contents.
 */
export const barrelRewriter = (build: PluginBuild): ((source: string, path: string) => Promise<string>) => {
  const parsed = new Map<string, Promise<BarrelExports>>()
  /** The barrel `specifier` resolves to from `resolveDir`, or undefined when it is not one. */
  const barrel = async (specifier: string, resolveDir: string) => {
    const resolved = await build.resolve(specifier, { kind: "import-statement", resolveDir })
    if (resolved.errors.length > 0 || !/[/\\]index\.js$/.test(resolved.path)) return undefined
    let exports = parsed.get(resolved.path)
    if (exports === undefined) {
      exports = readFile(resolved.path, "utf8").then((source) => barrelExports(source, resolved.path))
      parsed.set(resolved.path, exports)
    }
    return exports
  }
  return async (source, path) => {
    const specifiers = new Set([...source.matchAll(barrelImport)].map((match) => match[3]!))
    if (specifiers.size === 0) return source
    const known = new Map<string, BarrelExports | undefined>()
    for (const specifier of specifiers) known.set(specifier, await barrel(specifier, dirname(path)))
    return rewriteBarrelImports(source, (specifier) => known.get(specifier))
  }
}

/** How esbuild reads a project file, by its extension. */
export const loaders = { ".ts": "ts", ".mts": "ts", ".cts": "ts", ".js": "js", ".mjs": "js", ".cjs": "js" } as const

/** A project file (not node_modules), which the plugins here may rewrite. */
export const isProjectFile = (args: OnLoadArgs): boolean => args.namespace === "file" && !/[/\\]node_modules[/\\]/.test(args.path)

export const effectDeepImports: Plugin = {
  name: "effect-deep-imports",
  setup(build) {
    const rewrite = barrelRewriter(build)
    build.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => {
      if (!isProjectFile(args)) return undefined
      const source = await readFile(args.path, "utf8")
      const contents = await rewrite(source, args.path)
      if (contents === source) return undefined
      return { contents, loader: loaders[extname(args.path) as keyof typeof loaders] }
    })
  }
}
