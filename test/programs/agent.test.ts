import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Layer, Logger, Schedule } from "effect"
import { initialTransition, toAttributes } from "../../src/domain/transition.ts"
import { PermanentError, RetryableError } from "../../src/domain/errors.ts"
import { definePipeline, done, mutation } from "../../src/domain/Pipeline.ts"
import { greetingPipeline } from "../../src/pipelines/greeting.ts"
import { runAgent, unreachableBackoff } from "../../src/programs/agent.ts"
import { inProcessRunner } from "../../src/programs/inProcessRunner.ts"
import { BatchRunner, BatchRunnerError } from "../../src/services/BatchRunner.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { MemoryQueueControl, queueFailure } from "../../src/services/queue/memory.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { ObjectStore } from "../../src/services/ObjectStore.ts"

const QUEUE = "work"
const DLQ = "work-dlq"

const services = (visibilityTimeout = 30) =>
  Layer.mergeAll(
    MessageQueue.layerMemory({ [QUEUE]: { deadLetterQueueUrl: DLQ, maxReceiveCount: 3, visibilityTimeout } }),
    ObjectStore.layerMemory,
    EngineSettings.layerWith({ queueUrl: QUEUE })
  )

const withRunner = (pipeline = greetingPipeline, visibilityTimeout = 30) =>
  Layer.provideMerge(inProcessRunner(pipeline), services(visibilityTimeout))

const produce = (count: number) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    const records = Array.from({ length: count }, (_, i) => ({ id: `r${i}` }))
    const result = yield* queue.send(
      QUEUE,
      records.map((record, i) => ({ id: `p${i}`, body: JSON.stringify(record), attributes: toAttributes(initialTransition(record.id, record)) }))
    )
    assert.strictEqual(result.successful.length, count)
  })

/** The greeting pipeline with a first step that takes `millis` (and calls `onRun` each time it starts). */
const slowGreeting = (millis: number, onRun: () => void = () => {}) =>
  definePipeline({
    ...greetingPipeline,
    router: (record) =>
      record.greeting === undefined
        ? mutation<typeof record>("slowGreeting", (r) =>
          Effect.sync(onRun).pipe(Effect.andThen(Effect.sleep(millis)), Effect.as({ ...r, greeting: "hello" })))
        : done
  })

const options = { queueUrl: QUEUE, concurrency: 25, untilEmpty: true, waitSeconds: 20, stop: Deferred.makeUnsafe<void>() }

