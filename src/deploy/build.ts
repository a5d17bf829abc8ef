/**
 * `build [--arch arm64|x86_64] [--pipeline ./module.ts]`: the Lambda function's zip, in `dist/` of
 * the folder the command was started in.
 *
 * 1. esbuild bundles the handler to dist/lambda/handler.js (handler `dist/lambda/handler.handler`),
 *    code split: what is imported only dynamically goes to dist/lambda/chunks/, read when imported;
 *    the built-in pipelines' (src/lambda/handler.ts), or, with `--pipeline`, the author's module
 *    bound to `handlerFor` (src/lambda/runtime.ts), so no registry needs editing. ESM for Node 24,
 *    the AWS SDK included. On cold start the two
 *    choices are within about 10 ms of each other (measured here, Node 24.21: the bundle imports in
 *    128 ms median against 118 ms with the SDK left to the runtime's node_modules; AWS's own
 *    measurements on Lambda favour bundling), so the tie goes to the bundle: the function runs the
 *    SDK version in package-lock.json that the tests ran, not whichever one the runtime ships.
 * 2. sharp is native and stays outside the bundle: when the bundle imports it, it is installed for
 *    linux/glibc on the target architecture, whatever this machine is (npm --os/--cpu/--libc), into
 *    a cache under node_modules/.cache/.
 * 3. dist/function-<arch>.zip gets the bundle, its package.json and that node_modules, minus what
 *    is only for building or reading (C++ sources, headers, type declarations, READMEs). The zip is
 *    deterministic (sorted entries, fixed timestamps), so an unchanged build uploads nothing new.
 *
 * The default architecture is arm64: Lambda bills arm64 (Graviton) about 20% less per GB-second,
 * and sharp ships prebuilt libvips for linux-arm64 as it does for x64.
 */
import { type BuildOptions, build as esbuild } from "esbuild"
import { zipSync, type Zippable } from "fflate"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, extname, join, relative, resolve, sep } from "node:path"
import { effectDeepImports } from "./deepImports.ts"
import { lambdaEagerImports } from "./eagerImports.ts"
import { nodeHttpViaRequire } from "./nodeHttp.ts"

/** This package's folder (the same from src/deploy/ and from the compiled lib/deploy/). */
export const root = join(import.meta.dirname, "..", "..")

/** Where the command was started: `npm run` moves to the project's folder but says where it started in `INIT_CWD`. */
export const startedIn = (): string => process.env["INIT_CWD"] ?? process.cwd()

/** Builds go to `dist/` where the command was started. */
const outputDir = join(startedIn(), "dist")
export const architectures = ["arm64", "x86_64"] as const
export type Architecture = (typeof architectures)[number]
export const defaultArchitecture: Architecture = "arm64"

export const bundlePath = join(outputDir, "lambda", "handler.js")
export const zipPath = (arch: Architecture): string => join(outputDir, `function-${arch}.zip`)

export const isArchitecture = (value: string): value is Architecture => (architectures as ReadonlyArray<string>).includes(value)

/** Lambda's names for its architectures, as npm's `--cpu`. */
const npmCpu: Record<Architecture, string> = { arm64: "arm64", x86_64: "x64" }

/** The sharp version this project is locked to; the function gets the same one. */
export const sharpVersion = (): string => {
  // sharp's exports map leaves out its package.json: walk up from its entry point
  let dir = dirname(createRequire(import.meta.url).resolve("sharp"))
  while (!existsSync(join(dir, "package.json"))) dir = dirname(dir)
  return (JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string }).version
}

// ---------------------------------------------------------------------------------------------
// 1. the bundle

/** Lambda treats .js as CommonJS unless the nearest package.json says otherwise. */
const lambdaPackageJson = `${JSON.stringify({ type: "module" })}\n`

/** Writes through a temporary file and a rename, so a concurrent reader never sees half a file. */
const writeAtomically = (path: string, data: string | Uint8Array) => {
  mkdirSync(dirname(path), { recursive: true })
  const temporary = `${path}.${process.pid}.tmp`
  writeFileSync(temporary, data)
  renameSync(temporary, path)
}

/** ESM bundles of CommonJS dependencies need a require(). */
const requireBanner = "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);"

/**
 * `contents` of a chunk without `requireBanner` when nothing in it uses `require` (esbuild adds
 * the banner to every file): of the 40 files of the built-in handler, 2 do. Each banner costs a
 * `createRequire` at load, about 0.2 ms of a cold start.
 */
