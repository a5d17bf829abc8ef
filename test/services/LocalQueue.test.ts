import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Fiber, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import { DATABASE_FILE, deadLetterQueueName, type LocalQueueOptions } from "../../src/services/queue/local.ts"
import type { OutgoingMessage } from "../../src/domain/messages.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import * as LocalQueue from "../../src/services/queue/local.ts"

const WORKER = join(import.meta.dirname, "..", "support", "localQueueWorker.ts")

/** A fresh folder, removed when the test's scope closes (after the queue it holds is closed). */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "local-queue-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

const openQueue = (options: Omit<LocalQueueOptions, "directory"> = {}) =>
  Effect.flatMap(tempDir, (directory) => LocalQueue.make({ ...options, directory }))

const messages = (n: number, attributes?: Record<string, string>): Array<OutgoingMessage> =>
  Array.from({ length: n }, (_, i) => ({ id: `e${i}`, body: `body-${i}`, attributes }))

const handles = (received: ReadonlyArray<{ readonly receiptHandle: string }>) =>
  received.map((message, i) => ({ id: `h${i}`, receiptHandle: message.receiptHandle }))

describe("LocalQueue", () => {
  it.effect("sends, receives oldest first, deletes", () =>
    Effect.gen(function*() {
      const queue = yield* openQueue()
      const sent = yield* queue.send("pipeline", messages(3, { kind: "test" }))
      assert.deepStrictEqual(sent, { successful: ["e0", "e1", "e2"], failed: [] })

      const received = yield* queue.receive("pipeline", { maxMessages: 10 })
      assert.deepStrictEqual(received.map((m) => m.body), ["body-0", "body-1", "body-2"])
      assert.deepStrictEqual(received.map((m) => m.receiveCount), [1, 1, 1])
      assert.deepStrictEqual(received[0]!.attributes, { kind: "test" })
      assert.strictEqual(new Set(received.map((m) => m.messageId)).size, 3)

      const during = yield* queue.attributes("pipeline")
      assert.strictEqual(during.approximateVisible, 0)
      assert.strictEqual(during.approximateInFlight, 3)
      assert.strictEqual(during.visibilityTimeout, 30)
      assert.isFalse(during.fifo)
      assert.deepStrictEqual(yield* queue.receive("pipeline"), [])

      const deleted = yield* queue.delete("pipeline", handles(received))
      assert.deepStrictEqual(deleted, { successful: ["h0", "h1", "h2"], failed: [] })
      const after = yield* queue.attributes("pipeline")
      assert.deepStrictEqual(
        [after.approximateVisible, after.approximateInFlight, after.approximateDelayed],
        [0, 0, 0]
      )
    }))

  it.effect("knows the age of its oldest message, in flight or not, and none for an empty queue", () =>
    Effect.gen(function*() {
      const queue = yield* openQueue()
      assert.isUndefined((yield* queue.attributes("pipeline")).oldestAgeSeconds)
      yield* queue.send("pipeline", messages(1))
      yield* TestClock.adjust("90 seconds")
      yield* queue.send("pipeline", messages(1))
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* queue.attributes("pipeline")).oldestAgeSeconds, 100)
      const [oldest] = yield* queue.receive("pipeline", { maxMessages: 1 })
      assert.strictEqual((yield* queue.attributes("pipeline")).oldestAgeSeconds, 100, "in flight still counts, as on SQS")
      yield* queue.delete("pipeline", handles([oldest!]))
      assert.strictEqual((yield* queue.attributes("pipeline")).oldestAgeSeconds, 10)
      assert.isUndefined((yield* queue.attributes("other")).oldestAgeSeconds, "another queue's messages are not its own")
    }))

  it.effect("receives at most maxMessages and keeps queues apart", () =>
    Effect.gen(function*() {
      const queue = yield* openQueue()
      yield* queue.send("a", messages(15))
      yield* queue.send("b", [{ id: "x", body: "other" }])
      assert.strictEqual((yield* queue.receive("a", { maxMessages: 4 })).length, 4)
      assert.strictEqual((yield* queue.receive("a")).length, 10)
      assert.strictEqual((yield* queue.receive("a")).length, 1)
      assert.deepStrictEqual((yield* queue.receive("b")).map((m) => m.body), ["other"])
    }))

  it.effect("reports bad entries per entry and bad calls as non-retryable QueueErrors", () =>
    Effect.gen(function*() {
      const queue = yield* openQueue()
      const result = yield* queue.send("pipeline", [
        { id: "ok", body: "fine" },
        { id: "empty", body: "" },
        { id: "late", body: "x", delaySeconds: 901 },
        { id: "dedup", body: "x", deduplicationId: "d" }
      ])
      assert.deepStrictEqual(result.successful, ["ok"])
      assert.deepStrictEqual(result.failed.map((f) => [f.id, f.senderFault]), [
        ["empty", true],
        ["late", true],
        ["dedup", true]
      ])

      const duplicate = yield* Effect.flip(queue.send("pipeline", [{ id: "a", body: "1" }, { id: "a", body: "2" }]))
      assert.include(duplicate.message, "BatchEntryIdsNotDistinct")
      assert.isFalse(duplicate.retryable)
      const tooMany = yield* Effect.flip(queue.receive("pipeline", { maxMessages: 11 }))
      assert.isFalse(tooMany.retryable)
      const url = yield* Effect.flip(queue.receive("https://sqs.eu-west-1.amazonaws.com/1/pipeline"))
      assert.strictEqual(url._tag, "QueueError")
      // nothing was delivered by the failed calls
      assert.strictEqual((yield* queue.attributes("pipeline")).approximateVisible, 1)
    }))

  it.effect("a message whose visibility timeout expires comes back with receiveCount 2 and a new handle", () =>
    Effect.gen(function*() {
      const queue = yield* openQueue()
      yield* queue.send("pipeline", messages(1))
      const [first] = yield* queue.receive("pipeline", { visibilityTimeout: 5 })
      assert.strictEqual(first!.receiveCount, 1)
      yield* TestClock.adjust("4 seconds")
      assert.deepStrictEqual(yield* queue.receive("pipeline"), [])
      yield* TestClock.adjust("1 second")

      const [second] = yield* queue.receive("pipeline")
      assert.strictEqual(second!.messageId, first!.messageId)
      assert.strictEqual(second!.receiveCount, 2)
      assert.notStrictEqual(second!.receiptHandle, first!.receiptHandle)

      // the first handle is stale now, for delete and changeVisibility alike
      const staleDelete = yield* queue.delete("pipeline", [{ id: "old", receiptHandle: first!.receiptHandle }])
      assert.deepStrictEqual(staleDelete.successful, [])
      assert.strictEqual(staleDelete.failed[0]!.code, "ReceiptHandleIsInvalid")
      assert.isTrue(staleDelete.failed[0]!.senderFault)
      const staleChange = yield* queue.changeVisibility("pipeline", [{ id: "old", receiptHandle: first!.receiptHandle }], 0)
      assert.strictEqual(staleChange.failed[0]!.code, "ReceiptHandleIsInvalid")
      assert.strictEqual((yield* queue.attributes("pipeline")).approximateInFlight, 1)

      const fresh = yield* queue.delete("pipeline", [{ id: "new", receiptHandle: second!.receiptHandle }])
      assert.deepStrictEqual(fresh, { successful: ["new"], failed: [] })
    }))

  it.effect("changeVisibility 0 makes a message visible at once; expired or unknown handles fail", () =>
    Effect.gen(function*() {
      const queue = yield* openQueue({ visibilityTimeout: 60 })
      yield* queue.send("pipeline", messages(2))
      const received = yield* queue.receive("pipeline")
      const changed = yield* queue.changeVisibility("pipeline", [
        { id: "a", receiptHandle: received[0]!.receiptHandle },
        { id: "nope", receiptHandle: "not-a-handle" }
      ], 0)
      assert.deepStrictEqual(changed.successful, ["a"])
      assert.deepStrictEqual(changed.failed.map((f) => [f.id, f.code, f.senderFault]), [
        ["nope", "ReceiptHandleIsInvalid", true]
      ])
      const again = yield* queue.receive("pipeline")
      assert.deepStrictEqual(again.map((m) => [m.body, m.receiveCount]), [["body-0", 2]])

      // extending a message whose timeout already ran out is refused, as in SQS
      yield* TestClock.adjust("61 seconds")
      const late = yield* queue.changeVisibility("pipeline", [{ id: "b", receiptHandle: received[1]!.receiptHandle }], 30)
      assert.strictEqual(late.failed[0]!.code, "MessageNotInflight")
    }))

  it.effect("moves a message to <name>-dlq after maxReceiveCount receives, its body unchanged and its attributes with the reason", () =>
    Effect.gen(function*() {
      const queue = yield* openQueue({ maxReceiveCount: 2 })
      yield* queue.send("pipeline", [{ id: "p", body: "{\"job\":1}", attributes: { trace: "t-1", kind: "k" } }])
      const first = yield* queue.receive("pipeline", { visibilityTimeout: 0 })
      const second = yield* queue.receive("pipeline", { visibilityTimeout: 0 })
      assert.deepStrictEqual([first[0]!.receiveCount, second[0]!.receiveCount], [1, 2])
      assert.deepStrictEqual(yield* queue.receive("pipeline"), [])

      const source = yield* queue.attributes("pipeline")
      assert.deepStrictEqual(source.deadLetterQueueUrl, Option.some("pipeline-dlq"))
      assert.deepStrictEqual(source.maxReceiveCount, Option.some(2))
      assert.strictEqual(source.approximateVisible + source.approximateInFlight, 0)
      const dlq = yield* queue.attributes("pipeline-dlq")
      assert.isTrue(Option.isNone(dlq.deadLetterQueueUrl))
      assert.isTrue(Option.isNone(dlq.maxReceiveCount))
      assert.strictEqual(dlq.approximateVisible, 1)

      const [dead] = yield* queue.receive("pipeline-dlq", { visibilityTimeout: 0 })
      assert.strictEqual(dead!.messageId, first[0]!.messageId)
      assert.strictEqual(dead!.body, "{\"job\":1}")
      assert.deepStrictEqual(dead!.attributes, {
        trace: "t-1",
        kind: "k",
        "error.tag": "MaxReceiveCountExceeded",
        "error.message": "received 2 times without being handled (maxReceiveCount 2)",
        "error.step": "receive",
        "error.receive_count": "2",
        "error.source_queue": "pipeline"
      })
      // a dead-letter queue never redrives
      for (let i = 0; i < 3; i++) {
        assert.strictEqual((yield* queue.receive("pipeline-dlq", { visibilityTimeout: 0 })).length, 1)
      }
    }))

  it.effect("delaySeconds keeps a message back, counted as delayed", () =>
    Effect.gen(function*() {
      const queue = yield* openQueue()
      yield* queue.send("pipeline", [{ id: "later", body: "later", delaySeconds: 10 }, { id: "now", body: "now" }])
      assert.deepStrictEqual((yield* queue.receive("pipeline")).map((m) => m.body), ["now"])
      const attributes = yield* queue.attributes("pipeline")
      assert.deepStrictEqual([attributes.approximateDelayed, attributes.approximateInFlight], [1, 1])
      yield* TestClock.adjust("9 seconds")
      assert.deepStrictEqual(yield* queue.receive("pipeline"), [])
      yield* TestClock.adjust("1 second")
      assert.deepStrictEqual((yield* queue.receive("pipeline")).map((m) => m.body), ["later"])
    }))

  it.effect("FIFO: groups in order, one group in flight at a time, deduplication within 5 minutes", () =>
    Effect.gen(function*() {
      const queue = yield* openQueue()
      const sent = yield* queue.send("jobs.fifo", [
        { id: "a1", body: "a1", groupId: "A", deduplicationId: "a1" },
        { id: "a2", body: "a2", groupId: "A", deduplicationId: "a2" },
        { id: "b1", body: "b1", groupId: "B", deduplicationId: "b1" },
        { id: "dup", body: "a1 again", groupId: "A", deduplicationId: "a1" },
        { id: "nogroup", body: "x" }
      ])
      assert.deepStrictEqual(sent.successful, ["a1", "a2", "b1", "dup"])
      assert.deepStrictEqual(sent.failed.map((f) => [f.id, f.code]), [["nogroup", "MissingParameter"]])

      const [a1] = yield* queue.receive("jobs.fifo", { maxMessages: 1 })
      assert.strictEqual(a1!.body, "a1")
      // a2 waits for a1
      const [b1] = yield* queue.receive("jobs.fifo")
      assert.strictEqual(b1!.body, "b1")
      assert.deepStrictEqual(yield* queue.receive("jobs.fifo"), [])
      yield* queue.delete("jobs.fifo", [{ id: "a1", receiptHandle: a1!.receiptHandle }])
      const rest = yield* queue.receive("jobs.fifo")
      assert.deepStrictEqual(rest.map((m) => m.body), ["a2"])
      yield* queue.delete("jobs.fifo", handles([b1!, ...rest]))

      // the dedup id is forgotten after 5 minutes
      yield* TestClock.adjust("5 minutes")
      yield* queue.send("jobs.fifo", [{ id: "a1", body: "a1 later", groupId: "C", deduplicationId: "a1" }])
      assert.deepStrictEqual((yield* queue.receive("jobs.fifo")).map((m) => m.body), ["a1 later"])
      const attributes = yield* queue.attributes("jobs.fifo")
      assert.isTrue(attributes.fifo)
      assert.deepStrictEqual(attributes.deadLetterQueueUrl, Option.some("jobs-dlq.fifo"))
      assert.strictEqual(deadLetterQueueName("jobs.fifo"), "jobs-dlq.fifo")
    }))

  it.live("long poll returns as soon as a message arrives, and after waitSeconds when none does", () =>
    Effect.gen(function*() {
      const queue = yield* openQueue()
      const started = Date.now()
      const empty = yield* queue.receive("pipeline", { waitSeconds: 1 })
      assert.deepStrictEqual(empty, [])
      assert.isAtLeast(Date.now() - started, 950)

      const waiting = yield* Effect.forkChild(queue.receive("pipeline", { waitSeconds: 10 }))
      yield* Effect.sleep("300 millis")
      const sentAt = Date.now()
      yield* queue.send("pipeline", messages(1))
      const received = yield* Fiber.join(waiting)
      assert.deepStrictEqual(received.map((m) => m.body), ["body-0"])
      assert.isBelow(Date.now() - sentAt, 1000)
    }))

  it.live("keeps messages across close and reopen", () =>
    Effect.gen(function*() {
      const directory = yield* tempDir
      const handle = yield* Effect.scoped(Effect.gen(function*() {
        const queue = yield* LocalQueue.make({ directory })
        yield* queue.send("pipeline", messages(3))
        const [message] = yield* queue.receive("pipeline", { maxMessages: 1, visibilityTimeout: 60 })
        return message!.receiptHandle
      }))
      const queue = yield* LocalQueue.make({ directory })
      const attributes = yield* queue.attributes("pipeline")
      assert.deepStrictEqual([attributes.approximateVisible, attributes.approximateInFlight], [2, 1])
      assert.deepStrictEqual((yield* queue.receive("pipeline")).map((m) => m.body), ["body-1", "body-2"])
      // the receipt handle from before the restart still works
      assert.deepStrictEqual((yield* queue.delete("pipeline", [{ id: "x", receiptHandle: handle }])).successful, ["x"])
    }))
})