describe("agent (memory queue)", () => {
  it.live("runs 50 records to done and stops when the queue is empty", () =>
    Effect.gen(function*() {
      yield* produce(50)
      const stats = yield* runAgent(options)
      assert.strictEqual(stats.succeeded, 150, "3 passes per greeting: 2 steps and done")
      assert.strictEqual(stats.failed, 0)
      const control = yield* MemoryQueueControl
      assert.deepStrictEqual(control.messages(QUEUE), [])
      assert.deepStrictEqual(control.messages(DLQ), [])
      const transitions = 150
      const requests = control.requests.send + control.requests.receive + control.requests.delete - 5 // the seed's sends
      assert.isAtMost(requests / transitions, 0.3, `requests per transition: ${requests / transitions} ${JSON.stringify(control.requests)}`)
    }).pipe(Effect.provide(withRunner())))

  it.live("counts records done, dead-lettered and handed back for a retry, as well as transitions", () =>
    Effect.gen(function*() {
      let busy = 0
      // "bad" fails for good; "flaky" is busy on its first run (no retry in process), then greets
      const picky = definePipeline({
        ...greetingPipeline,
        router: (record) =>
          record.greeting !== undefined
            ? done
            : mutation<typeof record, PermanentError | RetryableError>("greet", (r) =>
              r.id === "bad"
                ? Effect.fail(new PermanentError({ message: "no greeting for bad" }))
                : r.id === "flaky" && busy++ === 0
                ? Effect.fail(new RetryableError({ message: "busy" }))
                : Effect.succeed({ ...r, greeting: "hello" }))
      })
      const queue = yield* MessageQueue
      yield* queue.send(QUEUE, ["good", "bad", "flaky"].map((id) => ({ id, body: JSON.stringify({ id }), attributes: toAttributes(initialTransition(id, { id })) })))
      const stats = yield* runAgent(options).pipe(Effect.provide(inProcessRunner(picky)))
      assert.deepStrictEqual(
        { done: stats.done, deadLettered: stats.deadLettered, retried: stats.failed, advanced: stats.advanced, duplicates: stats.duplicates },
        { done: 2, deadLettered: 1, retried: 1, advanced: 2, duplicates: 0 }
      )
      assert.strictEqual(stats.succeeded, 5, "2 steps, 2 done passes and a dead letter were handled")
    }).pipe(Effect.provide(Layer.mergeAll(
      // the busy message comes back after a second
      MessageQueue.layerMemory({ [QUEUE]: { deadLetterQueueUrl: DLQ, maxReceiveCount: 3, visibilityTimeout: 1 } }),
      ObjectStore.layerMemory,
      EngineSettings.layerWith({ queueUrl: QUEUE, retryFor: Duration.zero })
    ))))

  it.live("a batch whose runner fails as a whole is left for redelivery, and the agent keeps going to done", () =>
    Effect.gen(function*() {
      yield* produce(3)
      const inProcess = yield* BatchRunner
      let calls = 0
      const failsOnce = Layer.succeed(BatchRunner, BatchRunner.of({
        run: (messages) =>
          Effect.suspend(() => ++calls === 1
            ? Effect.fail(new BatchRunnerError({ message: "function error: Unhandled", cause: null }))
            : inProcess.run(messages))
      }))
      const stats = yield* runAgent(options).pipe(Effect.provide(failsOnce))
      assert.strictEqual(stats.failed, 3, "the first batch failed as a whole")
      assert.strictEqual(stats.succeeded, 9, "redelivered after the 1 s visibility timeout, then 3 passes per record")
      const control = yield* MemoryQueueControl
      assert.deepStrictEqual(control.messages(QUEUE), [])
      assert.deepStrictEqual(control.messages(DLQ), [])
    }).pipe(Effect.provide(withRunner(greetingPipeline, 1))), 15_000)

  it.live("messages whose receive answers after the stop are handed back at once, not worked on", () =>
    Effect.gen(function*() {
      yield* produce(5)
      const stop = yield* Deferred.make<void>()
      const queue = yield* MessageQueue
      // the stop arrives just as a receive's answer does, with every slot free
      const lateAnswer = Layer.succeed(MessageQueue, MessageQueue.of({
        ...queue,
        receive: (queueUrl, receiveOptions) =>
          queue.receive(queueUrl, receiveOptions).pipe(Effect.tap(() => Deferred.succeed(stop, undefined)))
      }))
      const stats = yield* runAgent({ ...options, untilEmpty: false, stop }).pipe(Effect.provide(lateAnswer))
      assert.strictEqual(stats.released, 5)
      assert.strictEqual(stats.received, 0)
      const attributes = yield* queue.attributes(QUEUE)
      assert.strictEqual(attributes.approximateInFlight, 0, "visible again now, not after their 30 s timeout")
      assert.strictEqual(attributes.approximateVisible, 5)
    }).pipe(Effect.provide(withRunner())))

  it.live("a failing receive is logged, backed off and retried; the agent keeps going", () =>
    Effect.gen(function*() {
      yield* produce(5)
      const control = yield* MemoryQueueControl
      let failures = 0
      control.faults.request = (operation, queueUrl) =>
        operation === "receive" && failures++ < 3 ? queueFailure("ReceiveMessage", queueUrl, true) : undefined
      const started = Date.now()
      const stats = yield* runAgent(options)
      assert.strictEqual(stats.receiveErrors, 3)
      assert.strictEqual(stats.succeeded, 15, "every record still reached done")
      assert.isAtLeast(Date.now() - started, 0.8 * (200 + 400 + 800) - 50, "backed off 0.2 s, 0.4 s, 0.8 s, less 20% jitter at most")
    }).pipe(Effect.provide(withRunner())))

  it.live("the heartbeat keeps a slow step's message invisible past its visibility timeout", () =>
    Effect.gen(function*() {
      let runs = 0
      const slow = slowGreeting(2500, () => runs++)
      yield* produce(1)
      const stats = yield* runAgent({ ...options, concurrency: 2 }).pipe(Effect.provide(inProcessRunner(slow)))
      assert.strictEqual(runs, 1, "delivered once despite a 1 s visibility timeout")
      assert.strictEqual(stats.succeeded, 2)
      assert.isAbove((yield* MemoryQueueControl).requests.changeVisibility, 0)
    }).pipe(Effect.provide(services(1))), 15_000)

  it.live("on stop it finishes in-flight work and receives nothing more", () =>
    Effect.gen(function*() {
      const slow = slowGreeting(300)
      yield* produce(20)
      const stop = yield* Deferred.make<void>()
      const fiber = yield* Effect.forkChild(
        runAgent({ ...options, concurrency: 5, untilEmpty: false, stop }).pipe(Effect.provide(inProcessRunner(slow)))
      )
      yield* Effect.sleep("100 millis")
      yield* Deferred.succeed(stop, undefined)
      const stats = yield* Fiber.join(fiber)
      assert.strictEqual(stats.received, 5)
      assert.strictEqual(stats.succeeded, 5, "the in-flight five finished")
      const attributes = yield* (yield* MessageQueue).attributes(QUEUE)
      assert.strictEqual(attributes.approximateInFlight, 0, "nothing left invisible")
      assert.strictEqual(attributes.approximateVisible, 20, "15 untouched + 5 successors")
    }).pipe(Effect.provide(services())))
  it.live("a queue unreachable at start is waited for, each attempt logged with the queue and the attempt; then it runs to done", () =>
    Effect.gen(function*() {
      yield* produce(2)
      const control = yield* MemoryQueueControl
      let refusals = 0
      control.faults.request = (operation, queueUrl) =>
        operation === "attributes" && refusals++ < 3 ? queueFailure("GetQueueAttributes", queueUrl, true) : undefined
      const errors: Array<string> = []
      const collect = Logger.layer([Logger.make((log) => {
        if (log.logLevel === "Error") errors.push(String(log.message))
      })])
      const stats = yield* runAgent(options).pipe(Effect.provide(collect))
      assert.strictEqual(stats.succeeded, 6, "both records reached done once the queue answered")
      assert.strictEqual(errors.length, 3)
      errors.forEach((line, index) => {
        assert.include(line, `cannot reach the queue ${QUEUE} (attempt ${index + 1}: injected: throttled)`)
      })
    }).pipe(Effect.provide(withRunner())))

  it.live("a stop while it waits for an unreachable queue ends it at once, having received nothing", () =>
    Effect.gen(function*() {
      const control = yield* MemoryQueueControl
      control.faults.request = (operation, queueUrl) => queueFailure(operation, queueUrl, true)
      const stop = yield* Deferred.make<void>()
      const fiber = yield* Effect.forkChild(runAgent({ ...options, untilEmpty: false, stop }))
      yield* Effect.sleep("1500 millis") // a few attempts in
      yield* Deferred.succeed(stop, undefined)
      const stats = yield* Fiber.join(fiber).pipe(Effect.timeout("1 second"))
      assert.strictEqual(stats.received, 0)
      assert.isAtLeast(stats.receiveErrors, 2)
    }).pipe(Effect.provide(withRunner())))

  it.effect("backs off from 0.2 s doubling to a cap of 30 s, within 20% either way", () =>
    Effect.gen(function*() {
      const step = yield* Schedule.toStep(unreachableBackoff)
      for (let attempt = 1; attempt <= 12; attempt++) {
        const [, delay] = yield* step(0, undefined)
        const nominal = Math.min(200 * 2 ** (attempt - 1), 30_000)
        assert.isAtLeast(Duration.toMillis(delay), nominal * 0.8, `attempt ${attempt}`)
        assert.isAtMost(Duration.toMillis(delay), nominal * 1.2, `attempt ${attempt}`)
      }
    }))
})