export const withoutUnusedRequire = (contents: Uint8Array): Uint8Array => {
  const text = new TextDecoder().decode(contents)
  if (!text.startsWith(requireBanner) || /\brequire\b/.test(text.slice(requireBanner.length))) return contents
  return new TextEncoder().encode(text.slice(requireBanner.length).replace(/^\n/, ""))
}

/** How the function's code is bundled; benchmarks bundle their children the same way. */
export const lambdaBundleOptions: BuildOptions = {
  bundle: true,
  platform: "node",
  target: "node24",
  format: "esm",
  // the AWS SDK's ES modules (dist-es) before its CommonJS (dist-cjs): esbuild leaves out the
  // commands and schemas a client does not use, and splits out what the SDK imports lazily (the
  // credential providers). JS read at init 868 -> 614 KB; under RIE the download step's cold
  // start used 370 -> 340 ms CPU (the bare-SDK peer, bundled with these options too: 260 -> 250)
  mainFields: ["module", "main"],
  // sharp is native: it ships beside the bundle, in the zip's node_modules
  external: ["sharp"],
  banner: { js: requireBanner },
  sourcemap: false,
  minify: true,
  legalComments: "none",
  logLevel: "warning",
  // the implementations every init loads in the handler's own module graph (eagerImports.ts);
  // effect's modules, not its barrels, so that what the code does not use is left out (deepImports.ts);
  // node:http through require, not its ES wrapper, which loads Node's undici (nodeHttp.ts)
  plugins: [lambdaEagerImports, effectDeepImports, nodeHttpViaRequire]
}

/** A module of this package beside this one: `.ts` here in src/, `.js` once compiled to lib/. */
const sibling = (path: string) => join(import.meta.dirname, "..", `${path}${extname(import.meta.filename)}`)

/** What to bundle: the built-in handler, or the author's module at `pipelinePath` bound to `handlerFor`. */
const entryFor = (pipelinePath: string | undefined): BuildOptions => {
  if (pipelinePath === undefined) return { entryPoints: [sibling("lambda/handler")] }
  const module = resolve(startedIn(), pipelinePath)
  if (!existsSync(module)) throw new Error(`cannot load ${pipelinePath}: no such file ${module}`)
  return {
    stdin: {
      contents: [
        `import * as author from ${JSON.stringify(module)}`,
        `import { handlerFor, initialized } from ${JSON.stringify(sibling("lambda/runtime"))}`,
        // under Lambda a missing or invalid setting fails the INIT phase, naming the setting
        `export const handler = await initialized(handlerFor(author.default ?? author.pipeline))`
      ].join("\n"),
      resolveDir: dirname(module),
      sourcefile: "pipeline-handler.js",
      loader: "js"
    },
    // a module exports `default` or `pipeline`, not both: the other one is undefined, as meant
    logOverride: { "import-is-undefined": "silent" }
  }
}

interface Bundle {
  /**
   * The files of dist/lambda/, by their path there: handler.js and the chunks it imports. Code
   * split: what is only imported dynamically (the clients and credential providers a run does not use) is a chunk
   * of its own that is neither read nor compiled until imported. Measured (Node 24.21, the
   * thumbnail handler built at init): import and init 450 -> 360 ms, RSS after them 107 -> 87 MB.
   */
  readonly files: ReadonlyArray<BundleFile>
  /** Whether the code imports sharp, which then ships beside it. */
  readonly usesSharp: boolean
}

export interface BundleFile {
  /** Path under dist/lambda/, with forward slashes. */
  readonly name: string
  readonly contents: Uint8Array
}

const lambdaDir = dirname(bundlePath)

