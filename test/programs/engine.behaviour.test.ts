/**
 * What the engine promises, seen from outside: what lands on which queue with which attributes,
 * what is deleted, what is left for redelivery, and what is logged.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Logger, Option, References, Schema, Tracer } from "effect"
import { TestClock } from "effect/testing"
import { PermanentError, RetryableError } from "../../src/domain/errors.ts"
import { type AnyPipeline, definePipeline, done, mutation } from "../../src/domain/Pipeline.ts"
import { Attribute, initialTransition, toAttributes, transitionId } from "../../src/domain/transition.ts"
import { greetingPipeline } from "../../src/pipelines/greeting.ts"
import { acknowledge, bodyDecoder, DeadLetterAttribute, failedMessageIds, type Outcome, processBatch } from "../../src/programs/engine.ts"
import { EngineSettings, type Settings } from "../../src/services/EngineSettings.ts"
import { MemoryQueueControl, queueFailure } from "../../src/services/queue/memory.ts"
import type { OutgoingMessage } from "../../src/domain/messages.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"

const QUEUE = "https://sqs.test/000000000000/jobs"
const DLQ = "https://sqs.test/000000000000/jobs-dlq"
const FIFO = "https://sqs.test/000000000000/jobs.fifo"
const FIFO_DLQ = "https://sqs.test/000000000000/jobs-dlq.fifo"

/** A job says how its one step goes: `fail` with a message, `die`, `invalid`, `slow`, `flaky` or `ok`. */
const Job = Schema.Struct({
  id: Schema.String,
  plan: Schema.Literals(["ok", "fail", "die", "throw", "invalid", "slow", "flaky"]),
  reason: Schema.optionalKey(Schema.String),
  result: Schema.optionalKey(Schema.Literal("done"))
})
type Job = typeof Job.Type

const counters = { running: 0, maxRunning: 0, attempts: 0 }
const step = mutation<Job, PermanentError | RetryableError>("step", (job) =>
  Effect.gen(function*() {
    counters.attempts++
    switch (job.plan) {
      case "fail":
        return yield* new PermanentError({ message: job.reason ?? "" })
      case "flaky":
        return yield* new RetryableError({ message: "busy" })
      case "die":
        return yield* Effect.die("boom")
      case "throw":
        throw new TypeError("bug in step")
      case "invalid":
        return { ...job, plan: "sideways" } as unknown as Job
      case "slow": {
        counters.running++
        counters.maxRunning = Math.max(counters.maxRunning, counters.running)
        yield* Effect.sleep("1 second")
        counters.running--
        return { ...job, result: "done" as const }
      }
      default:
        return { ...job, result: "done" as const }
    }
  }))

const jobs = definePipeline({
  name: "jobs",
  schema: Job,
  recordId: (job) => job.id,
  router: (job) => (job.result === "done" ? done : step),
  initialRecord: (id) => ({ id, plan: "ok" }),
  layer: Layer.empty
})

const send = (queueUrl: string, bodies: ReadonlyArray<unknown>, attributes: Record<string, string> = {}) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    const entries = bodies.map((body, index): OutgoingMessage => ({
      id: `s${index}`,
      body: typeof body === "string" ? body : JSON.stringify(body),
      attributes: { ...toAttributes(initialTransition(`r${index}`, body)), ...attributes },
      ...(queueUrl.endsWith(".fifo") ? { groupId: `g${index}` } : {})
    }))
    const result = yield* queue.send(queueUrl, entries)
    assert.deepStrictEqual(result.failed, [])
  })

/** One pass of an agent over `queueUrl`, with `process` (one engine instance) reused if given. */
const pass = (pipeline: AnyPipeline, queueUrl = QUEUE, process = processBatch(pipeline)) =>
  Effect.gen(function*() {
    const messages = yield* (yield* MessageQueue).receive(queueUrl, { maxMessages: 10 })
    const outcomes = yield* process(messages)
    yield* acknowledge(queueUrl, outcomes)
    return outcomes
  })

const tags = (outcomes: ReadonlyArray<Outcome>) => outcomes.map((o) => o._tag)
const messages = (queueUrl: string) => MemoryQueueControl.useSync((control) => control.messages(queueUrl))