describe("MessageQueue.layerLocalConfig", () => {
  it.effect("keeps its database in PIPELINE_DATA_DIR", () =>
    Effect.gen(function*() {
      const directory = join(yield* tempDir, "data")
      const config = ConfigProvider.layer(ConfigProvider.fromUnknown({ PIPELINE_DATA_DIR: directory }))
      yield* Effect.gen(function*() {
        const queue = yield* MessageQueue
        yield* queue.send("pipeline", messages(1))
      }).pipe(Effect.provide(MessageQueue.layerLocalConfig.pipe(Layer.provide(config))))
      // the layer is released: a fresh instance on the same folder sees the message
      const queue = yield* LocalQueue.make({ directory })
      assert.isTrue(existsSync(join(directory, DATABASE_FILE)))
      assert.strictEqual((yield* queue.attributes("pipeline")).approximateVisible, 1)
    }))
})

/** A worker process; its stdout lines are read in order. */
const startWorker = (args: Record<string, unknown>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(process.execPath, [WORKER, JSON.stringify(args)], { stdio: ["pipe", "pipe", "inherit"] })
      const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
      const nextLine = Effect.promise(async () => {
        const line = await lines.next()
        if (line.done === true) throw new Error(`worker ended early (exit ${await exited})`)
        return line.value
      })
      return { child, nextLine, exited: Effect.promise(() => exited) }
    }),
    ({ child }) => Effect.sync(() => child.exitCode === null && child.kill("SIGKILL"))
  )