/** Bundles the handler to dist/lambda/. */
const bundleContents = async (pipelinePath?: string): Promise<Bundle> => {
  const result = await esbuild({
    ...lambdaBundleOptions,
    ...entryFor(pipelinePath),
    outdir: lambdaDir,
    entryNames: "handler",
    chunkNames: "chunks/[name]-[hash]",
    splitting: true,
    write: false,
    metafile: true
  })
  const files = (result.outputFiles ?? [])
    .map((file) => ({ name: relative(lambdaDir, file.path).split(sep).join("/"), contents: withoutUnusedRequire(file.contents) }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  if (!files.some((file) => file.name === "handler.js")) throw new Error("esbuild wrote no handler.js")
  // the chunks (named by their content) before the handler that imports them
  for (const file of [...files.filter((f) => f.name !== "handler.js"), ...files.filter((f) => f.name === "handler.js")]) {
    writeAtomically(join(lambdaDir, file.name), file.contents)
  }
  writeAtomically(join(lambdaDir, "package.json"), lambdaPackageJson)
  const imports = Object.values(result.metafile.outputs).flatMap((out) => out.imports)
  return { files, usesSharp: imports.some((imported) => imported.external && imported.path === "sharp") }
}

const bytesOf = (files: ReadonlyArray<BundleFile>) => files.reduce((sum, file) => sum + file.contents.length, 0)

/** Bundles the handler to dist/lambda/ (handler.js and its chunks); returns their size in bytes. */
export const bundle = async (pipelinePath?: string): Promise<number> => bytesOf((await bundleContents(pipelinePath)).files)

// ---------------------------------------------------------------------------------------------
// 2. sharp for the target platform

/** npm, as the one running this script when there is one (`npm run build`), else from PATH. */
export const npm = (args: ReadonlyArray<string>, cwd: string): string => {
  const cli = process.env["npm_execpath"]
  const [command, prefix] = cli !== undefined && /npm-cli\.c?js$/.test(cli) ? [process.execPath, [cli]] : ["npm", []]
  const result = spawnSync(command, [...prefix, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" })
  if (result.error !== undefined || result.status !== 0) {
    throw new Error(`npm ${args.join(" ")} failed:\n${result.error?.message ?? ""}${result.stdout}${result.stderr}`)
  }
  return result.stdout
}

/**
 * A node_modules with sharp and its libvips for linux/glibc on `arch`, cached under .tools/ by
 * version and platform. Lambda's Node 24 runtime runs on Amazon Linux 2023 (glibc 2.34).
 */
export const stageSharp = (arch: Architecture): string => {
  const version = sharpVersion()
  const cpu = npmCpu[arch]
  const dir = join(startedIn(), "node_modules", ".cache", "sqs-state-pipeline", `sharp-${version}-linux-${cpu}-glibc`)
  const modules = join(dir, "node_modules")
  const binary = join(modules, "@img", `sharp-linux-${cpu}`, "package.json")
  const libvips = join(modules, "@img", `sharp-libvips-linux-${cpu}`, "package.json")
  if (existsSync(binary) && existsSync(libvips)) return modules
  rmSync(dir, { recursive: true, force: true }) // incomplete: say, files deleted by hand

  // install next to it and rename, so an interrupted or concurrent install never looks complete
  const staging = `${dir}.${process.pid}.tmp`
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging, { recursive: true })
  writeFileSync(join(staging, "package.json"), `${JSON.stringify({ private: true, dependencies: { sharp: version } })}\n`)
  npm(
    [
      "install", "--no-save", "--no-package-lock", "--omit=dev", "--no-audit", "--no-fund",
      // prebuilt binaries only: sharp's install script would look at this machine, not the target
      "--ignore-scripts",
      "--os=linux", `--cpu=${cpu}`, "--libc=glibc"
    ],
    staging
  )
  for (const path of [binary, libvips]) {
    if (!existsSync(path.replace(dir, staging))) {
      throw new Error(`npm installed sharp ${version} without ${relative(dir, path)} for linux-${cpu}`)
    }
  }
  try {
    renameSync(staging, dir)
  } catch (error) {
    // a concurrent build got there first with the same packages: use theirs
    if (!existsSync(binary)) throw error
    rmSync(staging, { recursive: true, force: true })
  }
  return modules
}

// ---------------------------------------------------------------------------------------------
// 3. the zip

export interface ZipEntry {
  /** Path in the zip, with forward slashes. */
  readonly name: string
  readonly data: Buffer
  /** Unix permission bits. */
  readonly mode: number
}

/** Left out of the function's node_modules: only for building or reading. */
const excludedDirectories = new Set([".bin", ".git", ".github", "src", "test", "tests", "include", "install", "docs"])
const excludedFile = (name: string) =>
  name === ".package-lock.json" || name.startsWith(".env") ||
  (/\.([cm]?ts|map|md|h|gyp|gypi|cc|cpp)$/.test(name) && !/^LICEN[CS]E/i.test(name))

const walk = (dir: string, zipPrefix: string, out: Array<ZipEntry>) => {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      if (!excludedDirectories.has(entry.name)) walk(path, `${zipPrefix}${entry.name}/`, out)
    } else if (!excludedFile(entry.name)) {
      // symbolic links are followed: the zip holds plain files
      const stat = statSync(path)
      if (stat.isFile()) out.push({ name: `${zipPrefix}${entry.name}`, data: readFileSync(path), mode: (stat.mode & 0o777) | 0o644 })
    }
  }
}

/**
 * What goes in the function's zip, sorted by name: the bundle (handler.js alone, or handler.js
 * and its chunks), its package.json, `modules` if any.
 */
export const zipEntries = (bundled: Uint8Array | ReadonlyArray<BundleFile>, modules: string | undefined): Array<ZipEntry> => {
  const files: ReadonlyArray<BundleFile> = bundled instanceof Uint8Array ? [{ name: "handler.js", contents: bundled }] : bundled
  const entries: Array<ZipEntry> = [
    ...files.map((file) => ({ name: `dist/lambda/${file.name}`, data: Buffer.from(file.contents), mode: 0o644 })),
    { name: "dist/lambda/package.json", data: Buffer.from(lambdaPackageJson), mode: 0o644 }
  ]
  if (modules !== undefined) walk(modules, "node_modules/", entries)
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}

/** 1980-01-01 00:00 (the zip format's epoch) local time: fflate writes local time, so this is the same in any time zone. */
const zipTime = new Date(1980, 0, 1)

/**
 * A zip of `entries`, in their order, deflated, every entry with the same timestamp so that equal
 * contents give equal bytes, and made on Unix so unzip (and Lambda) apply the mode. fflate's
 * default level 6: level 9 makes it 0.1% smaller (sharp's libvips is most of it) in half again the time.
 */
export const writeZip = (entries: ReadonlyArray<ZipEntry>): Buffer => {
  // fflate writes no zip64; Lambda's own limits (250 MB unpacked) keep far from it
  if (entries.length > 0xffff) throw new Error("the zip would need zip64")
  const files: Zippable = {}
  for (const entry of entries) {
    files[entry.name] = [entry.data, { mtime: zipTime, os: 3, attrs: ((0o100000 | entry.mode) << 16) >>> 0 }]
  }
  const zip = zipSync(files)
  return Buffer.from(zip.buffer, zip.byteOffset, zip.byteLength)
}

// ---------------------------------------------------------------------------------------------

export interface BuildResult {
  readonly zip: string
  readonly zipBytes: number
  readonly bundleBytes: number
  readonly entries: number
  readonly withSharp: boolean
}

/** Builds the zip for `arch`: the built-in pipelines, or the author's module at `pipelinePath`. */
export const build = async (arch: Architecture = defaultArchitecture, pipelinePath?: string): Promise<BuildResult> => {
  const { files, usesSharp } = await bundleContents(pipelinePath)
  const entries = zipEntries(files, usesSharp ? stageSharp(arch) : undefined)
  const zip = writeZip(entries)
  const path = zipPath(arch)
  writeAtomically(path, zip)
  return { zip: path, zipBytes: zip.length, bundleBytes: bytesOf(files), entries: entries.length, withSharp: usesSharp }
}

const newestChange = (path: string): number => {
  if (!existsSync(path)) return 0
  const stat = statSync(path)
  if (!stat.isDirectory()) return stat.mtimeMs
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newestChange(join(path, name))))
}