/** The work queues (the standard one redriving to `redrive`, none if null) and the engine settings. */
const queues = (settings: Partial<Settings> = {}, redrive: string | null = DLQ) =>
  Layer.mergeAll(
    MessageQueue.layerMemory({
      [QUEUE]: { deadLetterQueueUrl: redrive ?? undefined, maxReceiveCount: 5 },
      [FIFO]: { deadLetterQueueUrl: FIFO_DLQ, maxReceiveCount: 5 }
    }),
    EngineSettings.layerWith({ queueUrl: QUEUE, ...settings })
  )

interface LogLine {
  readonly level: string
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
}

/** A logger that keeps every line, with its level and annotations, instead of printing it. */
const captureLogs = () => {
  const lines: Array<LogLine> = []
  const layer = Logger.layer([Logger.make((log) => {
    lines.push({
      level: log.logLevel,
      message: Array.isArray(log.message) ? log.message.map(String).join(" ") : String(log.message),
      annotations: log.fiber.getRef(References.CurrentLogAnnotations)
    })
  })])
  return { lines, layer }
}

describe("engine: dead letters", () => {
  it.effect("a dead-lettered message carries its body unchanged, its metadata and every error attribute", () =>
    Effect.gen(function*() {
      const queue = yield* MessageQueue
      yield* send(QUEUE, [{ id: "j1", plan: "fail", reason: "the source is gone" }], { "app.origin": "import" })
      const [original] = yield* messages(QUEUE)
      // a first delivery that was never handled (a crashed worker): visible again, received a second time
      const [first] = yield* queue.receive(QUEUE)
      yield* queue.changeVisibility(QUEUE, [{ id: "v", receiptHandle: first!.receiptHandle }], 0)
      const outcomes = yield* pass(jobs)
      assert.deepStrictEqual(tags(outcomes), ["DeadLettered"])
      assert.deepStrictEqual(yield* messages(QUEUE), [], "deleted from the queue once dead-lettered")
      const [dead] = yield* messages(DLQ)
      assert.strictEqual(dead!.body, original!.body)
      assert.deepStrictEqual(dead!.attributes, {
        ...original!.attributes,
        "error.tag": "PermanentError",
        "error.message": "the source is gone",
        "error.step": "step",
        "error.receive_count": "2",
        "error.source_queue": QUEUE
      })
      assert.strictEqual(dead!.attributes[DeadLetterAttribute.receiveCount], "2")
      assert.strictEqual(dead!.attributes[DeadLetterAttribute.pipelineStep], "0")
    }).pipe(Effect.provide(queues())))

  it.effect("the documented attribute names", () =>
    Effect.sync(() => {
      assert.deepStrictEqual(DeadLetterAttribute, {
        tag: "error.tag",
        message: "error.message",
        step: "error.step",
        receiveCount: "error.receive_count",
        sourceQueue: "error.source_queue",
        pipelineStep: "pipeline.step"
      })
    }))

  it.effect("a dead letter is logged as a warning naming the message, its error and the step", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      yield* send(QUEUE, [{ id: "j1", plan: "fail", reason: "no such image" }])
      const [outcome] = yield* pass(jobs)
      const id = outcome!.message.messageId
      const line = logs.lines.find((l) => l.message.startsWith("dead-lettered"))
      assert.deepStrictEqual(line, {
        level: "Warn",
        message: `dead-lettered message ${id}: PermanentError`,
        annotations: { messageId: id, error: "PermanentError", reason: "no such image", step: "step" }
      })
      assert.isFalse(logs.lines.some((l) => l.level === "Error"))
    }).pipe(Effect.provide(Layer.merge(queues(), logs.layer)))
  })

  it.effect("an empty error message is written as (empty); a long one is cut to 1024 characters", () =>
    Effect.gen(function*() {
      const exact = "x".repeat(1024)
      const long = "y".repeat(1025)
      yield* send(QUEUE, [
        { id: "empty", plan: "fail", reason: "" },
        { id: "exact", plan: "fail", reason: exact },
        { id: "long", plan: "fail", reason: long }
      ])
      yield* pass(jobs)
      const byId = new Map((yield* messages(DLQ)).map((m) => [JSON.parse(m.body).id, m.attributes["error.message"]]))
      assert.strictEqual(byId.get("empty"), "(empty)")
      assert.strictEqual(byId.get("exact"), exact)
      assert.strictEqual(byId.get("long"), `${"y".repeat(1023)}…`)
      assert.strictEqual(byId.get("long")!.length, 1024)
    }).pipe(Effect.provide(queues())))

  it.effect("the sender's own attributes are kept, in order, while they fit in SQS's 10 with the pipeline.* and error.* ones", () =>
    Effect.gen(function*() {
      // 3 pipeline.* + 2 own + 5 error.* = 10: all kept
      yield* send(QUEUE, [{ id: "fits", plan: "fail", reason: "r" }], { "app.a": "1", "app.b": "2" })
      // 3 pipeline.* + 3 own + 5 error.* = 11: the last own one goes
      yield* send(QUEUE, [{ id: "crowded", plan: "fail", reason: "r" }], { "app.a": "1", "app.b": "2", "app.c": "3" })
      yield* pass(jobs)
      const byId = new Map((yield* messages(DLQ)).map((m) => [JSON.parse(m.body).id, Object.keys(m.attributes).sort()]))
      const errorKeys = ["error.message", "error.receive_count", "error.source_queue", "error.step", "error.tag"]
      const pipelineKeys = [Attribute.step, Attribute.traceId, Attribute.transitionId]
      assert.deepStrictEqual(byId.get("fits"), ["app.a", "app.b", ...errorKeys, ...pipelineKeys])
      assert.deepStrictEqual(byId.get("crowded"), ["app.a", "app.b", ...errorKeys, ...pipelineKeys])
    }).pipe(Effect.provide(queues())))

  it.effect("a mutation that returns a record its schema rejects is dead-lettered at that step", () =>
    Effect.gen(function*() {
      yield* send(QUEUE, [{ id: "j1", plan: "invalid" }])
      assert.deepStrictEqual(tags(yield* pass(jobs)), ["DeadLettered"])
      const [dead] = yield* messages(DLQ)
      assert.strictEqual(dead!.attributes["error.tag"], "SchemaViolation")
      assert.match(dead!.attributes["error.message"]!, /^step returned an invalid record: .*plan/s)
      assert.strictEqual(dead!.attributes["error.step"], "step")
      assert.deepStrictEqual(yield* messages(QUEUE), [], "no successor was sent")
    }).pipe(Effect.provide(queues())))

  it.effect("the step limit: the last allowed step runs, the next one is dead-lettered", () =>
    Effect.gen(function*() {
      yield* send(QUEUE, [{ id: "last", plan: "ok" }], { [Attribute.step]: "2" })
      yield* send(QUEUE, [{ id: "over", plan: "ok" }], { [Attribute.step]: "3" })
      const outcomes = yield* pass(jobs)
      assert.sameMembers(tags(outcomes), ["Advanced", "DeadLettered"])
      const [successor] = yield* messages(QUEUE)
      assert.deepStrictEqual(JSON.parse(successor!.body), { id: "last", plan: "ok", result: "done" })
      assert.strictEqual(successor!.attributes[Attribute.step], "3")
      const [dead] = yield* messages(DLQ)
      assert.strictEqual(JSON.parse(dead!.body).id, "over")
      assert.strictEqual(dead!.attributes["error.tag"], "StepLimitReached")
      assert.strictEqual(dead!.attributes["error.message"], "step 3 reached the limit of 3 steps")
    }).pipe(Effect.provide(queues({ maxSteps: 3 }))))

  it.effect("on a FIFO dead-letter queue, dead letters share one group and are deduplicated by message id", () =>
    Effect.gen(function*() {
      yield* send(FIFO, [{ id: "a", plan: "fail", reason: "r" }, { id: "b", plan: "fail", reason: "r" }])
      const originals = yield* messages(FIFO)
      yield* pass(jobs, FIFO)
      const dead = yield* messages(FIFO_DLQ)
      assert.strictEqual(dead.length, 2)
      assert.deepStrictEqual(dead.map((m) => m.groupId), ["dead-letters", "dead-letters"])
      assert.sameMembers(dead.map((m) => m.deduplicationId!), originals.map((m) => m.messageId))
    }).pipe(Effect.provide(queues({ queueUrl: FIFO }))))

  it.effect("a dead letter the dead-letter queue refuses stays on the queue, reported failed with the refusal", () =>
    Effect.gen(function*() {
      const control = yield* MemoryQueueControl
      control.faults.entry = (_operation, queueUrl, message) =>
        queueUrl === DLQ && message.body.includes(`"refused"`)
          ? { id: message.id, code: "InvalidMessageContents", message: "bad characters", senderFault: true }
          : undefined
      yield* send(QUEUE, [{ id: "refused", plan: "fail", reason: "r" }, { id: "taken", plan: "fail", reason: "r" }])
      const outcomes = yield* pass(jobs)
      const failed = outcomes.filter((o) => o._tag === "Failed")
      assert.strictEqual(failed.length, 1)
      assert.strictEqual(JSON.parse(failed[0]!.message.body).id, "refused")
      assert.deepStrictEqual(failed[0]!._tag === "Failed" && failed[0]!.error, {
        _tag: "SendRejected",
        message: "InvalidMessageContents: bad characters"
      })
      assert.deepStrictEqual((yield* messages(QUEUE)).map((m) => JSON.parse(m.body).id), ["refused"])
      assert.deepStrictEqual((yield* messages(DLQ)).map((m) => JSON.parse(m.body).id), ["taken"])
    }).pipe(Effect.provide(queues())))
})

