import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Layer } from "effect"
import { Attribute } from "../../src/domain/transition.ts"
import { liveLayer, makeHandler } from "../../src/lambda/handler.ts"
import { greetingPipeline } from "../../src/pipelines/greeting.ts"
import { builtinPipelines, defaultPipelineName } from "../../src/pipelines/index.ts"
import { CurrentPipeline } from "../../src/services/CurrentPipeline.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { MemoryQueueControl } from "../../src/services/queue/memory.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { ObjectStore } from "../../src/services/ObjectStore.ts"

const QUEUE = "https://sqs.test/000000000000/work"
const DLQ = "https://sqs.test/000000000000/work-dlq"

const testHandler = () =>
  makeHandler(
    CurrentPipeline.layerOf(greetingPipeline),
    Layer.mergeAll(
      MessageQueue.layerMemory({ [QUEUE]: { deadLetterQueueUrl: DLQ } }),
      ObjectStore.layerMemory,
      EngineSettings.layerWith({ queueUrl: QUEUE })
    )
  )

const eventRecord = (messageId: string, body: string, step = "0") => ({
  messageId,
  receiptHandle: `rh-${messageId}`,
  body,
  attributes: { ApproximateReceiveCount: "1", SentTimestamp: "1" },
  messageAttributes: { [Attribute.step]: { stringValue: step, dataType: "Number" } },
  md5OfBody: "ignored",
  eventSource: "aws:sqs",
  eventSourceARN: "arn:aws:sqs:us-east-1:000000000000:work",
  awsRegion: "us-east-1"
})

/** The greeting pipeline with run-ahead on: a record may go all the way to done in one invocation. */
const runAheadHandler = () =>
  makeHandler(
    CurrentPipeline.layerOf(greetingPipeline),
    Layer.mergeAll(
      MessageQueue.layerMemory({ [QUEUE]: { deadLetterQueueUrl: DLQ } }),
      ObjectStore.layerMemory,
      EngineSettings.layerWith({ queueUrl: QUEUE, runAhead: Duration.minutes(1) })
    )
  )

