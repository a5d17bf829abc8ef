/**
 * The layer check of `npm test` (.dependency-cruiser.cjs, run by scripts/depcruise.ts) on a small tree
 * that breaks each rule once, next to imports the rules allow: it must report exactly the breaks.
 */
import { execFile } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { promisify } from "node:util"
import { afterAll, assert, describe, it } from "@effect/vitest"

const root = join(import.meta.dirname, "..")

/** File path -> source. Every import marked `allowed` must go unreported. */
const tree: Record<string, string> = {
  "src/domain/model.ts": [
    `import { createHash } from "node:crypto" // allowed: hashing is no I/O`,
    `import { readFileSync } from "node:fs"`,
    `import type { Clock } from "../services/Clock.ts" // a type-only import counts too`,
    `import { other } from "./other.ts" // allowed`
  ].join("\n"),
  "src/domain/other.ts": `export const other = 1`,
  "src/services/Clock.ts": `import { other } from "../domain/other.ts" // allowed`,
  "src/services/Queue.ts": [
    `import { other } from "../domain/other.ts" // allowed`,
    `import type { Status } from "../programs/status.ts"`,
    // the service loading its implementation lazily: a cycle through a dynamic import is allowed
    `export const load = () => import("./queue/impl.ts")`
  ].join("\n"),
  "src/services/queue/impl.ts": [
    `import { load } from "../Queue.ts" // allowed`,
    // a dynamic import still obeys the layers
    `export const sneak = () => import("../../pipelines/greeting.ts")`
  ].join("\n"),
  "src/pipelines/greeting.ts": `import { other } from "../domain/other.ts" // allowed`,
  "src/pipelines/thumbnails.ts": [
    `import { Clock } from "../services/Clock.ts" // allowed`,
    `import { greeting } from "./greeting.ts" // allowed`,
    `import { status } from "../programs/status.ts"`
  ].join("\n"),
  "src/programs/status.ts": `import { Clock } from "../services/Clock.ts" // allowed`,
  "src/programs/engine.ts": [
    `import { load } from "../services/Queue.ts" // allowed`,
    `import { status } from "./status.ts" // allowed`,
    `import { greeting } from "../pipelines/greeting.ts"`,
    `import { flags } from "../cli/flags.ts"`
  ].join("\n"),
  "src/programs/a.ts": `import { b } from "./b.ts"`,
  "src/programs/b.ts": `import { a } from "./a.ts"`,
  "src/cli/flags.ts": `export const flags = 1`,
  "src/cli/main.ts": [
    `import { run } from "../programs/engine.ts" // allowed`,
    `import { thumbnails } from "../pipelines/thumbnails.ts" // allowed`,
    `import { model } from "../domain/model.ts" // allowed`,
    `import { tool } from "../../scripts/tool.ts"`
  ].join("\n"),
  "src/lambda/handler.ts": [
    `import { run } from "../programs/engine.ts" // allowed`,
    `import { gone } from "./missing.ts"`
  ].join("\n"),
  "scripts/tool.ts": `export const tool = 1`
}

/** Each violation as "rule: from -> to"; a cycle is reported once, from its first module to the next. */
const expected = [
  "domain-does-no-io: src/domain/model.ts -> fs",
  "domain-imports-domain-only: src/domain/model.ts -> src/services/Clock.ts",
  "services-import-domain-and-services: src/services/Queue.ts -> src/programs/status.ts",
  "services-import-domain-and-services: src/services/queue/impl.ts -> src/pipelines/greeting.ts",
  "pipelines-import-below: src/pipelines/thumbnails.ts -> src/programs/status.ts",
  "programs-import-below: src/programs/engine.ts -> src/pipelines/greeting.ts",
  "programs-import-below: src/programs/engine.ts -> src/cli/flags.ts",
  "no-circular: src/programs/a.ts -> src/programs/b.ts",
  "src-not-to-tooling: src/cli/main.ts -> scripts/tool.ts",
  "not-to-unresolvable: src/lambda/handler.ts -> ./missing.ts"
]

const dir = mkdtempSync(join(tmpdir(), "layering-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("the layer check", () => {
  it("reports each import against the layers, and no allowed one", async () => {
    for (const [path, source] of Object.entries(tree)) {
      mkdirSync(join(dir, dirname(path)), { recursive: true })
      writeFileSync(join(dir, path), source + "\n")
    }
    // the command `npm test` runs, in the tree's folder
    const failure = await promisify(execFile)(
      process.execPath,
      [join(root, "scripts", "depcruise.ts"), "src", "--config", join(root, ".dependency-cruiser.cjs")],
      { cwd: dir }
    ).then(() => assert.fail("the check passed a tree that breaks the layers"), (error) => error)
    // "  error rule: from → to"; a cycle goes on, on the next lines, with its next module
    const reported = Array.from(
      String(failure.stdout).matchAll(/^ {2}error ([\w-]+): (\S+) → \s*(\S+)/gm),
      ([, rule, from, to]) => `${rule}: ${from} -> ${to}`
    )
    assert.deepStrictEqual(reported.sort(), [...expected].sort())
    // it exits with the number of errors, which is what stops `npm test`
    assert.strictEqual(failure.code, expected.length)
  })
})
