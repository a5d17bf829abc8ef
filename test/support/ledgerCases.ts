/**
 * What every TransitionLedger layer must do, as test cases to run inside a `layer(...)` block.
 * The layer is shared by the block, so each case works on trace ids of its own.
 */
import { assert, type Vitest } from "@effect/vitest"
import { randomUUID } from "node:crypto"
import { Duration, Effect } from "effect"
import { TestClock } from "effect/testing"
import { type Claim, CLAIM_TTL, type ClaimResult, TransitionLedger } from "../../src/services/TransitionLedger.ts"

/** A realistic start (TestClock starts at 1970): DynamoDB's expiresAt is epoch seconds. */
const START = Date.UTC(2026, 0, 1)

const newTrace = () => `trace-${randomUUID()}`

const claim = (...claims: ReadonlyArray<Claim>) => TransitionLedger.use((ledger) => ledger.claim(claims))
const release = (...claims: ReadonlyArray<Claim>) => TransitionLedger.use((ledger) => ledger.release(claims))

export const ledgerCases = (it: Vitest.MethodsNonLive<TransitionLedger>) => {
  it.effect("is enabled", () =>
    Effect.gen(function*() {
      assert.isTrue((yield* TransitionLedger).enabled)
    }))

  it.effect("a free place is won; the same message again is a redelivery", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const place = { traceId: newTrace(), step: 3, messageId: "m1" }
      assert.deepStrictEqual(yield* claim(place), ["Won"])
      assert.deepStrictEqual(yield* claim(place), ["Redelivery"])
      assert.deepStrictEqual(yield* claim(place), ["Redelivery"])
    }))

  it.effect("another message at a held place is a duplicate, and takes nothing from the holder", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const traceId = newTrace()
      assert.deepStrictEqual(yield* claim({ traceId, step: 1, messageId: "m1" }), ["Won"])
      assert.deepStrictEqual(yield* claim({ traceId, step: 1, messageId: "copy" }), ["Duplicate"])
      assert.deepStrictEqual(yield* claim({ traceId, step: 1, messageId: "m1" }), ["Redelivery"])
      // the same step of another chain, and the next step of this one, are other places
      assert.deepStrictEqual(yield* claim({ traceId: newTrace(), step: 1, messageId: "copy" }), ["Won"])
      assert.deepStrictEqual(yield* claim({ traceId, step: 2, messageId: "copy" }), ["Won"])
    }))

  it.effect("a claim holds for 14 days; after that the place is won by a new message", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const traceId = newTrace()
      const other = newTrace()
      assert.deepStrictEqual(yield* claim({ traceId, step: 0, messageId: "old" }, { traceId: other, step: 0, messageId: "old" }), ["Won", "Won"])
      yield* TestClock.adjust(Duration.subtract(CLAIM_TTL, Duration.minutes(1)))
      assert.deepStrictEqual(yield* claim({ traceId, step: 0, messageId: "new" }), ["Duplicate"])
      yield* TestClock.adjust(Duration.minutes(2))
      assert.deepStrictEqual(yield* claim({ traceId, step: 0, messageId: "new" }), ["Won"])
      // its own expired claim is won afresh, not a redelivery: nothing held it any more
      assert.deepStrictEqual(yield* claim({ traceId: other, step: 0, messageId: "old" }), ["Won"])
      assert.deepStrictEqual(yield* claim({ traceId, step: 0, messageId: "old" }), ["Duplicate"])
      assert.deepStrictEqual(yield* claim({ traceId, step: 0, messageId: "new" }), ["Redelivery"])
    }))

  it.effect("a released place is won by the next message", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const held = { traceId: newTrace(), step: 4, messageId: "dead-lettered" }
      assert.deepStrictEqual(yield* claim(held), ["Won"])
      yield* release(held)
      assert.deepStrictEqual(yield* claim({ ...held, messageId: "redriven" }), ["Won"])
      assert.deepStrictEqual(yield* claim(held), ["Duplicate"])
    }))

  it.effect("a release by a message that does not hold the place does nothing", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const held = { traceId: newTrace(), step: 2, messageId: "holder" }
      assert.deepStrictEqual(yield* claim(held), ["Won"])
      yield* release({ ...held, messageId: "someone-else" }, { traceId: newTrace(), step: 2, messageId: "nobody" })
      assert.deepStrictEqual(yield* claim({ ...held, messageId: "someone-else" }), ["Duplicate"])
      assert.deepStrictEqual(yield* claim(held), ["Redelivery"])
    }))

  it.effect("claims 25 places in one call, results in the claims' order", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const traces = [newTrace(), newTrace()]
      const place = (i: number) => ({ traceId: traces[i % 2]!, step: i })
      // every third place held by its own message, every third by another one, the rest free
      const held = Array.from({ length: 25 }, (_, i) => i).filter((i) => i % 3 !== 2)
      assert.deepStrictEqual(yield* claim(...held.map((i) => ({ ...place(i), messageId: `m${i}` }))), held.map((): ClaimResult => "Won"))

      const results = yield* claim(...Array.from({ length: 25 }, (_, i) => ({ ...place(i), messageId: i % 3 === 1 ? `copy${i}` : `m${i}` })))
      assert.deepStrictEqual(results, Array.from({ length: 25 }, (_, i) => (["Redelivery", "Duplicate", "Won"] as const)[i % 3]))
      assert.deepStrictEqual(yield* claim(), [])
      yield* release()
    }))
}
