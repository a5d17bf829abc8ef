/**
 * `npm run build`: the zip holds the bundle and sharp for the Lambda architecture, and nothing that
 * is only for building, testing or configuring this repository. The zip is listed and checked by
 * Python's zipfile (another implementation than the writer's), and the x86_64 zip is unpacked
 * outside the repository and loaded, sharp and all, when this machine can run it.
 */
import { assert, describe, it } from "@effect/vitest"
import { unzipSync } from "fflate"
import { execFile } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { afterAll, beforeAll } from "vitest"
import { type Architecture, bundlePath, root, sharpVersion, stageSharp, zipEntries, zipPath } from "../../src/deploy/build.ts"

const execFileAsync = promisify(execFile)

const build = (arch: Architecture) =>
  execFileAsync(process.execPath, [join(root, "src", "bin", "cli.ts"), "build", "--arch", arch], { cwd: root, maxBuffer: 1 << 20 })

interface Entry {
  readonly name: string
  readonly size: number
  /** Unix mode bits, as Lambda unpacks them. */
  readonly mode: number
  readonly time: ReadonlyArray<number>
  /** ELF e_machine of a native binary: 183 AArch64, 62 x86-64. */
  readonly machine: number | null
}

/** Lists a zip with Python's zipfile, after it checked every entry's CRC. */
const listZip = async (path: string): Promise<Array<Entry>> => {
  const script = [
    "import json, struct, sys, zipfile",
    "z = zipfile.ZipFile(sys.argv[1])",
    "bad = z.testzip()",
    "assert bad is None, 'bad CRC: ' + str(bad)",
    "out = []",
    "for i in z.infolist():",
    "    head = z.open(i).read(20)",
    "    machine = struct.unpack('<H', head[18:20])[0] if head[:4] == b'\\x7fELF' else None",
    "    out.append({'name': i.filename, 'size': i.file_size, 'mode': i.external_attr >> 16, 'time': i.date_time, 'machine': machine})",
    "print(json.dumps(out))"
  ].join("\n")
  const { stdout } = await execFileAsync("python3", ["-c", script, path], { maxBuffer: 16 << 20 })
  return JSON.parse(stdout) as Array<Entry>
}

const elfMachine: Record<Architecture, number> = { arm64: 183, x86_64: 62 }
const npmCpu: Record<Architecture, string> = { arm64: "arm64", x86_64: "x64" }

let printed = ""
let entries: Array<Entry> = []

beforeAll(async () => {
  printed = (await build("arm64")).stdout
  entries = await listZip(zipPath("arm64"))
})

