/**
 * `produce` as a user runs it, on the embedded queue: ids, JSON records, JSON Lines from a file
 * and from stdin; a bad line stops everything unless --skip-invalid; exit codes.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll } from "vitest"
import { cleanUpBackends, drainLocalQueue, temporaryDir } from "../support/backends.ts"
import { runCli, startCli } from "../support/cli.ts"

afterAll(cleanUpBackends)

/** What `produce --pipeline greeting` (or the tracked module) sent: that pipeline's own queue. */
const drained = (dir: string, pipelineName = "greeting") => drainLocalQueue(dir, pipelineName)

const produce = (dataDir: string, args: ReadonlyArray<string>, stdin?: string) =>
  runCli(["produce", "--pipeline", "greeting", ...args], { PIPELINE_DATA_DIR: dataDir }, stdin === undefined ? {} : { stdin })

const freshDir = () => temporaryDir("produce-test-")

/** util-linux `script`: runs a command on a pseudo-terminal (stdin, stdout and stderr all a tty). */
const hasScript = spawnSync("script", ["--version"]).status === 0

describe("produce", { timeout: 30_000 }, () => {
  it("sends ids as initial records and JSON records as they are, with step 0 and a trace id each", async () => {
    const dir = freshDir()
    const result = await produce(dir, ["a", `{"id":"b","greeting":"hi"}`])
    assert.strictEqual(result.code, 0, result.stderr)
    assert.include(result.stdout, "sent 2 records to greeting")
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
    assert.include(skipped.stdout, "sent 2 records to greeting (2 invalid skipped)")
    assert.sameDeepMembers((await drained(dir)).map((m) => m.body), [{ id: "one" }, { id: "three" }])
  })

  it("reads JSON Lines from stdin", async () => {
    const dir = freshDir()
    const result = await produce(dir, [], `{"id":"s1"}\n{"id":"s2"}\n`)
    assert.strictEqual(result.code, 0, result.stderr)
    assert.sameDeepMembers((await drained(dir)).map((m) => m.body), [{ id: "s1" }, { id: "s2" }])
  })

  it("bad usage exits 2", async () => {
    const [unknownFlag, unknownPipeline] = await Promise.all([
      produce(freshDir(), ["--no-such-flag"]),
      runCli(["produce", "--pipeline", "nope", "x"], { PIPELINE_DATA_DIR: freshDir() })
    ])
    assert.strictEqual(unknownFlag.code, 2)
    assert.strictEqual(unknownPipeline.code, 2)
    assert.include(unknownPipeline.stderr, `no built-in pipeline "nope"`)
  })

  it("a --file that cannot be read is bad usage: one line with the system's reason, exit 2", async () => {
    const dir = freshDir()
    const file = join(dir, "missing.jsonl")
    const result = await produce(dir, ["--file", file])
    assert.strictEqual(result.code, 2)
    assert.strictEqual(result.stderr, `error: cannot read ${file}: ENOENT: no such file or directory, open '${file}'\n`)
  })

  it.skipIf(!hasScript)("with no records and stdin a terminal, it says how to give them instead of waiting: exit 2", async () => {
    const command = [process.execPath, "src/bin/cli.ts", "produce", "--pipeline", "greeting"].join(" ")
    const result = await startCli([], { PIPELINE_DATA_DIR: freshDir() }, { command: { file: "script", args: ["-qfec", command, "/dev/null"] } }).exit
    assert.strictEqual(result.code, 2, result.stdout)
    assert.include(result.stdout, "error: give ids or JSON records as arguments, --file with JSON Lines, or JSON Lines on stdin")
  })
})

