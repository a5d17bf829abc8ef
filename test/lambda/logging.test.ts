import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Logger, References } from "effect"
import { lambdaLogger, lambdaLogLevelLayer, MAX_LOGGED_TEXT, scrub } from "../../src/lambda/logging.ts"
import { liveLayer } from "../../src/lambda/runtime.ts"

/** Calls of console's level methods while `f` runs, as [method, argument]. */
const captureConsole = async (f: () => Promise<void>) => {
  const calls: Array<[string, unknown]> = []
  const methods = ["log", "error", "warn", "info", "debug", "trace"] as const
  const saved = methods.map((method) => console[method])
  for (const method of methods) console[method] = (value: unknown) => void calls.push([method, value])
  try {
    await f()
  } finally {
    methods.forEach((method, i) => (console[method] = saved[i]!))
  }
  return calls
}

const logAll = Effect.gen(function*() {
  yield* Effect.logError("e")
  yield* Effect.logWarning("w").pipe(Effect.annotateLogs({ messageId: "m1" }))
  yield* Effect.logInfo("i")
  yield* Effect.logDebug("d")
}).pipe(Effect.provide(Logger.layer([lambdaLogger])), Effect.provideService(References.MinimumLogLevel, "All"))

describe("Lambda's logger", () => {
  it("writes each level with its own console method, an object under the JSON log format", async () => {
    process.env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
    try {
      const calls = await captureConsole(() => Effect.runPromise(logAll))
      assert.deepStrictEqual(calls, [
        ["error", { message: "e" }],
        ["warn", { message: "w", messageId: "m1" }],
        ["info", { message: "i" }],
        ["debug", { message: "d" }]
      ])
    } finally {
      delete process.env["AWS_LAMBDA_LOG_FORMAT"]
    }
  })

  it("writes one JSON text with the level under the text log format", async () => {
    const calls = await captureConsole(() => Effect.runPromise(logAll))
    assert.deepStrictEqual(calls[1], ["warn", `{"level":"WARN","message":"w","messageId":"m1"}`])
  })

  it("scrubs receipt handles out of SQS's error texts and cuts long texts", () => {
    const sqs = `ReceiptHandleIsInvalid: The input receipt handle "AQEBz+/7q1rGgNq==" is not a valid receipt handle.`
    assert.strictEqual(scrub(sqs), `ReceiptHandleIsInvalid: The input receipt handle "(redacted)" is not a valid receipt handle.`)
    assert.strictEqual(scrub(`{"receiptHandle":"AQEBz"}`), `{"receiptHandle":"(redacted)"}`)
    const long = scrub("x".repeat(10_000))
    assert.strictEqual(long.length, MAX_LOGGED_TEXT)
    assert.isTrue(long.endsWith("…"))
  })

  const levelWith = (settings: Record<string, string>) =>
    Effect.runPromise(Effect.gen(function*() {
      return yield* References.MinimumLogLevel
    }).pipe(
      Effect.provide(lambdaLogLevelLayer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown(settings))))
    )))

  it("logs from the function's application log level unless PIPELINE_LOG_LEVEL says otherwise", async () => {
    assert.strictEqual(await levelWith({}), "Info")
    assert.strictEqual(await levelWith({ AWS_LAMBDA_LOG_LEVEL: "WARN" }), "Warn")
    assert.strictEqual(await levelWith({ AWS_LAMBDA_LOG_LEVEL: "debug" }), "Debug")
    assert.strictEqual(await levelWith({ AWS_LAMBDA_LOG_LEVEL: "WARN", PIPELINE_LOG_LEVEL: "Error" }), "Error")
  })
})

describe("the live layer's logs", () => {
  it("what the layers log while they are built is Lambda's lines too (the missing ledger's warning)", async () => {
    const settings = ConfigProvider.layer(ConfigProvider.fromUnknown({ PIPELINE_QUEUE_URL: "https://sqs.test/000000000000/q", PIPELINE_BUCKET: "b" }))
    const calls = await captureConsole(() =>
      Effect.runPromise(Effect.scoped(Layer.build(liveLayer.pipe(Layer.provide(settings)))).pipe(Effect.asVoid))
    )
    const warnings = calls.filter(([method]) => method === "warn").map(([, text]) => JSON.parse(text as string) as { level: string; message: string })
    assert.lengthOf(warnings, 1, JSON.stringify(calls))
    assert.strictEqual(warnings[0]!.level, "WARN")
    assert.include(warnings[0]!.message, "no transition ledger")
  })
})
