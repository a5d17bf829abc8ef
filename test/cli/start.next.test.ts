/**
 * After `npm start`, the README's next commands as written: `produce` some sample stock numbers,
 * then `agent` (which runs until stopped). The agent finds the samples through the IMAGE_SOURCE
 * that start saved in the data dir's settings.json, with nothing set in the environment.
 */
import { assert, describe, it } from "@effect/vitest"
import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { ConfigProvider, Effect } from "effect"
import { afterAll, afterEach } from "vitest"
import { backendsFor } from "../../src/cli/layers.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { cleanUpBackends, temporaryDir } from "../support/backends.ts"
import { killRunningClis, runCli, startCli, waitFor } from "../support/cli.ts"

afterEach(killRunningClis)
afterAll(cleanUpBackends)

/** Messages on the queue the commands use (visible, in flight or delayed). */
const onQueue = (env: Record<string, string>) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const { queueUrl } = yield* EngineSettings
      const attributes = yield* (yield* MessageQueue).attributes(queueUrl)
      return attributes.approximateVisible + attributes.approximateInFlight + attributes.approximateDelayed
    }).pipe(Effect.provide(backendsFor("thumbnails")), Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env))))
  )

describe("after npm start", { timeout: 120_000 }, () => {
  it("produce and agent run the example on start's samples with no IMAGE_SOURCE set", async () => {
    const env = { PIPELINE_DATA_DIR: temporaryDir("start-next-") }
    const started = await runCli(["start", "--count", "4"], env)
    assert.strictEqual(started.code, 0, started.stderr)
    const saved = JSON.parse(readFileSync(join(env.PIPELINE_DATA_DIR, "settings.json"), "utf8")) as Record<string, string>
    assert.match(saved["IMAGE_SOURCE"]!, /^file:\/\/\/.*\/samples\/by-stock-no\/\{stock_no\}$/)

    // the README's commands; STK000003 is the PNG sample, found by the same template
    const produced = await runCli(["produce", "STK000001", "STK000002", "STK000003"], env)
    assert.strictEqual(produced.code, 0, produced.stderr)
    const agent = startCli(["agent"], env)
    await waitFor(async () => (await onQueue(env)) === 0, 60_000, "the produced records to be done")
    agent.child.kill("SIGINT")
    const result = await agent.exit
    assert.strictEqual(result.code, 0, result.stderr)
    assert.include(result.stderr, `"done":3,"deadLettered":0,"retried":0,"duplicates":0,"transitions":9`)
  })

  it("the environment's IMAGE_SOURCE wins over the saved one", async () => {
    const env = { PIPELINE_DATA_DIR: temporaryDir("start-next-") }
    const started = await runCli(["start", "--count", "1"], env)
    assert.strictEqual(started.code, 0, started.stderr)
    await runCli(["produce", "STK000001"], env)
    const result = await runCli(["agent", "--until-empty", "--wait-seconds", "1"], { ...env, IMAGE_SOURCE: "file:///nonexistent/{stock_no}.jpg" })
    assert.strictEqual(result.code, 0, result.stderr)
    assert.include(result.stderr, `"done":0,"deadLettered":1`, "no such file: the environment's source was used")
  })

  it("a settings.json that is not a JSON object of strings is one line naming the file, exit 1", async () => {
    const env = { PIPELINE_DATA_DIR: temporaryDir("start-next-") }
    const path = join(env.PIPELINE_DATA_DIR, "settings.json")
    writeFileSync(path, `{"IMAGE_SOURCE": 5}`)
    const result = await runCli(["agent", "--until-empty"], env)
    assert.strictEqual(result.code, 1, result.stderr)
    assert.match(result.stderr, new RegExp(`^error: ${path.replaceAll("/", "\\/")} is not a JSON object of settings \\(names to strings\\): .*\n`))
  })
})