describe("engine: no dead-letter queue", () => {
  it.effect("a permanent failure is reported failed, left on the queue (never deleted) and logged as an error naming the message", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      yield* send(QUEUE, [{ id: "j1", plan: "fail", reason: "the source is gone" }])
      const [original] = yield* messages(QUEUE)
      const outcomes = yield* pass(jobs)
      assert.deepStrictEqual(tags(outcomes), ["Failed"])
      assert.deepStrictEqual(failedMessageIds(outcomes), [original!.messageId])
      assert.deepStrictEqual((yield* messages(QUEUE)).map((m) => [m.messageId, m.body]), [[original!.messageId, original!.body]])
      const errors = logs.lines.filter((l) => l.level === "Error")
      assert.deepStrictEqual(errors, [{
        level: "Error",
        message: `cannot dead-letter message ${original!.messageId} (the queue has no dead-letter queue); left on the queue`,
        annotations: { messageId: original!.messageId, error: "PermanentError", reason: "the source is gone" }
      }])
      // delivered again: the same, and still not deleted
      yield* TestClock.adjust("31 seconds")
      assert.deepStrictEqual(tags(yield* pass(jobs)), ["Failed"])
      assert.strictEqual((yield* messages(QUEUE)).length, 1)
      assert.strictEqual(logs.lines.filter((l) => l.level === "Error").length, 2)
    }).pipe(Effect.provide(Layer.merge(queues({}, null), logs.layer)))
  })

  it.effect("when the queue's attributes cannot be read, the failure is kept and logged with that reason", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      const control = yield* MemoryQueueControl
      control.faults.request = (operation, queueUrl) => operation === "attributes" ? queueFailure("GetQueueAttributes", queueUrl, false) : undefined
      yield* send(QUEUE, ["not json"])
      const outcomes = yield* pass(jobs)
      assert.deepStrictEqual(tags(outcomes), ["Failed"])
      assert.strictEqual((yield* messages(QUEUE)).length, 1)
      const [error] = logs.lines.filter((l) => l.level === "Error")
      assert.strictEqual(
        error!.message,
        `cannot dead-letter message ${outcomes[0]!.message.messageId} (its queue's attributes: injected: denied); left on the queue`
      )
      assert.strictEqual(error!.annotations["error"], "MalformedBody")
    }).pipe(Effect.provide(Layer.merge(queues(), logs.layer)))
  })

  it.effect("the redrive target is looked up once, then remembered", () =>
    Effect.gen(function*() {
      const process = processBatch(jobs)
      yield* send(QUEUE, [{ id: "a", plan: "fail", reason: "r" }])
      yield* pass(jobs, QUEUE, process)
      yield* send(QUEUE, [{ id: "b", plan: "fail", reason: "r" }])
      yield* pass(jobs, QUEUE, process)
      assert.strictEqual((yield* messages(DLQ)).length, 2)
      assert.strictEqual((yield* MemoryQueueControl).requests.attributes, 1)
    }).pipe(Effect.provide(queues())))

  it.effect("a batch with nothing to dead-letter does not look up the redrive target", () =>
    Effect.gen(function*() {
      yield* send(QUEUE, [{ id: "a", plan: "ok" }])
      yield* pass(jobs)
      assert.strictEqual((yield* MemoryQueueControl).requests.attributes, 0)
    }).pipe(Effect.provide(queues())))

  it.effect("a PIPELINE_DLQ_URL-style setting is used even when the queue has no redrive target", () =>
    Effect.gen(function*() {
      yield* send(QUEUE, [{ id: "a", plan: "fail", reason: "r" }])
      assert.deepStrictEqual(tags(yield* pass(jobs)), ["DeadLettered"])
      assert.strictEqual((yield* messages("https://sqs.test/000000000000/elsewhere")).length, 1)
    }).pipe(Effect.provide(queues({ deadLetterQueueUrl: Option.some("https://sqs.test/000000000000/elsewhere") }, null))))
})

