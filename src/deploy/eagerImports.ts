/**
 * An esbuild plugin for the Lambda bundle: the implementations every Lambda init loads (the SQS
 * queue and the S3 store of `liveLayer`, the URL image source of a pipeline that reads images) are
 * imported statically where the services import them dynamically: `import("./queue/sqs.ts")`
 * becomes `Promise.resolve(ns)` of an `import * as ns from "./queue/sqs.ts"`. The meaning is the
 * same (the same namespace, its module evaluated before its importer's rather than when a layer
 * is built); the command line and the tests, which run from source, still load them lazily.
 *
 * Why: code splitting makes every module imported dynamically a chunk of its own, and splits what
 * it shares with the handler by which chunks use it. These three, loaded at every cold start
 * anyway, were three more module graphs loaded one after the other, each with chunks of its own:
 * the download step's cold start read 30 files through 142 imports, 24 through 123 without them
 * (Node's loader costs about 0.3 ms a file and 0.15 ms an import). Under RIE, 40 fresh containers
 * of each interleaved on a loaded machine: 7 ms less runtime CPU (mean; 20 ms median).
 */
import type { Plugin } from "esbuild"
import { readFile } from "node:fs/promises"
import { dirname, extname, join, resolve } from "node:path"
import { barrelRewriter, isProjectFile, loaders } from "./deepImports.ts"

/** This package's code (src/ here, lib/ once compiled): the folder the paths below are in. */
const codeRoot = join(import.meta.dirname, "..")

/** What every Lambda init of ours loads, by path under `codeRoot` without extension. */
export const lambdaEagerModules: ReadonlyArray<string> = ["services/queue/sqs", "services/objectStore/s3", "services/imageSource/url"]

const withoutExtension = (path: string) => path.slice(0, path.length - extname(path).length)

const dynamicImport = /\bimport\(\s*(["'])(\.{1,2}\/[^"']+)\1\s*\)/g

/**
 * `source` (of a file in `dir`) with its dynamic imports of relative paths that `isEager`
 * accepts (absolute, without extension) made static; unchanged when it has none.
 */
export const rewriteEagerImports = (source: string, dir: string, isEager: (path: string) => boolean): string => {
  const imports: Array<string> = []
  const rewritten = source.replace(dynamicImport, (call, _quote: string, specifier: string) => {
    if (!isEager(withoutExtension(resolve(dir, specifier)))) return call
    const name = `__eagerImport${imports.length}`
    imports.push(`import * as ${name} from ${JSON.stringify(specifier)};`)
    return `Promise.resolve(${name})`
  })
  // on the first line, so that line numbers in stack traces stay the same
  return imports.length === 0 ? source : `${imports.join(" ")} ${rewritten}`
}

export const lambdaEagerImports: Plugin = {
  name: "lambda-eager-imports",
  setup(build) {
    const eager = new Set(lambdaEagerModules.map((path) => join(codeRoot, path)))
    // esbuild takes the first plugin's contents: the barrel imports are rewritten here too
    const rewriteBarrels = barrelRewriter(build)
    build.onLoad({ filter: /\.[cm]?[jt]s$/ }, async (args) => {
      if (!isProjectFile(args)) return undefined
      const source = await readFile(args.path, "utf8")
      const contents = rewriteEagerImports(source, dirname(args.path), (path) => eager.has(path))
      if (contents === source) return undefined
      return { contents: await rewriteBarrels(contents, args.path), loader: loaders[extname(args.path) as keyof typeof loaders] }
    })
  }
}
