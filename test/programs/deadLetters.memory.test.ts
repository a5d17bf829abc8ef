/**
 * `dlq list`, `dlq redrive` and `status` on the memory queue and the TestClock: what they show,
 * what moves where and what stays, when they stop and what they wait for. No real time passes;
 * every run goes through `runOnClock`, which moves the TestClock on until the program ends.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer, Logger, Option } from "effect"
import { TestClock } from "effect/testing"
import type { OutgoingMessage } from "../../src/domain/messages.ts"
import { moveTasks, peekDeadLetters, redriveDeadLetters } from "../../src/programs/deadLetters.ts"
import { pipelineStatus } from "../../src/programs/status.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { MessageMoveTasks, type MoveTask } from "../../src/services/MessageMoveTasks.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { MemoryQueueControl, queueFailure } from "../../src/services/queue/memory.ts"
import { RedriveJournal } from "../../src/services/RedriveJournal.ts"

const QUEUE = "https://sqs.test/000000000000/jobs"
const DLQ = "https://sqs.test/000000000000/jobs-dlq"
const OTHER = "https://sqs.test/000000000000/other-jobs"
const FIFO = "https://sqs.test/000000000000/jobs.fifo"
const FIFO_DLQ = "https://sqs.test/000000000000/jobs-dlq.fifo"

/** The DLQ's visibility timeout, seconds: how long a dead letter another reader took stays in flight. */
const DLQ_VISIBILITY = 10

/** A queue whose redrive policy names its DLQ (or, `explicit`, a DLQ named by PIPELINE_DLQ_URL), the journal. */
const queues = (options: { readonly queueUrl?: string; readonly dlq?: string; readonly dlqVisibility?: number; readonly explicit?: boolean } = {}) => {
  const queueUrl = options.queueUrl ?? QUEUE
  const dlq = options.dlq ?? DLQ
  return Layer.mergeAll(
    MessageQueue.layerMemory({
      [queueUrl]: options.explicit === true ? {} : { deadLetterQueueUrl: dlq, maxReceiveCount: 5 },
      [dlq]: { visibilityTimeout: options.dlqVisibility ?? DLQ_VISIBILITY }
    }),
    EngineSettings.layerWith({ queueUrl, deadLetterQueueUrl: options.explicit === true ? Option.some(dlq) : Option.none() }),
    RedriveJournal.layerMemory
  )
}

/** A dead letter as the engine writes one; its body is `{"id":"rec-<n>"}`. */
const deadLetter = (n: number, tag: string, step = "thumbnail200", sourceQueue = QUEUE): OutgoingMessage => ({
  id: `m${n}`,
  body: JSON.stringify({ id: `rec-${n}` }),
  attributes: {
    "pipeline.step": "1",
    "pipeline.trace_id": `trace-${n}`,
    "error.tag": tag,
    "error.message": `${tag} happened`,
    "error.step": step,
    "error.receive_count": "2",
    "error.source_queue": sourceQueue
  }
})

const letters = (from: number, count: number, tag: string, step?: string) =>
  Array.from({ length: count }, (_, i) => deadLetter(from + i, tag, step))

const seed = (queueUrl: string, messages: ReadonlyArray<OutgoingMessage>) =>
  Effect.gen(function*() {
    const result = yield* (yield* MessageQueue).send(queueUrl, messages)
    assert.deepStrictEqual(result.failed, [])
  })

const recordId = (body: string) => (JSON.parse(body) as { id: string }).id

/** The record ids in a queue, sorted (visible or not). */
const idsIn = (queueUrl: string) =>
  Effect.map(MemoryQueueControl, (control) => control.messages(queueUrl).map((message) => recordId(message.body)).sort())

/** The record ids of a queue's messages that were never received. */
const neverReceived = (queueUrl: string) =>
  Effect.map(MemoryQueueControl, (control) =>
    control.messages(queueUrl).filter((message) => message.receiveCount === 0).map((message) => recordId(message.body)).sort())

