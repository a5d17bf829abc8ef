/**
 * The metadata every message carries: step, trace id and transition id as attributes, read back
 * from a received message, and defaults for a message that was sent without them.
 */
import fc from "fast-check"
import { assert, describe, it } from "vitest"
import {
  Attribute,
  fromAttributes,
  initialTransition,
  nextTransition,
  toAttributes,
  transitionId
} from "../../src/domain/transition.ts"

describe("transition metadata", () => {
  it("uses the attribute names the README documents", () => {
    assert.deepStrictEqual(toAttributes({ step: 4, traceId: "t", transitionId: "x" }), {
      "pipeline.step": "4",
      "pipeline.trace_id": "t",
      "pipeline.transition_id": "x"
    })
  })

  it("a chain starts at step 0 with a fresh trace id and the hash of its first state", () => {
    const first = initialTransition("r1", { id: "r1" })
    const again = initialTransition("r1", { id: "r1" })
    assert.strictEqual(first.step, 0)
    assert.match(first.traceId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    assert.notStrictEqual(first.traceId, again.traceId, "each produced record starts its own trace")
    assert.strictEqual(first.transitionId, transitionId("r1", { id: "r1" }))
    assert.strictEqual(again.transitionId, first.transitionId, "the same record produced twice is the same transition")
  })

  it("each step counts up, keeps the trace and hashes the new state", () => {
    const first = initialTransition("r1", { id: "r1" })
    const second = nextTransition(first, "r1", { id: "r1", greeting: "hello" })
    const third = nextTransition(second, "r1", { id: "r1", greeting: "hello", name: "world" })
    assert.deepStrictEqual([second.step, third.step], [1, 2])
    assert.deepStrictEqual([second.traceId, third.traceId], [first.traceId, first.traceId])
    assert.strictEqual(second.transitionId, transitionId("r1", { id: "r1", greeting: "hello" }))
    assert.strictEqual(third.transitionId, transitionId("r1", { id: "r1", greeting: "hello", name: "world" }))
  })

  it("attributes written are read back as the same transition", () => {
    fc.assert(fc.property(fc.nat(), fc.uuid(), fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 64, maxLength: 64 }), fc.string(), (step, traceId, id, messageId) => {
      const transition = { step, traceId, transitionId: id }
      assert.deepStrictEqual(fromAttributes(toAttributes(transition), messageId), transition)
    }))
  })

  it("a message sent without metadata starts a chain: step 0, its message id as the trace id", () => {
    assert.deepStrictEqual(fromAttributes({}, "msg-1"), { step: 0, traceId: "msg-1", transitionId: "" })
    assert.deepStrictEqual(fromAttributes({ other: "x" }, "msg-2"), { step: 0, traceId: "msg-2", transitionId: "" })
  })

  it("a step that is not a whole number from 0 counts as step 0", () => {
    for (const step of ["-1", "1.5", "abc", "", "1e400", "9007199254740993"]) {
      assert.strictEqual(fromAttributes({ [Attribute.step]: step }, "m").step, 0, `step ${JSON.stringify(step)}`)
    }
    assert.strictEqual(fromAttributes({ [Attribute.step]: "0" }, "m").step, 0)
    assert.strictEqual(fromAttributes({ [Attribute.step]: "7" }, "m").step, 7)
    assert.strictEqual(fromAttributes({ [Attribute.step]: "9007199254740991" }, "m").step, 9007199254740991)
  })
})