describe("lambda handler", () => {
  it("runs ahead only with time left before the invocation's deadline (Lambda's context)", async () => {
    const handler = runAheadHandler()
    const plenty = await handler({ Records: [eventRecord("a", `{"id":"a"}`)] }, { getRemainingTimeInMillis: () => 60_000 })
    assert.deepStrictEqual(plenty.outcomes, { advanced: 2, done: 1, deadLettered: 0, retried: 0, duplicates: 0 })
    const short = await handler({ Records: [eventRecord("b", `{"id":"b"}`)] }, { getRemainingTimeInMillis: () => 2_000 })
    assert.deepStrictEqual(short.outcomes, { advanced: 1, done: 0, deadLettered: 0, retried: 0, duplicates: 0 })
    const queued = await handler.runtime.runPromise(MemoryQueueControl.useSync((control) => control.messages(QUEUE)))
    assert.deepStrictEqual(queued.map((m) => JSON.parse(m.body)), [{ id: "b", greeting: "hello" }])
  })

  it("answers an SQS event with the failed items only and how each message ended, sends successors, deletes nothing", async () => {
    const handler = testHandler()
    const response = await handler({
      Records: [eventRecord("a", `{"id":"a"}`), eventRecord("b", "not json"), eventRecord("c", `{"id":"c","greeting":"hi","name":"x"}`)]
    })
    const { figures, ...answer } = response
    assert.deepStrictEqual(answer, {
      batchItemFailures: [],
      outcomes: { advanced: 1, done: 1, deadLettered: 1, retried: 0, duplicates: 0 }
    })
    // what the steps did, as the EMF lines say it, for the agent's `--lambda` runner
    assert.deepStrictEqual(Object.keys(figures.steps), ["createGreeting"])
    assert.strictEqual(figures.steps["createGreeting"]!.runs, 1)
    assert.isAtLeast(figures.steps["createGreeting"]!.millis, 0)
    assert.deepStrictEqual(figures.deadLetteredBy, { MalformedBody: 1 })
    const [queued, dead, requests] = await handler.runtime.runPromise(
      MemoryQueueControl.useSync((control) => [control.messages(QUEUE), control.messages(DLQ), control.requests] as const)
    )
    assert.deepStrictEqual(queued.map((m) => JSON.parse(m.body)), [{ id: "a", greeting: "hello" }])
    assert.strictEqual(queued[0]!.attributes[Attribute.step], "1")
    assert.deepStrictEqual(dead.map((m) => m.attributes["error.tag"]), ["MalformedBody"])
    assert.strictEqual(requests.delete, 0, "Lambda deletes in event source mapping mode")
  })

  it("reports the messages it could not move forward", async () => {
    const handler = testHandler()
    await handler.runtime.runPromise(
      MemoryQueueControl.useSync((control) => {
        control.faults.entry = (_operation, queueUrl, message) =>
          queueUrl === QUEUE && message.body.includes(`"id":"b"`)
            ? { id: message.id, code: "InvalidParameterValue", message: "no", senderFault: true }
            : undefined
      })
    )
    const response = await handler({ Records: [eventRecord("a", `{"id":"a"}`), eventRecord("b", `{"id":"b"}`)] })
    assert.deepStrictEqual(response.batchItemFailures, [{ itemIdentifier: "b" }])
    assert.deepStrictEqual(response.outcomes, { advanced: 1, done: 0, deadLettered: 0, retried: 1, duplicates: 0 })
  })

  it("takes the original design's raw message and deletes it once the successor is sent", async () => {
    const handler = testHandler()
    const received = await handler.runtime.runPromise(Effect.gen(function*() {
      const queue = yield* MessageQueue
      yield* queue.send(QUEUE, [{ id: "1", body: `{"id":"raw"}` }])
      return (yield* queue.receive(QUEUE))[0]!
    }))
    const response = await handler({
      MessageId: received.messageId,
      ReceiptHandle: received.receiptHandle,
      MD5OfBody: "1d66c20ecd0979525d5ea75f9448dbe1",
      Body: received.body
    })
    assert.deepStrictEqual(response.batchItemFailures, [])
    assert.deepStrictEqual(response.outcomes, { advanced: 1, done: 0, deadLettered: 0, retried: 0, duplicates: 0 })
    const queued = await handler.runtime.runPromise(MemoryQueueControl.useSync((control) => control.messages(QUEUE)))
    assert.deepStrictEqual(queued.map((m) => m.body), [`{"id":"raw","greeting":"hello"}`], "original deleted, successor queued")
  })

  it("rejects an event that is neither an SQS event nor a message, naming what is wrong", async () => {
    const handler = testHandler()
    const error = await handler({ Records: [{ messageId: 1 }] }).then(() => undefined, (e: unknown) => e)
    assert.instanceOf(error, Error)
    assert.include((error as Error).message, "not an SQS event nor an SQS message")
  })

  it("builds its runtime once per container", async () => {
    let builds = 0
    const handler = makeHandler(
      CurrentPipeline.layerOf(greetingPipeline),
      Layer.mergeAll(MessageQueue.layerMemory(), ObjectStore.layerMemory, EngineSettings.layerWith({ queueUrl: QUEUE })).pipe(
        Layer.tap(() => Effect.sync(() => builds++))
      )
    )
    assert.strictEqual(builds, 0)
    await handler({ Records: [eventRecord("a", `{"id":"a"}`)] })
    await handler({ Records: [eventRecord("b", `{"id":"b"}`)] })
    assert.strictEqual(builds, 1)
  })
})

describe("lambda handler configuration", () => {
  it("a missing setting fails the first invocation with its name", async () => {
    const handler = makeHandler(
      CurrentPipeline.layerOf(greetingPipeline),
      liveLayer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ PIPELINE_BUCKET: "b" }))))
    )
    const error = await handler({ Records: [] }).then(() => undefined, (e: unknown) => e)
    assert.include(String((error as Error)?.message ?? error), "PIPELINE_QUEUE_URL")
  })

  it("a PIPELINE_NAME that names no pipeline fails the first invocation naming the setting and the known pipelines", async () => {
    const config = ConfigProvider.layer(ConfigProvider.fromUnknown({ PIPELINE_NAME: "nope" }))
    const handler = makeHandler(
      CurrentPipeline.layerConfig(builtinPipelines, defaultPipelineName).pipe(Layer.provide(config)),
      Layer.mergeAll(MessageQueue.layerMemory(), ObjectStore.layerMemory, EngineSettings.layerWith({ queueUrl: QUEUE }))
    )
    const error = await handler({ Records: [] }).then(() => undefined, (e: unknown) => e)
    const text = String((error as Error)?.message ?? error)
    assert.include(text, "PIPELINE_NAME")
    assert.include(text, `no pipeline "nope" (known: greeting, thumbnails)`)
  })
})