const visibleNow = (queueUrl: string) =>
  Effect.gen(function*() {
    const control = yield* MemoryQueueControl
    const now = yield* Clock.currentTimeMillis
    return control.messages(queueUrl).filter((message) => message.visibleAt <= now).length
  })

/** Another reader (a peek in another terminal, a redrive that was stopped) holds `count` dead letters for `seconds`. */
const takenElsewhere = (queueUrl: string, count: number, seconds?: number) =>
  Effect.gen(function*() {
    const taken = yield* (yield* MessageQueue).receive(queueUrl, { maxMessages: count, visibilityTimeout: seconds })
    assert.strictEqual(taken.length, count)
    return taken.map((message) => recordId(message.body)).sort()
  })

/**
 * Runs `effect` while moving the TestClock on by `stepMillis` at a time, calling `onStep` after
 * each move; fails if it has not ended within `withinMillis`. `elapsed` is the clock time it took.
 */
const runOnClock = <A, E, R, R2 = never>(
  effect: Effect.Effect<A, E, R>,
  options: { readonly stepMillis?: number; readonly withinMillis?: number; readonly onStep?: (elapsed: number) => Effect.Effect<void, never, R2> } = {}
) =>
  Effect.gen(function*() {
    const step = options.stepMillis ?? 100
    const within = options.withinMillis ?? 60_000
    const startedAt = yield* Clock.currentTimeMillis
    let endedAt = startedAt
    const fiber = yield* Effect.forkChild(effect.pipe(Effect.onExit(() => Effect.map(Clock.currentTimeMillis, (now) => void (endedAt = now)))))
    yield* Effect.yieldNow
    while (fiber.pollUnsafe() === undefined) {
      if ((yield* Clock.currentTimeMillis) - startedAt >= within) {
        yield* Fiber.interrupt(fiber)
        return assert.fail(`still running after ${within} ms on the clock`)
      }
      yield* TestClock.adjust(step)
      if (options.onStep !== undefined && fiber.pollUnsafe() === undefined) {
        yield* options.onStep((yield* Clock.currentTimeMillis) - startedAt)
      }
    }
    return { value: yield* Fiber.join(fiber), elapsed: endedAt - startedAt }
  })

/** SQS's short poll asks only some of its servers and can come back empty while messages are there; here it always does. A long poll asks them all. */
const shortPollsMiss = Effect.gen(function*() {
  const queue = yield* MessageQueue
  return MessageQueue.of({
    ...queue,
    receive: (queueUrl, options) => (options?.waitSeconds ?? 0) > 0 ? queue.receive(queueUrl, options) : Effect.succeed([])
  })
})

/**
 * SQS's move tasks run inside SQS, and the memory queue has no counterpart: this one records the
 * tasks it is asked to start (the SQS requests are checked on the wire in test/cli/operate.moto.sqs.test.ts).
 */
const moveTasksRecorded = (tasks: ReadonlyArray<MoveTask> = []) => {
  const started: Array<{ readonly from: string; readonly to: string; readonly perSecond: number | undefined }> = []
  const layer = Layer.succeed(MessageMoveTasks, MessageMoveTasks.of({
    start: (from, to, perSecond) =>
      Effect.sync(() => {
        started.push({ from, to, perSecond })
        return `task-${started.length}`
      }),
    list: (from) => Effect.succeed(from === DLQ ? tasks : [])
  }))
  return { started, layer }
}

const captureLogs = () => {
  const lines: Array<string> = []
  const layer = Logger.layer([Logger.make((log) => {
    lines.push(Array.isArray(log.message) ? log.message.map(String).join(" ") : String(log.message))
  })])
  return { lines, layer }
}