describe("--pipeline path/to/module.ts", { timeout: 30_000 }, () => {
  it("takes the module's named `pipeline` export when it has no default export", async () => {
    const dir = freshDir()
    const result = await runCli(["produce", "--pipeline", "test/support/pipelines/named.ts", "x"], { PIPELINE_DATA_DIR: dir })
    assert.strictEqual(result.code, 0, result.stderr)
    assert.include(result.stdout, "sent 1 records to tracked")
    // the tracked pipeline's initial record (the default pipeline would have made {"stock_no":"x"})
    assert.deepStrictEqual((await drained(dir, "tracked")).map((m) => m.body), [{ id: "x" }])
  })

  it("a module path is taken from where the command was started (INIT_CWD under npm run), not the project's folder", async () => {
    const dir = freshDir()
    const result = await runCli(["produce", "--pipeline", "pipelines/named.ts", "x"], { PIPELINE_DATA_DIR: dir, INIT_CWD: "test/support" })
    assert.strictEqual(result.code, 0, result.stderr)
    assert.deepStrictEqual((await drained(dir, "tracked")).map((m) => m.body), [{ id: "x" }])
  })

  it("a --file path is taken from where the command was started too", async () => {
    const dir = freshDir()
    writeFileSync(join(dir, "records.jsonl"), `"from-file"\n`)
    const result = await runCli(["produce", "--pipeline", "greeting", "--file", "records.jsonl"], { PIPELINE_DATA_DIR: dir, INIT_CWD: dir })
    assert.strictEqual(result.code, 0, result.stderr)
    assert.deepStrictEqual((await drained(dir)).map((m) => m.body), [{ id: "from-file" }])
  })

  it("a module with neither export, or none at that path, is bad usage: one line that says so, exit 2", async () => {
    const dir = freshDir()
    const [none, missing] = await Promise.all([
      runCli(["agent", "--pipeline", "test/support/pipelines/none.ts", "--until-empty"], { PIPELINE_DATA_DIR: dir }),
      runCli(["produce", "--pipeline", "test/support/pipelines/missing.ts", "x"], { PIPELINE_DATA_DIR: dir })
    ])
    assert.strictEqual(none.code, 2, none.stderr)
    assert.strictEqual(none.stderr, `error: test/support/pipelines/none.ts exports no pipeline (expected a default or "pipeline" export)\n`)
    assert.strictEqual(missing.code, 2, missing.stderr)
    assert.match(missing.stderr, /^error: cannot load test\/support\/pipelines\/missing\.ts: .*Cannot find module .*missing\.ts.*\n$/)
    assert.deepStrictEqual(await drained(dir), [], "nothing was sent")
  })

  it("a PIPELINE_NAME that names no pipeline is one line naming the setting, exit 1, even with --pipeline given", async () => {
    const dir = freshDir()
    const [flagged, alone] = await Promise.all([
      runCli(["produce", "--pipeline", "greeting", "a"], { PIPELINE_DATA_DIR: dir, PIPELINE_NAME: "nope" }),
      runCli(["produce", "a"], { PIPELINE_DATA_DIR: dir, PIPELINE_NAME: "nope" })
    ])
    for (const result of [flagged, alone]) {
      assert.strictEqual(result.code, 1, result.stderr)
      assert.strictEqual(result.stderr, `error: the setting PIPELINE_NAME is invalid: no pipeline "nope" (known: greeting, thumbnails)\n`)
    }
    assert.deepStrictEqual(await drained(dir), [], "nothing was sent")
  })

  it("PIPELINE_NAME chooses the pipeline when --pipeline is not given", async () => {
    const dir = freshDir()
    const result = await runCli(["produce", "a"], { PIPELINE_DATA_DIR: dir, PIPELINE_NAME: "greeting" })
    assert.strictEqual(result.code, 0, result.stderr)
    assert.deepStrictEqual((await drained(dir)).map((message) => message.body), [{ id: "a" }])
  })
})

describe("one local queue per pipeline", { timeout: 60_000 }, () => {
  it("another pipeline's agent leaves greeting's records alone; greeting's own agent takes them to done", async () => {
    const dir = freshDir()
    const env = { PIPELINE_DATA_DIR: dir }
    assert.include((await produce(dir, ["a", "b"])).stdout, "sent 2 records to greeting")
    const other = await runCli(["agent", "--pipeline", "test/support/pipelines/tracked.ts", "--until-empty", "--wait-seconds", "0"], env)
    assert.strictEqual(other.code, 0, other.stderr)
    assert.include(other.stderr, `"done":0,"deadLettered":0`)
    const own = await runCli(["agent", "--pipeline", "greeting", "--until-empty", "--wait-seconds", "0"], env)
    assert.strictEqual(own.code, 0, own.stderr)
    assert.include(own.stderr, `"done":2,"deadLettered":0`)
  })
})
