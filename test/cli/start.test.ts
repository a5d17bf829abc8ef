/**
 * `npm start` as a user sees it: the thumbnail example on the embedded backends, then a second
 * run that continues (nothing done twice), then `--fresh`. The environment points at other
 * backends all along, which start must ignore.
 */
import "../support/awsEnv.ts"
import { assert, describe, it } from "@effect/vitest"
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { afterAll, inject } from "vitest"
import { cleanUpBackends, temporaryDir } from "../support/backends.ts"
import { runCli } from "../support/cli.ts"

afterAll(cleanUpBackends)
const dataDir = temporaryDir("start-test-")

/**
 * Backends that fail at once if used: a queue and a bucket that do not exist on the run's moto
 * server (the AWS SDK is pointed at it), and an image source with no images.
 */
const elsewhere = {
  PIPELINE_QUEUE_URL: `${inject("motoEndpoint")}/123456789012/no-such-queue`,
  PIPELINE_BUCKET: "no-such-bucket",
  IMAGE_SOURCE: "file:///nonexistent/{stock_no}.jpg"
}

const start = (...args: ReadonlyArray<string>) => runCli(["start", ...args], { ...elsewhere, PIPELINE_DATA_DIR: dataDir })

describe("npm start", { timeout: 120_000 }, () => {
  it("runs the example on the embedded backends whatever the environment says, continues on a second run, and starts over with --fresh", async () => {
    const first = await start("--count", "6")
    assert.strictEqual(first.code, 0, first.stderr)
    assert.include(first.stderr, "produced 6 records")
    assert.include(first.stdout, "records done:        5 of 6")
    assert.include(first.stdout, "npm run cli -- dlq list", "the summary ends with the next commands")
    assert.include(first.stdout, "dead-letter queue:   1")
    assert.match(first.stdout, /"stock_no":"STK000004".*CorruptImage/)
    assert.include(first.stdout, "thumbnails made:     10")
    // each step's runs: 6 downloads; 7 of the 200 px, the corrupt image's tried once running
    // ahead and once more in a pass of its own, which dead-letters it; 5 of the 100 px
    assert.match(first.stdout, /\n {2}download +6 runs, [0-9.]+ ms on average\n {2}thumbnail_200 +7 runs, .*\n {2}thumbnail_100 +5 runs, /)
    assert.include(first.stdout, join(dataDir, "bucket", "thumbnails"))
    assert.strictEqual(readdirSync(join(dataDir, "bucket", "thumbnails", "100")).length, 5)
    // the last next command traces the broken image's record, and works as written
    assert.match(first.stdout, /\n {2}npm run cli -- trace STK000004 .*\n?$/)
    const traced = await runCli(["trace", "STK000004"], { ...elsewhere, PIPELINE_QUEUE_URL: undefined, PIPELINE_BUCKET: undefined, PIPELINE_DATA_DIR: dataDir })
    assert.strictEqual(traced.code, 0, traced.stderr)
    assert.match(traced.stdout, /dead-lettered: CorruptImage/)

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

  it("--count below 1 is bad usage: one line, exit 2", async () => {
    const result = await start("--count", "0")
    assert.strictEqual(result.code, 2)
    assert.strictEqual(result.stderr.trim(), "error: --count must be at least 1")
  })

  it("--pipeline other than thumbnails is bad usage, not silently ignored: one line, exit 2", async () => {
    const result = await start("--pipeline", "greeting")
    assert.strictEqual(result.code, 2)
    assert.strictEqual(
      result.stderr.trim(),
      "error: npm start runs the thumbnail example only; run greeting with produce and agent (--pipeline greeting)"
    )
  })
})