describe("dlq list: a peek", () => {
  it.effect("that saw as many dead letters as the DLQ counted ends without a long poll, all of them visible again", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, [...letters(0, 13, "CorruptImage"), deadLetter(13, "SchemaViolation", "decode")])
      const { value: peek, elapsed } = yield* runOnClock(peekDeadLetters(100))
      assert.strictEqual(peek.letters.length, 14)
      assert.deepInclude(peek, { deadLetterQueueUrl: DLQ, count: 14, truncated: false })
      // the memory queue's short poll of an empty queue takes 10 ms; a long poll would take a second
      assert.isBelow(elapsed, 1000)
      assert.strictEqual(yield* visibleNow(DLQ), 14)
    }).pipe(Effect.provide(queues())))

  it.effect("when short polls come back empty while the DLQ counts dead letters, long polls find them", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, letters(0, 14, "CorruptImage"))
      const sampling = yield* shortPollsMiss
      const { value: peek } = yield* runOnClock(peekDeadLetters(100).pipe(Effect.provideService(MessageQueue, sampling)))
      assert.deepStrictEqual(peek.letters.map((letter) => recordId(letter.body)).sort(), yield* idsIn(DLQ))
      assert.strictEqual(yield* visibleNow(DLQ), 14)
    }).pipe(Effect.provide(queues())))

  it.effect("stops at --max, says there are more, and never receives the dead letters beyond it", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, letters(0, 25, "CorruptImage"))
      const { value: peek } = yield* runOnClock(peekDeadLetters(10))
      assert.strictEqual(peek.letters.length, 10)
      assert.deepInclude(peek, { count: 25, truncated: true })
      assert.strictEqual((yield* neverReceived(DLQ)).length, 15)
      assert.strictEqual(yield* visibleNow(DLQ), 25)
    }).pipe(Effect.provide(queues())))

  it.effect("exactly --max dead letters: all shown, and nothing more to show", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, letters(0, 10, "CorruptImage"))
      const { value: peek } = yield* runOnClock(peekDeadLetters(10))
      assert.deepInclude(peek, { count: 10, truncated: false })
      assert.strictEqual(peek.letters.length, 10)
    }).pipe(Effect.provide(queues())))

  it.effect("counts dead letters in flight elsewhere and delayed ones, shows the visible ones, and does not call the rest 'more than shown'", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, letters(0, 7, "CorruptImage"))
      yield* seed(DLQ, letters(7, 2, "CorruptImage").map((message) => ({ ...message, delaySeconds: 60 })))
      const taken = yield* takenElsewhere(DLQ, 4)
      const { value: peek } = yield* runOnClock(peekDeadLetters(100))
      assert.deepInclude(peek, { count: 9, truncated: false })
      const shown = peek.letters.map((letter) => recordId(letter.body)).sort()
      assert.deepStrictEqual(shown, ["rec-4", "rec-5", "rec-6"])
      assert.isFalse(shown.some((id) => taken.includes(id)))
    }).pipe(Effect.provide(queues())))

  it.effect("a dead letter that comes straight back (a DLQ whose visibility timeout is 0) is shown once", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, letters(0, 5, "CorruptImage"))
      const { value: peek } = yield* runOnClock(peekDeadLetters(100))
      assert.deepStrictEqual(peek.letters.map((letter) => recordId(letter.body)).sort(), ["rec-0", "rec-1", "rec-2", "rec-3", "rec-4"])
      assert.isFalse(peek.truncated)
    }).pipe(Effect.provide(queues({ dlqVisibility: 0 }))))

  it.effect("a dead letter the queue's own redrive moved (no error.* attributes) shows reason unknown; --reason unknown sends it back to the pipeline's queue", () =>
    Effect.gen(function*() {
      const queue = yield* MessageQueue
      yield* seed(QUEUE, [{ id: "a", body: JSON.stringify({ id: "rec-1" }), attributes: { "pipeline.step": "3" } }])
      // received 5 times (maxReceiveCount) without a delete: the 6th receive moves it to the DLQ
      for (let i = 0; i < 5; i++) {
        assert.strictEqual((yield* queue.receive(QUEUE)).length, 1)
        yield* TestClock.adjust("31 seconds")
      }
      assert.deepStrictEqual((yield* runOnClock(queue.receive(QUEUE))).value, [])
      yield* seed(DLQ, [deadLetter(2, "CorruptImage")])

      const { value: peek } = yield* runOnClock(peekDeadLetters(100))
      const moved = peek.letters.find((letter) => letter.body.includes("rec-1"))!
      assert.deepInclude(moved, { reason: "unknown", step: undefined, receiveCount: undefined, sourceQueue: undefined, errorMessage: undefined })
      const { value: status } = yield* runOnClock(pipelineStatus())
      assert.deepStrictEqual(status.deadLetters.reasons, { CorruptImage: 1, unknown: 1 })
      assert.deepStrictEqual(status.deadLetters.steps, { thumbnail200: 1, unknown: 1 })

      const { value: result } = yield* runOnClock(redriveDeadLetters({ reason: "unknown" }))
      assert.deepInclude(result, { _tag: "Copied", redriven: 1 })
      assert.deepStrictEqual(yield* idsIn(QUEUE), ["rec-1"])
      assert.deepStrictEqual(yield* idsIn(DLQ), ["rec-2"])
    }).pipe(Effect.provide(queues())))

  it.effect("status lists reasons and steps most frequent first, ties by name", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, [
        deadLetter(0, "Timeout", "download"),
        ...letters(1, 3, "CorruptImage", "thumbnail200"),
        deadLetter(4, "Absent", "download"),
        ...letters(5, 2, "SchemaViolation", "decode")
      ])
      const { value: status } = yield* runOnClock(pipelineStatus())
      assert.deepStrictEqual(Object.entries(status.deadLetters.reasons), [["CorruptImage", 3], ["SchemaViolation", 2], ["Absent", 1], ["Timeout", 1]])
      assert.deepStrictEqual(Object.entries(status.deadLetters.steps), [["thumbnail200", 3], ["decode", 2], ["download", 2]])
    }).pipe(Effect.provide(queues())))

  it.effect("no dead-letter queue: the error names the queue and PIPELINE_DLQ_URL", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(peekDeadLetters(10))
      assert.strictEqual(error._tag, "NoDeadLetterQueue")
      assert.strictEqual(error.message, `${QUEUE} has no dead-letter queue (no redrive policy, and PIPELINE_DLQ_URL is not set)`)
    }).pipe(Effect.provide(Layer.merge(MessageQueue.layerMemory({ [QUEUE]: {} }), EngineSettings.layerWith({ queueUrl: QUEUE })))))
})