/** Collects the agent's log lines at a level. */
const collectLogs = (level: "Error" | "Warn" | "Info") => {
  const lines: Array<string> = []
  const layer = Logger.layer([Logger.make((log) => {
    if (log.logLevel === level) lines.push(String(log.message))
  })])
  return { lines, layer }
}

describe("agent limits and reports", () => {
  it.live("asks for at most 10 messages a receive (SQS's limit) and never holds more than its concurrency", () =>
    Effect.gen(function*() {
      yield* produce(60)
      const queue = yield* MessageQueue
      const asked: Array<number> = []
      const recording = Layer.succeed(MessageQueue, MessageQueue.of({
        ...queue,
        receive: (queueUrl, receiveOptions) =>
          Effect.sync(() => asked.push(receiveOptions?.maxMessages ?? 10)).pipe(Effect.andThen(queue.receive(queueUrl, receiveOptions)))
      }))
      const inner = yield* BatchRunner
      let inFlight = 0
      let most = 0
      const counting = Layer.succeed(BatchRunner, BatchRunner.of({
        run: (messages) =>
          Effect.sync(() => {
            inFlight += messages.length
            most = Math.max(most, inFlight)
          }).pipe(
            Effect.andThen(Effect.sleep("20 millis")),
            Effect.andThen(inner.run(messages)),
            Effect.ensuring(Effect.sync(() => (inFlight -= messages.length)))
          )
      }))
      const stats = yield* runAgent({ ...options, concurrency: 25 }).pipe(Effect.provide(Layer.merge(recording, counting)))
      assert.strictEqual(stats.succeeded, 180)
      assert.isAtMost(Math.max(...asked), 10)
      assert.isAtMost(most, 25, "in flight at once")
      assert.isAbove(most, 10, "several batches at once")
    }).pipe(Effect.provide(withRunner())))

  it.live("without until-empty it keeps polling an empty queue until stopped, and picks up what arrives", () =>
    Effect.gen(function*() {
      const stop = yield* Deferred.make<void>()
      const started = Date.now()
      const fiber = yield* Effect.forkChild(runAgent({
        ...options,
        untilEmpty: false,
        waitSeconds: 0,
        stop,
        progressEvery: "10 millis",
        onProgress: (stats) => stats.succeeded >= 6 ? Deferred.succeed(stop, undefined) : Effect.void
      }))
      yield* Effect.sleep("300 millis") // several empty receives
      yield* produce(2)
      const stats = yield* Fiber.join(fiber)
      assert.strictEqual(stats.succeeded, 6)
      assert.isAtLeast(stats.elapsedMillis, 250)
      assert.isAtMost(stats.elapsedMillis, Date.now() - started + 50)
    }).pipe(Effect.provide(withRunner())))

  it.live("receive failures count their attempts, and the count starts over after a receive that works", () =>
    Effect.gen(function*() {
      yield* produce(1)
      const control = yield* MemoryQueueControl
      let receives = 0
      control.faults.request = (operation, queueUrl) => {
        if (operation !== "receive") return undefined
        receives++
        return receives === 1 || receives === 2 || receives === 4 ? queueFailure("ReceiveMessage", queueUrl, true) : undefined
      }
      const { layer, lines } = collectLogs("Error")
      const stats = yield* runAgent(options).pipe(Effect.provide(layer))
      assert.strictEqual(stats.succeeded, 3)
      assert.deepStrictEqual(
        lines.map((line) => /receive from work failed \(attempt (\d+): injected: throttled\)/.exec(line)?.[1]),
        ["1", "2", "1"]
      )
    }).pipe(Effect.provide(withRunner())))

  it.live("a heartbeat that cannot extend a message, and a delete that is refused, are logged as warnings", () =>
    Effect.gen(function*() {
      const slow = slowGreeting(700)
      yield* produce(1)
      const queue = yield* MessageQueue
      // the receipt handles have gone stale: SQS refuses each entry
      const refused = (entries: ReadonlyArray<{ readonly id: string }>) =>
        Effect.succeed({ successful: [], failed: entries.map(({ id }) => ({ id, code: "ReceiptHandleIsInvalid", message: "gone", senderFault: true })) })
      const stale = Layer.succeed(MessageQueue, MessageQueue.of({
        ...queue,
        changeVisibility: (_queueUrl, entries) => refused(entries),
        delete: (_queueUrl, entries) => refused(entries)
      }))
      const { layer, lines } = collectLogs("Warn")
      yield* runAgent({ ...options, untilEmpty: false, stop: Deferred.makeUnsafe<void>() }).pipe(
        Effect.provide(Layer.mergeAll(Layer.provide(inProcessRunner(slow), stale), stale, layer)),
        Effect.timeout("1500 millis"),
        Effect.ignore
      )
      assert.isTrue(lines.some((line) => line === "heartbeat: 1 messages could not be extended"), lines.join("\n"))
      assert.isTrue(lines.some((line) => line.startsWith("could not delete 1 handled messages (ReceiptHandleIsInvalid: gone)")), lines.join("\n"))
    }).pipe(Effect.provide(services(1))), 10_000)

  it.live("on stop it says how many messages it is finishing", () =>
    Effect.gen(function*() {
      const slow = slowGreeting(300)
      yield* produce(5)
      const stop = yield* Deferred.make<void>()
      const { layer, lines } = collectLogs("Info")
      const fiber = yield* Effect.forkChild(
        runAgent({ ...options, concurrency: 5, untilEmpty: false, stop }).pipe(Effect.provide(Layer.merge(inProcessRunner(slow), layer)))
      )
      yield* Effect.sleep("100 millis")
      yield* Deferred.succeed(stop, undefined)
      yield* Fiber.join(fiber)
      assert.include(lines, "stopping: finishing 5 messages in flight")
    }).pipe(Effect.provide(services())))
})