describe("engine: failures left for redelivery", () => {
  it.effect("a defect (die or throw) is left for redelivery, described, and logged as a warning", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      yield* send(QUEUE, [{ id: "die", plan: "die" }, { id: "throw", plan: "throw" }])
      const outcomes = yield* pass(jobs)
      const errors = new Map(outcomes.map((o) => [JSON.parse(o.message.body).id, o._tag === "Failed" ? o.error : undefined]))
      assert.deepInclude(errors.get("die"), { _tag: "Defect", message: "boom" })
      assert.deepInclude(errors.get("throw"), { _tag: "Defect", message: "TypeError: bug in step" })
      assert.strictEqual((yield* messages(QUEUE)).length, 2)
      assert.deepStrictEqual((yield* messages(DLQ)), [])
      const warnings = logs.lines.filter((l) => l.level === "Warn")
      for (const outcome of outcomes) {
        const line = warnings.find((l) => l.message === `message ${outcome.message.messageId} left for redelivery: Defect`)
        assert.deepStrictEqual(line?.annotations, {
          messageId: outcome.message.messageId,
          error: "Defect",
          reason: outcome._tag === "Failed" ? outcome.error.message : ""
        })
      }
    }).pipe(Effect.provide(Layer.merge(queues(), logs.layer)))
  })

  it.effect("a retryable error is retried with backoff for retryFor, then left for redelivery", () =>
    Effect.gen(function*() {
      counters.attempts = 0
      yield* send(QUEUE, [{ id: "j1", plan: "flaky" }])
      const fiber = yield* Effect.forkChild(pass(jobs))
      yield* TestClock.adjust("50 millis")
      assert.strictEqual(counters.attempts, 1, "the first retry waits")
      yield* TestClock.adjust("1 second")
      assert.isAbove(counters.attempts, 2, "still retrying inside the retry budget")
      assert.isBelow(counters.attempts, 10, "backing off, not spinning")
      assert.isUndefined(fiber.pollUnsafe(), "not given up before retryFor")
      yield* TestClock.adjust("5 seconds")
      const outcomes = yield* Fiber.join(fiber)
      assert.deepStrictEqual(tags(outcomes), ["Failed"])
      const attempts = counters.attempts
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(counters.attempts, attempts, "no attempts after giving up")
      assert.strictEqual((yield* messages(QUEUE)).length, 1)
    }).pipe(Effect.provide(queues({ retryFor: Duration.seconds(3) }))))

  it.effect("on its last allowed receive a failing message is dead-lettered with its reason, even beside messages that advance", () =>
    Effect.gen(function*() {
      const queue = yield* MessageQueue
      yield* send(QUEUE, [{ id: "bug", plan: "die" }])
      // four deliveries that were never handled; the fifth is the last the queue allows (maxReceiveCount 5)
      for (let i = 0; i < 4; i++) {
        const [delivery] = yield* queue.receive(QUEUE)
        yield* queue.changeVisibility(QUEUE, [{ id: "v", receiptHandle: delivery!.receiptHandle }], 0)
      }
      yield* send(QUEUE, [{ id: "fine", plan: "ok" }])
      const outcomes = yield* pass(jobs)
      assert.sameMembers(tags(outcomes), ["DeadLettered", "Advanced"])
      const [dead] = yield* messages(DLQ)
      assert.strictEqual(JSON.parse(dead!.body).id, "bug")
      assert.strictEqual(dead!.attributes["error.tag"], "Defect")
      assert.strictEqual(dead!.attributes["error.receive_count"], "5")
    }).pipe(Effect.provide(queues())))

  it.effect("a batch works on at most `concurrency` messages at once", () =>
    Effect.gen(function*() {
      counters.running = 0
      counters.maxRunning = 0
      yield* send(QUEUE, Array.from({ length: 6 }, (_, i) => ({ id: `s${i}`, plan: "slow" })))
      const fiber = yield* Effect.forkChild(pass(jobs))
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(tags(yield* Fiber.join(fiber)), Array(6).fill("Advanced"))
      assert.strictEqual(counters.maxRunning, 2)
    }).pipe(Effect.provide(queues({ concurrency: 2 }))))
})

