/**
 * sendAll: every entry either goes out or comes back with its reason. Entries refused for a
 * retryable reason are resent (only those), until the retry schedule gives up.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { sendAll } from "../../src/programs/sendAll.ts"
import { MemoryQueueControl, queueFailure } from "../../src/services/queue/memory.ts"
import type { OutgoingMessage } from "../../src/domain/messages.ts"
import type { QueueError } from "../../src/services/MessageQueue.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"

const QUEUE = "q"
const entries = (count: number): Array<OutgoingMessage> => Array.from({ length: count }, (_, i) => ({ id: `e${i}`, body: `body ${i}` }))
const stored = MemoryQueueControl.useSync((control) => control.messages(QUEUE).map((m) => m.body))

/** Records what each send request carried, entry by entry. */
const recordSends = (control: MemoryQueueControl["Service"]) => {
  const sent: Array<string> = []
  const previous = control.faults.entry
  control.faults.entry = (operation, queueUrl, message) => {
    if (operation === "send") sent.push(message.id)
    return previous?.(operation, queueUrl, message)
  }
  return sent
}

describe("sendAll", () => {
  it.effect("nothing to send: no request, no failures", () =>
    Effect.gen(function*() {
      const failures = yield* sendAll(QUEUE, [])
      assert.strictEqual(failures.size, 0)
      assert.strictEqual((yield* MemoryQueueControl).requests.send, 0)
    }).pipe(Effect.provide(MessageQueue.layerMemory())))

  it.effect("all sent: no failures, every message on the queue, 10 per request", () =>
    Effect.gen(function*() {
      const failures = yield* sendAll(QUEUE, entries(23))
      assert.strictEqual(failures.size, 0)
      assert.deepStrictEqual(yield* stored, entries(23).map((e) => e.body))
      assert.strictEqual((yield* MemoryQueueControl).requests.send, 3)
    }).pipe(Effect.provide(MessageQueue.layerMemory())))

  it.effect("an entry refused for its own fault is reported with the code and message, and not resent", () =>
    Effect.gen(function*() {
      const control = yield* MemoryQueueControl
      control.faults.entry = (_operation, _queueUrl, message) =>
        message.id === "e1" ? { id: "e1", code: "InvalidMessageContents", message: "bad byte", senderFault: true } : undefined
      const sent = recordSends(control)
      const failures = yield* sendAll(QUEUE, entries(3))
      assert.deepStrictEqual([...failures], [["e1", { _tag: "SendRejected", message: "InvalidMessageContents: bad byte" }]])
      assert.deepStrictEqual(yield* stored, ["body 0", "body 2"])
      assert.deepStrictEqual(sent, ["e0", "e1", "e2"], "one request, nothing resent")
    }).pipe(Effect.provide(MessageQueue.layerMemory())))

  it.effect("entries throttled are resent, only they, until they go", () =>
    Effect.gen(function*() {
      const control = yield* MemoryQueueControl
      let throttled = 0
      control.faults.entry = (_operation, _queueUrl, message) =>
        (message.id === "e0" || message.id === "e2") && throttled++ < 3
          ? { id: message.id, code: "ThrottlingException", message: "slow down", senderFault: false }
          : undefined
      const sent = recordSends(control)
      const fiber = yield* Effect.forkChild(sendAll(QUEUE, entries(3)))
      yield* TestClock.adjust("5 seconds")
      const failures = yield* Fiber.join(fiber)
      assert.strictEqual(failures.size, 0)
      assert.sameMembers([...(yield* stored)], ["body 0", "body 1", "body 2"])
      // first request: all three (e0, e2 throttled); second: e0 (throttled), e2; third: e0
      assert.deepStrictEqual(sent, ["e0", "e1", "e2", "e0", "e2", "e0"])
    }).pipe(Effect.provide(MessageQueue.layerMemory())))

  it.effect("entries still throttled when the schedule gives up are reported with a retryable error", () =>
    Effect.gen(function*() {
      const control = yield* MemoryQueueControl
      control.faults.entry = (_operation, _queueUrl, message) =>
        message.id === "e1" ? { id: "e1", code: "ThrottlingException", message: "slow down", senderFault: false } : undefined
      const sent = recordSends(control)
      const failures = yield* sendAll(QUEUE, entries(2), Schedule.recurs(2))
      assert.deepStrictEqual([...failures.keys()], ["e1"])
      const failure = failures.get("e1")!
      assert.strictEqual(failure._tag, "QueueError")
      assert.strictEqual((failure as QueueError).operation, "SendMessageBatch")
      assert.strictEqual(failure.message, "ThrottlingException: slow down")
      assert.isTrue(failure.retryable)
      assert.deepStrictEqual(sent, ["e0", "e1", "e1", "e1"], "sent once and resent twice")
      assert.deepStrictEqual(yield* stored, ["body 0"])
    }).pipe(Effect.provide(MessageQueue.layerMemory())))

  it.effect("by default a throttled entry is resent for about ten seconds", () =>
    Effect.gen(function*() {
      const control = yield* MemoryQueueControl
      control.faults.entry = (_operation, _queueUrl, message) =>
        ({ id: message.id, code: "ThrottlingException", message: "slow down", senderFault: false })
      const fiber = yield* Effect.forkChild(sendAll(QUEUE, entries(1)))
      yield* TestClock.adjust("8 seconds")
      assert.isUndefined(fiber.pollUnsafe(), "still resending after 8 s")
      const requests = control.requests.send
      assert.isAbove(requests, 3)
      assert.isBelow(requests, 20, "with backoff")
      yield* TestClock.adjust("30 seconds")
      const failures = yield* Fiber.join(fiber)
      assert.deepStrictEqual([...failures.keys()], ["e0"])
    }).pipe(Effect.provide(MessageQueue.layerMemory())))

  it.effect("a request that fails retryably is retried; one that fails for good fails every entry with its error", () =>
    Effect.gen(function*() {
      const control = yield* MemoryQueueControl
      let refusals = 0
      control.faults.request = (operation, queueUrl) =>
        operation === "send" && refusals++ < 1 ? queueFailure("SendMessageBatch", queueUrl, true) : undefined
      const fiber = yield* Effect.forkChild(sendAll(QUEUE, entries(2)))
      yield* TestClock.adjust("1 second")
      assert.strictEqual((yield* Fiber.join(fiber)).size, 0)
      assert.deepStrictEqual(yield* stored, ["body 0", "body 1"])

      control.faults.request = (operation, queueUrl) => operation === "send" ? queueFailure("SendMessageBatch", queueUrl, false) : undefined
      const before = control.requests.send
      const failures = yield* sendAll(QUEUE, entries(2))
      assert.deepStrictEqual([...failures.keys()], ["e0", "e1"])
      assert.strictEqual(failures.get("e0")!.message, "injected: denied")
      assert.strictEqual(control.requests.send - before, 1, "not retried")
    }).pipe(Effect.provide(MessageQueue.layerMemory())))
})