describe("dlq redrive: SQS move task or receive → send → delete", () => {
  it.effect("unfiltered, standard queues, move tasks available: one move task from the DLQ to the pipeline's queue at --rate; this program moves nothing itself", () => {
    const mover = moveTasksRecorded()
    return Effect.gen(function*() {
      yield* seed(DLQ, letters(0, 4, "CorruptImage"))
      yield* seed(DLQ, letters(4, 2, "CorruptImage").map((message) => ({ ...message, delaySeconds: 60 })))
      yield* takenElsewhere(DLQ, 1)
      const { value: result } = yield* runOnClock(redriveDeadLetters({ perSecond: 7 }))
      // about the visible and the delayed ones: the one in flight elsewhere is not counted
      assert.deepStrictEqual(result, { _tag: "MoveTask", deadLetterQueueUrl: DLQ, destination: QUEUE, taskHandle: "task-1", approximateCount: 5 })
      assert.deepStrictEqual(mover.started, [{ from: DLQ, to: QUEUE, perSecond: 7 }])
      assert.strictEqual((yield* idsIn(DLQ)).length, 6)
      assert.deepStrictEqual(yield* idsIn(QUEUE), [])
    }).pipe(Effect.provide(Layer.merge(queues(), mover.layer)))
  })

  for (
    const [name, options] of [
      ["--max", { max: 10 }],
      ["--step", { step: "thumbnail200" }],
      ["--reason", { reason: "CorruptImage" }],
      ["--copy", { copy: true }]
    ] as const
  ) {
    it.effect(`${name}: receive → send → delete here, even where move tasks exist`, () => {
      const mover = moveTasksRecorded()
      return Effect.gen(function*() {
        yield* seed(DLQ, letters(0, 3, "CorruptImage"))
        const { value: result } = yield* runOnClock(redriveDeadLetters(options))
        assert.deepInclude(result, { _tag: "Copied", redriven: 3, finished: 0, notDeleted: 0, failed: [] })
        assert.deepStrictEqual(mover.started, [])
        assert.deepStrictEqual(yield* idsIn(QUEUE), ["rec-0", "rec-1", "rec-2"])
        assert.deepStrictEqual(yield* idsIn(DLQ), [])
      }).pipe(Effect.provide(Layer.merge(queues(), mover.layer)))
    })
  }

  for (
    const [name, queueUrl, dlq] of [
      ["FIFO queue and DLQ", FIFO, FIFO_DLQ],
      ["FIFO queue, standard DLQ", FIFO, DLQ],
      ["standard queue, FIFO DLQ", QUEUE, FIFO_DLQ]
    ] as const
  ) {
    it.effect(`${name}: move tasks are for standard queues only, so receive → send → delete`, () => {
      const mover = moveTasksRecorded()
      return Effect.gen(function*() {
        const fifoDlq = dlq === FIFO_DLQ
        yield* seed(dlq, [0, 1].map((n) => ({ ...deadLetter(n, "CorruptImage", "thumbnail200", queueUrl), ...(fifoDlq ? { groupId: "dead-letters", deduplicationId: `d${n}` } : {}) })))
        const { value: result } = yield* runOnClock(redriveDeadLetters({}))
        assert.deepInclude(result, { _tag: "Copied", redriven: 2 })
        assert.deepStrictEqual(mover.started, [])
        assert.deepStrictEqual(yield* idsIn(queueUrl), ["rec-0", "rec-1"])
      }).pipe(Effect.provide(Layer.merge(queues({ queueUrl, dlq, explicit: true }), mover.layer)))
    })
  }

  it.effect("a move task SQS refuses to start: a redrive failure with SQS's reason that points to --copy; nothing moved", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, letters(0, 2, "CorruptImage"))
      const refusing = Layer.succeed(MessageMoveTasks, MessageMoveTasks.of({
        start: (from) => Effect.fail(queueFailure("StartMessageMoveTask", from, false)),
        list: () => Effect.succeed([])
      }))
      const error = yield* Effect.flip(redriveDeadLetters({}).pipe(Effect.provide(refusing)))
      assert.strictEqual(error._tag, "RedriveFailed")
      assert.strictEqual(
        error.message,
        "StartMessageMoveTask failed: injected: denied (`dlq redrive --copy` redrives by receive, send and delete instead)"
      )
      assert.strictEqual((yield* idsIn(DLQ)).length, 2)
    }).pipe(Effect.provide(queues())))

  it.effect("--status lists the DLQ's move tasks where SQS has them, and says unsupported where not", () => {
    const task: MoveTask = {
      taskHandle: "task-1",
      status: "RUNNING",
      sourceArn: "arn:aws:sqs:us-east-1:000000000000:jobs-dlq",
      destinationArn: "arn:aws:sqs:us-east-1:000000000000:jobs",
      moved: 3,
      toMove: 10,
      startedAt: undefined,
      failureReason: undefined
    }
    const mover = moveTasksRecorded([task])
    return Effect.gen(function*() {
      assert.deepStrictEqual(yield* moveTasks().pipe(Effect.provide(mover.layer)), { deadLetterQueueUrl: DLQ, supported: true, tasks: [task] })
      assert.deepStrictEqual(yield* moveTasks(), { deadLetterQueueUrl: DLQ, supported: false, tasks: [] })
    }).pipe(Effect.provide(queues()))
  })
})