describe("engine: FIFO chains", () => {
  it.effect("a greeting runs its whole chain on a FIFO queue: each step a new transition, none lost", () =>
    Effect.gen(function*() {
      const queue = yield* MessageQueue
      const record = { id: "f1" }
      const transition = initialTransition("f1", record)
      yield* queue.send(FIFO, [{
        id: "p",
        body: JSON.stringify(record),
        attributes: toAttributes(transition),
        groupId: "f1",
        deduplicationId: transition.transitionId
      }])
      const seen: Array<unknown> = []
      for (let i = 0; i < 3; i++) {
        assert.strictEqual((yield* messages(FIFO)).length, 1, `before pass ${i + 1} the record is on the queue, not deduplicated away`)
        const outcomes = yield* pass(greetingPipeline, FIFO)
        seen.push(...outcomes.map((o) => o._tag))
      }
      assert.deepStrictEqual(seen, ["Advanced", "Advanced", "Done"])
      assert.deepStrictEqual(yield* messages(FIFO), [])
    }).pipe(Effect.provide(queues({ queueUrl: FIFO }))))

  it.effect("the successor's group is the record id, its dedup id the hash of its new state", () =>
    Effect.gen(function*() {
      yield* send(FIFO, [{ id: "a", plan: "ok" }])
      yield* pass(jobs, FIFO)
      const [successor] = yield* messages(FIFO)
      assert.strictEqual(successor!.groupId, "a")
      assert.strictEqual(successor!.deduplicationId, transitionId("a", { id: "a", plan: "ok", result: "done" }))
      assert.strictEqual(successor!.attributes[Attribute.transitionId], successor!.deduplicationId)
    }).pipe(Effect.provide(queues({ queueUrl: FIFO }))))

  it.effect("a record without an id keeps to its trace's group", () =>
    Effect.gen(function*() {
      yield* send(FIFO, [{}])
      const [original] = yield* messages(FIFO)
      yield* pass(greetingPipeline, FIFO)
      const [successor] = yield* messages(FIFO)
      assert.strictEqual(successor!.groupId, original!.attributes[Attribute.traceId])
    }).pipe(Effect.provide(queues({ queueUrl: FIFO }))))

  it.effect("on a standard queue successors carry no group or dedup id", () =>
    Effect.gen(function*() {
      yield* send(QUEUE, [{ id: "a", plan: "ok" }])
      yield* pass(jobs)
      const [successor] = yield* messages(QUEUE)
      assert.isUndefined(successor!.groupId)
      assert.isUndefined(successor!.deduplicationId)
    }).pipe(Effect.provide(queues())))
})