describe("npm run build", () => {
  it("prints the JS bundle's size and the zip's", () => {
    assert.match(printed, /dist\/lambda\/handler\.js: [\d.]+ (KiB|MiB)/)
    assert.match(printed, /dist\/function-arm64\.zip: [\d.]+ MiB/)
  })

  it("puts the bundle and its package.json where the handler setting points", () => {
    const names = entries.map((entry) => entry.name)
    assert.include(names, "dist/lambda/handler.js")
    assert.include(names, "dist/lambda/package.json")
    const script = "import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).read('dist/lambda/package.json').decode())"
    return execFileAsync("python3", ["-c", script, zipPath("arm64")]).then(({ stdout }) =>
      assert.deepStrictEqual(JSON.parse(stdout), { type: "module" })
    )
  })

  it("carries sharp, at the project's version, with its binary and libvips for linux-arm64 only", () => {
    const byName = new Map(entries.map((entry) => [entry.name, entry]))
    assert.isTrue(byName.has("node_modules/sharp/package.json"))
    const version = sharpVersion()
    const binary = byName.get(`node_modules/@img/sharp-linux-arm64/lib/sharp-linux-arm64-${version}.node`)
    assert.isDefined(binary)
    assert.strictEqual(binary?.machine, elfMachine.arm64)
    const libvips = entries.filter((entry) => /^node_modules\/@img\/sharp-libvips-linux-arm64\/lib\/libvips-cpp\.so/.test(entry.name))
    assert.lengthOf(libvips, 1)
    assert.strictEqual(libvips[0]?.machine, elfMachine.arm64)
    // every native file is for the target, and no other platform's package came along
    for (const entry of entries.filter((e) => e.machine !== null)) assert.strictEqual(entry.machine, elfMachine.arm64, entry.name)
    const platforms = new Set(entries.flatMap((e) => /^node_modules\/@img\/(sharp-(?:libvips-)?[a-z]+-[a-z0-9]+)\//.exec(e.name)?.[1] ?? []))
    assert.deepStrictEqual([...platforms].sort(), ["sharp-libvips-linux-arm64", "sharp-linux-arm64"])
    // sharp's runtime dependencies
    for (const dependency of ["detect-libc", "semver", "@img/colour"]) assert.isTrue(byName.has(`node_modules/${dependency}/package.json`), dependency)
  })

  it("holds nothing else: no .git, tests, sources, .env, TypeScript, or repository files", () => {
    for (const { name } of entries) {
      assert.isTrue(name.startsWith("dist/lambda/") || name.startsWith("node_modules/"), name)
      const segments = name.split("/")
      for (const forbidden of [".git", "test", "tests", "src", ".tools", "scripts", "infra", ".bin"]) {
        assert.notInclude(segments, forbidden, name)
      }
      assert.notMatch(name, /(^|\/)\.env/, name)
      assert.notMatch(name, /\.[cm]?ts$/, name)
      assert.notMatch(name, /(^|\/)(\.npmrc|\.package-lock\.json|package-lock\.json|config\.js|credentials)$/, name)
    }
    // the bundle: its entry, its package.json and the chunks it imports (code split), nothing else
    const dist = entries.filter((e) => e.name.startsWith("dist/")).map((e) => e.name)
    assert.includeMembers(dist, ["dist/lambda/handler.js", "dist/lambda/package.json"])
    for (const name of dist) assert.match(name, /^dist\/lambda\/(handler\.js|package\.json|chunks\/[\w-]+\.js)$/)
  })

  it("stores regular files that Lambda's user can read, executables still executable", () => {
    const modules = stageSharp("arm64")
    for (const { name, mode } of entries) {
      assert.strictEqual(mode & 0o170000, 0o100000, name)
      assert.strictEqual(mode & 0o444, 0o444, name)
      if (name.startsWith("node_modules/")) {
        assert.strictEqual(mode & 0o777, (statSync(join(modules, name.slice("node_modules/".length))).mode & 0o777) | 0o644, name)
      }
    }
    assert.isTrue(entries.some(({ mode }) => (mode & 0o111) !== 0), "some file of sharp's packages is executable (semver's bin)")
  })

  it("gives the same bytes for the same inputs, in any time zone (so an unchanged deploy uploads nothing)", async () => {
    for (const entry of entries) assert.deepStrictEqual(entry.time, [1980, 1, 1, 0, 0, 0], entry.name)
    // the inputs are pinned here, as other edits may be under way in src/
    const directory = mkdtempSync(join(tmpdir(), "zip-inputs-"))
    try {
      // handler.js alone stands for the bundle here: what is tested is the zip writer
      const handler = join(directory, "handler.js")
      writeFileSync(handler, readFileSync(bundlePath))
      const script = [
        `import { readFileSync, writeFileSync } from "node:fs"`,
        `const { stageSharp, writeZip, zipEntries } = await import(${JSON.stringify(join(root, "src", "deploy", "build.ts"))})`,
        `writeFileSync(process.argv[2], writeZip(zipEntries(readFileSync(process.argv[1]), stageSharp("arm64"))))`
      ].join("\n")
      // two builds of the zip; its timestamps are local time, so at the far ends of the world's time zones
      const zips = await Promise.all(["Pacific/Kiritimati", "Pacific/Pago_Pago"].map(async (TZ, i) => {
        const zip = join(directory, `${i}.zip`)
        await execFileAsync(process.execPath, ["--input-type=module", "-e", script, handler, zip], { env: { ...process.env, TZ } })
        return readFileSync(zip)
      }))
      assert.isTrue(zips[0]!.equals(zips[1]!))
      // and it unpacks to exactly the files it was given
      const given = zipEntries(readFileSync(handler), stageSharp("arm64"))
      const unpacked = unzipSync(zips[0]!)
      assert.deepStrictEqual(Object.keys(unpacked), given.map((entry) => entry.name))
      for (const entry of given) assert.isTrue(entry.data.equals(unpacked[entry.name]!), entry.name)
    } finally {
      rmSync(directory, { recursive: true, force: true })
    }
  }, 60_000)
})

// The x86_64 zip runs on an x86_64 Linux build machine: unpack it away from the repository's
// node_modules and load the handler and sharp from it, as Lambda would.
const host: Architecture | undefined = process.platform === "linux" && process.arch === "x64" ? "x86_64" : process.platform === "linux" && process.arch === "arm64" ? "arm64" : undefined

describe.runIf(host !== undefined)(`the ${host} zip, unpacked outside the repository`, () => {
  const arch = host!
  const directory = mkdtempSync(join(tmpdir(), "function-zip-"))
  afterAll(() => rmSync(directory, { recursive: true, force: true }))

  it("loads the handler and resizes an image with its own sharp", async () => {
    await build(arch)
    await execFileAsync("python3", ["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])", zipPath(arch), directory])
    writeFileSync(
      join(directory, "dist", "lambda", "probe.mjs"),
      [
        `import { createRequire } from "node:module"`,
        `import sharp from "sharp"`,
        `const { handler } = await import("./handler.js")`,
        `const image = await sharp({ create: { width: 40, height: 20, channels: 3, background: "#c00" } }).jpeg().toBuffer()`,
        `const resized = await sharp(image).resize(10).toBuffer({ resolveWithObject: true })`,
        `const from = createRequire(import.meta.url).resolve("sharp")`,
        `console.log(JSON.stringify({ handler: typeof handler, width: resized.info.width, vips: sharp.versions.vips, from }))`
      ].join("\n")
    )
    const { stdout } = await execFileAsync(process.execPath, [join(directory, "dist", "lambda", "probe.mjs")], {
      cwd: directory,
      env: { PATH: process.env["PATH"] ?? "", AWS_REGION: "us-east-1" }
    })
    const result = JSON.parse(stdout.trim().split("\n").at(-1)!) as { handler: string; width: number; vips: string; from: string }
    assert.strictEqual(result.handler, "function")
    assert.strictEqual(result.width, 10)
    assert.isTrue(result.from.startsWith(join(directory, "node_modules", "sharp")), result.from)
    assert.match(result.vips, /^\d+\.\d+/)
    assert.include(readFileSync(join(directory, "node_modules", "@img", `sharp-linux-${npmCpu[arch]}`, "package.json"), "utf8"), sharpVersion())
  }, 120_000)
})
