/**
 * Batches of at most 10: SQS's batch calls take 10 entries, so every list is cut into chunks
 * that keep each entry exactly once and in order.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import { MemoryQueueControl } from "../../src/services/queue/memory.ts"
import { chunks, MAX_BATCH } from "../../src/domain/messages.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"

describe("chunks", () => {
  it("every entry in exactly one chunk, in order, no chunk over 10 or empty, only the last one short", () => {
    assert.strictEqual(MAX_BATCH, 10)
    fc.assert(fc.property(fc.array(fc.nat(), { maxLength: 55 }), (items) => {
      const cut = chunks(items)
      assert.deepStrictEqual(cut.flat(), items)
      assert.strictEqual(cut.length, Math.ceil(items.length / 10))
      cut.forEach((chunk, index) => {
        assert.isAtLeast(chunk.length, 1)
        assert.isAtMost(chunk.length, 10)
        if (index < cut.length - 1) assert.strictEqual(chunk.length, 10)
      })
    }))
  })

  it("other sizes cut the same way", () => {
    fc.assert(fc.property(fc.array(fc.string(), { maxLength: 30 }), fc.integer({ min: 1, max: 12 }), (items, size) => {
      const cut = chunks(items, size)
      assert.deepStrictEqual(cut.flat(), items)
      assert.isTrue(cut.every((chunk, index) => chunk.length === (index < cut.length - 1 ? size : chunk.length) && chunk.length <= size && chunk.length > 0))
    }))
  })

  it.effect("the memory queue sends any number of messages in requests of 10, all of them, in order", () =>
    Effect.gen(function*() {
      const queue = yield* MessageQueue
      const control = yield* MemoryQueueControl
      let total = 0
      for (const count of [0, 1, 9, 10, 11, 20, 25]) {
        const url = `q${count}`
        const before = control.requests.send
        const result = yield* queue.send(url, Array.from({ length: count }, (_, i) => ({ id: `e${i}`, body: String(i) })))
        assert.strictEqual(control.requests.send - before, Math.ceil(count / 10), `${count} messages`)
        assert.deepStrictEqual(result.successful, Array.from({ length: count }, (_, i) => `e${i}`))
        assert.deepStrictEqual(control.messages(url).map((m) => m.body), Array.from({ length: count }, (_, i) => String(i)))
        total += count
      }
      assert.strictEqual(total, 76)
    }).pipe(Effect.provide(MessageQueue.layerMemory())))
})