describe("dlq redrive by receive → send → delete", () => {
  it.effect("each dead letter goes back to the queue it came from (the pipeline's queue if it does not say), with its attributes but no error.* ones", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, [
        { ...deadLetter(1, "CorruptImage", "thumbnail200", OTHER), attributes: { ...deadLetter(1, "CorruptImage", "thumbnail200", OTHER).attributes, tenant: "acme" } },
        deadLetter(2, "CorruptImage"),
        { id: "m3", body: JSON.stringify({ id: "rec-3" }), attributes: { "pipeline.step": "2", "error.tag": "Timeout" } }
      ])
      const { value: result } = yield* runOnClock(redriveDeadLetters({}))
      assert.deepInclude(result, { redriven: 3 })
      const control = yield* MemoryQueueControl
      assert.deepStrictEqual(control.messages(OTHER).map((message) => message.attributes), [
        { "pipeline.step": "1", "pipeline.trace_id": "trace-1", tenant: "acme" }
      ])
      assert.deepStrictEqual(yield* idsIn(QUEUE), ["rec-2", "rec-3"])
      assert.deepStrictEqual(control.messages(QUEUE).find((message) => message.body.includes("rec-3"))?.attributes, { "pipeline.step": "2" })
    }).pipe(Effect.provide(queues())))

  it.effect("--max 12 moves exactly 12 across batches; the dead letters beyond the batches it looked at are never received", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, letters(0, 25, "CorruptImage"))
      const { value: result } = yield* runOnClock(redriveDeadLetters({ max: 12 }))
      assert.deepInclude(result, { redriven: 12 })
      assert.strictEqual((yield* idsIn(QUEUE)).length, 12)
      assert.strictEqual((yield* idsIn(DLQ)).length, 13)
      assert.deepStrictEqual(yield* neverReceived(DLQ), ["rec-20", "rec-21", "rec-22", "rec-23", "rec-24"])
      assert.strictEqual(yield* visibleNow(DLQ), 13)
    }).pipe(Effect.provide(queues())))

  it.effect("--step moves only that step's dead letters, wherever they are in the DLQ", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, [...letters(0, 3, "CorruptImage", "thumbnail100"), ...letters(3, 2, "CorruptImage", "thumbnail200")])
      const { value: result } = yield* runOnClock(redriveDeadLetters({ step: "thumbnail200" }))
      assert.deepInclude(result, { redriven: 2 })
      assert.deepStrictEqual(yield* idsIn(QUEUE), ["rec-3", "rec-4"])
      assert.deepStrictEqual(yield* idsIn(DLQ), ["rec-0", "rec-1", "rec-2"])
      assert.strictEqual(yield* visibleNow(DLQ), 3)
    }).pipe(Effect.provide(queues())))

  it.effect("a send refused for one entry: reported with the refusal, tried once in the run, left in the DLQ and visible", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, [deadLetter(1, "CorruptImage"), deadLetter(2, "CorruptImage"), deadLetter(3, "CorruptImage")])
      const control = yield* MemoryQueueControl
      let tries = 0
      control.faults.entry = (operation, queueUrl, message) => {
        if (operation !== "send" || queueUrl !== QUEUE || !message.body.includes("rec-2")) return undefined
        tries++
        return { id: message.id, code: "InvalidParameterValue", message: "refused", senderFault: true }
      }
      const { value: result } = yield* runOnClock(redriveDeadLetters({}))
      const [refused] = control.messages(DLQ)
      assert.deepInclude(result, { redriven: 2, finished: 0, notDeleted: 0 })
      assert.deepStrictEqual(result._tag === "Copied" ? result.failed : [], [
        { messageId: refused!.messageId, reason: "SendRejected: InvalidParameterValue: refused" }
      ])
      assert.strictEqual(tries, 1)
      assert.deepStrictEqual(yield* idsIn(DLQ), ["rec-2"])
      assert.strictEqual(yield* visibleNow(DLQ), 1)
    }).pipe(Effect.provide(queues())))

  it.effect("--rate 2: two a second, the first two at once", () =>
    Effect.gen(function*() {
      // not at 0, so that the pacing is measured from the start and not from the epoch
      yield* TestClock.setTime(3_600_000)
      yield* seed(DLQ, letters(0, 7, "CorruptImage"))
      const sentAt: Array<number> = []
      const { value: result } = yield* runOnClock(redriveDeadLetters({ perSecond: 2 }), {
        stepMillis: 500,
        onStep: () => Effect.map(idsIn(QUEUE), (ids) => void sentAt.push(ids.length))
      })
      assert.deepInclude(result, { redriven: 7 })
      // after 0.5 s, 1 s, 1.5 s, 2 s and 2.5 s
      assert.deepStrictEqual(sentAt, [2, 4, 4, 6, 7])
      assert.strictEqual((yield* idsIn(QUEUE)).length, 7)
    }).pipe(Effect.provide(queues())))

  it.effect("dead letters in flight elsewhere at the start are waited for and redriven when they come back; it ends as soon as only the ones it skipped are left", () => {
    const logs = captureLogs()
    return Effect.gen(function*() {
      yield* seed(DLQ, [...letters(0, 2, "CorruptImage"), ...letters(2, 2, "Timeout"), deadLetter(4, "CorruptImage")])
      assert.deepStrictEqual(yield* takenElsewhere(DLQ, 2), ["rec-0", "rec-1"])
      const { value: result, elapsed } = yield* runOnClock(redriveDeadLetters({ reason: "CorruptImage" }))
      assert.deepInclude(result, { redriven: 3 })
      assert.deepStrictEqual(yield* idsIn(QUEUE), ["rec-0", "rec-1", "rec-4"])
      // back after the DLQ's visibility timeout, well before the wait's end (2 s later)
      assert.isAtLeast(elapsed, DLQ_VISIBILITY * 1000)
      assert.isBelow(elapsed, (DLQ_VISIBILITY + 1) * 1000)
      const waiting = logs.lines.filter((line) => line.includes("in flight elsewhere"))
      assert.isNotEmpty(waiting)
      for (const line of waiting) {
        assert.strictEqual(line, "2 dead letters are in flight elsewhere (a peek, or a redrive that was stopped); waiting for them")
      }
      // the skipped ones are in the DLQ, visible at once
      assert.deepStrictEqual(yield* idsIn(DLQ), ["rec-2", "rec-3"])
      assert.strictEqual(yield* visibleNow(DLQ), 2)
    }).pipe(Effect.provide(Layer.merge(queues(), logs.layer)))
  })

  it.effect("dead letters held elsewhere longer than the DLQ's visibility timeout: given up 2 s after it, the rest redriven", () =>
    Effect.gen(function*() {
      yield* seed(DLQ, letters(0, 5, "CorruptImage"))
      yield* takenElsewhere(DLQ, 2, 600)
      const { value: result, elapsed } = yield* runOnClock(redriveDeadLetters({}))
      assert.deepInclude(result, { redriven: 3 })
      assert.deepStrictEqual(yield* idsIn(DLQ), ["rec-0", "rec-1"])
      assert.isAtLeast(elapsed, (DLQ_VISIBILITY + 2) * 1000)
      assert.isBelow(elapsed, (DLQ_VISIBILITY + 4) * 1000)
    }).pipe(Effect.provide(queues())))

  it.effect("a filtered redrive slower than the DLQ's visibility timeout still redrives every match", () =>
    Effect.gen(function*() {
      // at 1 a second, the 15 matches take longer than the 10 s the skipped one stays invisible
      yield* seed(DLQ, [deadLetter(0, "Timeout"), ...letters(1, 15, "CorruptImage")])
      const { value: result } = yield* runOnClock(redriveDeadLetters({ reason: "CorruptImage", perSecond: 1 }))
      assert.deepInclude(result, { redriven: 15 })
      assert.deepStrictEqual(yield* idsIn(DLQ), ["rec-0"])
      assert.strictEqual(yield* visibleNow(DLQ), 1)
    }).pipe(Effect.provide(queues())))
})