describe("engine: acknowledging", () => {
  it.effect("nothing handled: no delete request at all", () =>
    Effect.gen(function*() {
      yield* send(QUEUE, [{ id: "a", plan: "die" }])
      yield* pass(jobs)
      assert.strictEqual((yield* MemoryQueueControl).requests.delete, 0)
    }).pipe(Effect.provide(queues())))

  it.effect("done, advanced and dead-lettered messages are deleted in one request; failed ones are not", () =>
    Effect.gen(function*() {
      yield* send(QUEUE, [
        { id: "done", plan: "ok", result: "done" },
        { id: "advance", plan: "ok" },
        { id: "dead", plan: "fail", reason: "r" },
        { id: "failed", plan: "die" }
      ])
      const outcomes = yield* pass(jobs)
      assert.sameMembers(tags(outcomes), ["Done", "Advanced", "DeadLettered", "Failed"])
      assert.strictEqual((yield* MemoryQueueControl).requests.delete, 1)
      const left = (yield* messages(QUEUE)).map((m) => JSON.parse(m.body))
      assert.sameDeepMembers(left, [{ id: "failed", plan: "die" }, { id: "advance", plan: "ok", result: "done" }])
    }).pipe(Effect.provide(queues())))

  it.effect("a delete throttled at first is retried", () =>
    Effect.gen(function*() {
      const control = yield* MemoryQueueControl
      let refusals = 0
      control.faults.request = (operation, queueUrl) =>
        operation === "delete" && refusals++ < 2 ? queueFailure("DeleteMessageBatch", queueUrl, true) : undefined
      yield* send(QUEUE, [{ id: "done", plan: "ok", result: "done" }])
      const fiber = yield* Effect.forkChild(pass(jobs))
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(yield* messages(QUEUE), [])
      assert.strictEqual(control.requests.delete, 3)
    }).pipe(Effect.provide(queues())))

  it.effect("a delete that fails for one message is logged; that message will be redelivered", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      yield* send(QUEUE, [{ id: "done", plan: "ok", result: "done" }])
      const [message] = yield* (yield* MessageQueue).receive(QUEUE)
      yield* acknowledge(QUEUE, [{ _tag: "Done", message: { ...message!, receiptHandle: "stale" }, transitions: 0, step: 0 }])
      assert.strictEqual((yield* messages(QUEUE)).length, 1)
      assert.deepStrictEqual(logs.lines.map((l) => [l.level, l.message]), [[
        "Warn",
        "could not delete a handled message (ReceiptHandleIsInvalid: unknown receipt handle); it will be redelivered"
      ]])
    }).pipe(Effect.provide(Layer.merge(queues(), logs.layer)))
  })
})

