/**
 * `produce` as a user runs it, on the embedded queue: ids, JSON records, JSON Lines from a file
 * and from stdin; a bad line stops everything unless --skip-invalid; exit codes.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { afterAll } from "vitest"
import { Attribute } from "../../src/domain/transition.ts"
import { LocalQueue } from "../../src/services/LocalQueue.ts"

const dirs: Array<string> = []
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })))

const produce = (dataDir: string, args: ReadonlyArray<string>, stdin?: string) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const env: Record<string, string | undefined> = { ...process.env, PIPELINE_DATA_DIR: dataDir }
    delete env["PIPELINE_QUEUE_URL"]
    const child = spawn(process.execPath, ["src/bin/cli.ts", "produce", "--pipeline", "greeting", ...args], { env })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("exit", (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(stdin ?? "")
  })

/** Every message on the local queue, taken off it. */
const drained = (dataDir: string) =>
  Effect.runPromise(Effect.gen(function*() {
    const queue = yield* LocalQueue.make({ directory: dataDir })
    const all: Array<{ body: unknown; step: string | undefined; trace: string | undefined }> = []
    while (true) {
      const batch = yield* queue.receive("pipeline", { maxMessages: 10 })
      if (batch.length === 0) return all
      all.push(...batch.map((m) => ({ body: JSON.parse(m.body), step: m.attributes[Attribute.step], trace: m.attributes[Attribute.traceId] })))
    }
  }).pipe(Effect.scoped))

const freshDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "produce-test-"))
  dirs.push(dir)
  return dir
}

describe("produce", { timeout: 30_000 }, () => {
  it("sends ids as initial records and JSON records as they are, with step 0 and a trace id each", async () => {
    const dir = freshDir()
    const result = await produce(dir, ["a", `{"id":"b","greeting":"hi"}`])
    assert.strictEqual(result.code, 0, result.stderr)
    assert.include(result.stdout, "sent 2 records to pipeline")
    const messages = await drained(dir)
    assert.sameDeepMembers(messages.map((m) => m.body), [{ id: "a" }, { id: "b", greeting: "hi" }])
    assert.isTrue(messages.every((m) => m.step === "0" && typeof m.trace === "string" && m.trace.length > 0))
    assert.notStrictEqual(messages[0]!.trace, messages[1]!.trace)
  })

  it("a bad line in a file is reported with its number and nothing is sent; --skip-invalid sends the rest", async () => {
    const dir = freshDir()
    const file = join(dir, "records.jsonl")
    writeFileSync(file, `{"id":"one"}\n\n{"id":2}\n{"id":"three"}\n{oops\n`)
    const refused = await produce(dir, ["--file", file])
    assert.strictEqual(refused.code, 1)
    assert.include(refused.stderr, `${file} line 3: Expected string`)
    assert.include(refused.stderr, `${file} line 5: not JSON`)
    assert.include(refused.stderr, "nothing was sent")
    assert.deepStrictEqual(await drained(dir), [])

    const skipped = await produce(dir, ["--file", file, "--skip-invalid"])
    assert.strictEqual(skipped.code, 0, skipped.stderr)
    assert.include(skipped.stdout, "sent 2 records to pipeline (2 invalid skipped)")
    assert.sameDeepMembers((await drained(dir)).map((m) => m.body), [{ id: "one" }, { id: "three" }])
  })

  it("reads JSON Lines from stdin", async () => {
    const dir = freshDir()
    const result = await produce(dir, [], `{"id":"s1"}\n{"id":"s2"}\n`)
    assert.strictEqual(result.code, 0, result.stderr)
    assert.sameDeepMembers((await drained(dir)).map((m) => m.body), [{ id: "s1" }, { id: "s2" }])
  })

  it("bad usage exits 2", async () => {
    const result = await produce(freshDir(), ["--no-such-flag"])
    assert.strictEqual(result.code, 2)
    const unknownPipeline = await new Promise<number | null>((resolve) =>
      spawn(process.execPath, ["src/bin/cli.ts", "produce", "--pipeline", "nope", "x"]).on("exit", resolve)
    )
    assert.strictEqual(unknownPipeline, 2)
  })
})