describe("LocalQueue across processes", () => {
  it.live("two processes draining one queue get disjoint sets that cover every message", () =>
    Effect.gen(function*() {
      const directory = yield* tempDir
      const queue = yield* LocalQueue.make({ directory })
      const bodies = Array.from({ length: 200 }, (_, i) => `m-${i}`)
      const sent = yield* queue.send("pipeline", bodies.map((body, i) => ({ id: `e${i}`, body })))
      assert.strictEqual(sent.successful.length, 200)

      const workers = [
        yield* startWorker({ directory, queue: "pipeline", mode: "drain" }),
        yield* startWorker({ directory, queue: "pipeline", mode: "drain" })
      ]
      for (const worker of workers) assert.strictEqual(yield* worker.nextLine, "ready")
      for (const worker of workers) worker.child.stdin!.write("go\n")
      const results = []
      for (const worker of workers) {
        results.push((JSON.parse(yield* worker.nextLine) as { bodies: Array<string> }).bodies)
        assert.strictEqual(yield* worker.exited, 0)
      }

      const [first, second] = results as [Array<string>, Array<string>]
      assert.isAbove(first.length, 0)
      assert.isAbove(second.length, 0)
      const overlap = first.filter((body) => new Set(second).has(body))
      assert.deepStrictEqual(overlap, [])
      assert.deepStrictEqual([...first, ...second].sort(), [...bodies].sort())
      const attributes = yield* queue.attributes("pipeline")
      assert.deepStrictEqual([attributes.approximateVisible, attributes.approximateInFlight], [0, 0])
    }), 20_000)

  it.live("a killed process's in-flight messages come back after their visibility timeout", () =>
    Effect.gen(function*() {
      const directory = yield* tempDir
      const queue = yield* LocalQueue.make({ directory })
      yield* queue.send("pipeline", messages(10))
      const worker = yield* startWorker({ directory, queue: "pipeline", mode: "hold", count: 10, visibilityTimeout: 1 })
      assert.strictEqual(yield* worker.nextLine, "ready")
      worker.child.stdin!.write("go\n")
      const held = (JSON.parse(yield* worker.nextLine) as { messageIds: Array<string> }).messageIds
      assert.strictEqual(held.length, 10)
      assert.strictEqual((yield* queue.attributes("pipeline")).approximateInFlight, 10)
      worker.child.kill("SIGKILL")
      yield* worker.exited

      const back: Array<{ messageId: string; receiveCount: number }> = []
      const started = Date.now()
      while (back.length < 10 && Date.now() - started < 5000) {
        back.push(...(yield* queue.receive("pipeline", { waitSeconds: 1 })))
      }
      assert.deepStrictEqual(back.map((m) => m.messageId).sort(), [...held].sort())
      assert.isTrue(back.every((m) => m.receiveCount === 2))
    }), 20_000)
})