describe("engine: tracing", () => {
  it.effect("with a tracing backend each batch is a span named processBatch, its steps' spans within it", () =>
    Effect.gen(function*() {
      const spans: Array<{ readonly name: string; readonly parent: string | undefined }> = []
      const backend = Tracer.make({
        span(options) {
          const parent = Option.getOrUndefined(options.parent)
          spans.push({ name: options.name, parent: parent?._tag === "Span" ? parent.name : undefined })
          return Tracer.nativeTracer.span(options)
        }
      })
      const traced = mutation<Job>("traced", (job) => Effect.succeed({ ...job, result: "done" as const }).pipe(Effect.withSpan("inside")))
      const pipeline = definePipeline({ ...jobs, router: (job: Job) => (job.result === "done" ? done : traced) })
      yield* send(QUEUE, [{ id: "t1", plan: "ok" }])
      const outcomes = yield* pass(pipeline).pipe(Effect.withTracer(backend))
      assert.deepStrictEqual(tags(outcomes), ["Advanced"])
      assert.deepStrictEqual(spans.filter((span) => span.name === "processBatch" || span.name === "inside"), [
        { name: "processBatch", parent: undefined },
        { name: "inside", parent: "processBatch" }
      ])
    }).pipe(Effect.provide(queues())))
})

describe("bodyDecoder", () => {
  const decodeBody = (schema: typeof Job, body: string) => bodyDecoder(schema)(body)
  it.effect("names what is wrong with a body", () =>
    Effect.gen(function*() {
      const notJson = yield* Effect.flip(decodeBody(Job, "{oops"))
      assert.strictEqual(notJson._tag, "MalformedBody")
      assert.match(notJson.message, /^body is not JSON: \S/)
      const wrong = yield* Effect.flip(decodeBody(Job, JSON.stringify({ id: 1, plan: "nope" })))
      assert.strictEqual(wrong._tag, "SchemaViolation")
      assert.include(wrong.message, `["id"]`)
      assert.include(wrong.message, `["plan"]`, "every failing field, not just the first")
      assert.deepStrictEqual(yield* decodeBody(Job, `{"id":"a","plan":"ok"}`), { id: "a", plan: "ok" })
    }))
})
