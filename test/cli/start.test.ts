/**
 * `npm start` as a user sees it: the thumbnail example on the embedded backends, then a second
 * run that continues (nothing done twice), then `--fresh`.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"

const dataDir = mkdtempSync(join(tmpdir(), "start-test-"))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

const start = (...args: ReadonlyArray<string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const env: Record<string, string | undefined> = { ...process.env, PIPELINE_DATA_DIR: dataDir }
    for (const name of ["PIPELINE_QUEUE_URL", "PIPELINE_BUCKET", "IMAGE_SOURCE"]) delete env[name]
    const child = spawn(process.execPath, ["src/bin/cli.ts", "start", ...args], { env })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("exit", (code) => resolve({ code, stdout, stderr }))
  })

describe("npm start", { timeout: 120_000 }, () => {
  it("runs the example, continues on a second run, and starts over with --fresh", async () => {
    const first = await start("--count", "6")
    assert.strictEqual(first.code, 0, first.stderr)
    assert.include(first.stderr, "produced 6 records")
    assert.include(first.stdout, "records done:        5 of 6")
    assert.include(first.stdout, "dead-letter queue:   1")
    assert.match(first.stdout, /"stock_no":"STK000004".*CorruptImage/)
    assert.include(first.stdout, "thumbnails made:     10")
    assert.include(first.stdout, join(dataDir, "bucket", "thumbnails"))
    assert.strictEqual(readdirSync(join(dataDir, "bucket", "thumbnails", "100")).length, 5)

    const again = await start("--count", "6")
    assert.strictEqual(again.code, 0, again.stderr)
    assert.include(again.stderr, "continuing")
    assert.include(again.stdout, "records done:        5 of 6")
    assert.include(again.stdout, "thumbnails made:     0")

    const fresh = await start("--count", "6", "--fresh")
    assert.strictEqual(fresh.code, 0, fresh.stderr)
    assert.include(fresh.stderr, "produced 6 records")
    assert.include(fresh.stdout, "thumbnails made:     10")
  })
})
