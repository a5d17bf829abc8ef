/**
 * Every setting a user can get wrong, through the real command line: the one line it prints names
 * the setting, what it accepts and the value given (exit 1). Env settings are held to the same
 * rules as their flags (`PIPELINE_CONCURRENCY=0` is refused like `--concurrency 0`).
 */
import { assert, describe, it } from "@effect/vitest"
import { afterAll } from "vitest"
import { cleanUpBackends, temporaryDir } from "../support/backends.ts"
import { runCli } from "../support/cli.ts"

afterAll(cleanUpBackends)

const DURATION = `such as "10 seconds", "500 millis" or "2 minutes" (a number, a space and a unit: nanos, micros, millis, seconds, minutes, hours, days or weeks)`

/** Setting, value, and what the error says after `is invalid: ` (a thumbnail setting is read when the thumbnail pipeline is). */
const cases: ReadonlyArray<readonly [string, string, string]> = [
  ["PIPELINE_RETRY_FOR", "10s", `expected a duration ${DURATION}, got "10s"`],
  ["PIPELINE_RETRY_FOR", "-1 seconds", `expected a duration ${DURATION}, got "-1 seconds"`],
  ["PIPELINE_CONCURRENCY", "0", `expected a whole number of at least 1, got "0"`],
  ["PIPELINE_MAX_STEPS", "1.5", `expected a whole number of at least 1, got "1.5"`],
  ["PIPELINE_VISIBILITY_TIMEOUT", "-1", `expected a whole number from 0 to 43200, got "-1"`],
  ["PIPELINE_MAX_RECEIVE_COUNT", "many", `expected a whole number from 1 to 1000, got "many"`],
  ["PIPELINE_QUEUE_URL", "thumbnails", `expected an http:// or https:// URL such as https://sqs.eu-west-1.amazonaws.com/123456789012/thumbnails, got "thumbnails"`],
  ["PIPELINE_LOG_LEVEL", "loud", `expected one of All, Fatal, Error, Warn, Info, Debug, Trace, None, got "loud"`],
  ["PIPELINE_LEDGER", "maybe", `expected on or off, got "maybe"`],
  ["IMAGE_TIMEOUT", "30", `expected a duration above zero ${DURATION}, got "30"`],
  ["IMAGE_MAX_BYTES", "25 megs", `expected a number of bytes such as 25000000, "25 MB" or "20 MiB", got "25 megs"`],
  ["IMAGE_ALLOWED_HOSTS", "a.example.com,,b.example.com", `expected names separated by commas, such as "images.example.com,cdn.example.com:8443", got "a.example.com,,b.example.com"`],
  ["THUMBNAIL_SIZES", "100,big", `expected widths from 1 to 4096 separated by commas, such as "100,200", got "100,big"`],
  ["THUMBNAIL_MAX_PIXELS", "25MP", `expected a whole number of at least 1, got "25MP"`],
  ["THUMBNAIL_MAX_PROGRESSIVE_PIXELS", "-1", `expected a whole number of at least 1, got "-1"`],
  ["THUMBNAIL_MEMORY_BUDGET_MB", "128MB", `expected a whole number of at least 1, got "128MB"`],
  ["THUMBNAIL_RAW_IMAGES_IN_MEMORY", "0", `expected a whole number of at least 1, got "0"`]
]

/** The agent on an empty embedded queue, with the thumbnail pipeline (the default) and `env` on top. */
const agent = (env: Record<string, string>) =>
  runCli(["agent", "--until-empty", "--wait-seconds", "0"], {
    PIPELINE_DATA_DIR: temporaryDir("settings-test-"),
    IMAGE_SOURCE: "file:///nowhere/{stock_no}.jpg",
    ...env
  })

describe("settings", { timeout: 120_000 }, () => {
  it("a wrong value is one line naming the setting, what it accepts and the value; exit 1", async () => {
    // a few at a time: each is a process
    for (let i = 0; i < cases.length; i += 4) {
      const batch = cases.slice(i, i + 4)
      const results = await Promise.all(batch.map(([name, value]) => agent({ [name]: value })))
      for (const [index, [name, , expected]] of batch.entries()) {
        const result = results[index]!
        assert.strictEqual(result.stderr, `error: the setting ${name} is invalid: ${expected}\n`)
        assert.strictEqual(result.code, 1, name)
      }
    }
  })

  it("a required setting that is unset says what it accepts", async () => {
    const result = await runCli(["agent", "--until-empty"], { PIPELINE_DATA_DIR: temporaryDir("settings-test-") })
    assert.strictEqual(
      result.stderr,
      "error: the setting IMAGE_SOURCE is missing: expected a template for where images are read, with {stock_no} in an http(s):// URL " +
        "or a file:// path, such as https://images.example.com/{stock_no}.jpg or file:///data/raw/{stock_no}.jpg (npm start saves one for its samples)\n"
    )
    assert.strictEqual(result.code, 1)
  })

  it("the accepted forms are accepted, log level in any case", async () => {
    const result = await agent({
      PIPELINE_RETRY_FOR: "2 seconds",
      PIPELINE_CONCURRENCY: "1",
      PIPELINE_LOG_LEVEL: "warn",
      IMAGE_TIMEOUT: "500 millis",
      IMAGE_MAX_BYTES: "20 MiB",
      IMAGE_ALLOWED_HOSTS: "a.example.com, b.example.com:8443",
      THUMBNAIL_SIZES: "300,150",
      THUMBNAIL_MEMORY_BUDGET_MB: "128"
    })
    assert.strictEqual(result.code, 0, result.stderr)
    assert.strictEqual(result.stderr, "", "at Warn the agent's info lines are not shown")
  })

  it("--concurrency is held to the same rule as PIPELINE_CONCURRENCY", async () => {
    const result = await runCli(["agent", "--concurrency", "0"], { PIPELINE_DATA_DIR: temporaryDir("settings-test-") })
    assert.strictEqual(result.code, 2, result.stderr)
    assert.include(result.stderr, `Invalid value for flag --concurrency: "0"`)
  })
})