/** True when the built-in zip is missing or older than this package's code or its lockfile. */
export const needsBuild = (arch: Architecture): boolean => {
  const zip = zipPath(arch)
  if (!existsSync(zip)) return true
  const inputs = [join(import.meta.dirname, ".."), join(root, "package.json"), join(root, "package-lock.json")]
  return Math.max(...inputs.map(newestChange)) > statSync(zip).mtimeMs
}

/**
 * Builds the zip for `arch` unless it is up to date; returns its path. An author's pipeline is
 * always bundled again (its imports are its own); the zip is deterministic, so an unchanged one
 * uploads nothing new.
 */
export const ensureBuilt = async (arch: Architecture, pipelinePath?: string): Promise<string> => {
  if (pipelinePath !== undefined || needsBuild(arch)) report(await build(arch, pipelinePath), arch)
  return zipPath(arch)
}

const size = (bytes: number) => bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(0)} KiB`

export const report = (result: BuildResult, arch: Architecture) => {
  const shown = (path: string) => relative(startedIn(), path).split(sep).join("/")
  console.log(`${shown(bundlePath)}: ${size(result.bundleBytes)} (JS bundle with its chunks, AWS SDK included)`)
  const contents = result.withSharp ? `bundle + sharp ${sharpVersion()} with libvips for linux-${npmCpu[arch]}` : "bundle"
  console.log(`${shown(result.zip)}: ${size(result.zipBytes)} (${result.entries} files: ${contents})`)
}
