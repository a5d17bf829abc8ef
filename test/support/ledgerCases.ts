/**
 * What every TransitionLedger layer must do, as test cases to run inside a `layer(...)` block.
 * The layer is shared by the block, so each case works on trace ids of its own.
 */
import { assert, type Vitest } from "@effect/vitest"
import { randomUUID } from "node:crypto"
import { Duration, Effect } from "effect"
import { TestClock } from "effect/testing"
import { type Claim, CLAIM_TTL, type ClaimResult, type Ending, TransitionLedger } from "../../src/services/TransitionLedger.ts"

/** A realistic start (TestClock starts at 1970): DynamoDB's expiresAt is epoch seconds. */
const START = Date.UTC(2026, 0, 1)

const newTrace = () => `trace-${randomUUID()}`

const claim = (...claims: ReadonlyArray<Claim>) => TransitionLedger.use((ledger) => ledger.claim(claims))
const finish = (ending: Ending, ...claims: ReadonlyArray<Claim>) =>
  TransitionLedger.use((ledger) => ledger.finish(claims.map((claim) => ({ ...claim, ending }))))
const deadLetter: Ending = { _tag: "DeadLettered", reason: "CorruptImage", message: "premature end", stage: "thumbnail_200" }
const release = (...claims: ReadonlyArray<Claim>) => finish(deadLetter, ...claims)
const history = (id: string) => TransitionLedger.use((ledger) => ledger.history(id))

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

  it.effect("a dead-lettered place is given back: won by the next message", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const held = { traceId: newTrace(), step: 4, messageId: "dead-lettered" }
      assert.deepStrictEqual(yield* claim(held), ["Won"])
      yield* release(held)
      assert.deepStrictEqual(yield* claim({ ...held, messageId: "redriven" }), ["Won"])
      assert.deepStrictEqual(yield* claim(held), ["Duplicate"])
    }))

  it.effect("a dead-letter ending by a message that does not hold the place does nothing", () =>
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

  it.effect("history: each place's claim (message, mutation, when) and ending, found by trace id or by record id", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const traceId = newTrace()
      const recordId = `record-${randomUUID()}`
      // the producer's message names the record; successors name the mutation that made them
      yield* claim({ traceId, step: 0, messageId: "m0", recordId })
      yield* TestClock.adjust(Duration.seconds(1))
      yield* claim({ traceId, step: 1, messageId: "m1", mutation: "download", queue: "q" })
      yield* TestClock.adjust(Duration.seconds(1))
      yield* claim({ traceId, step: 2, messageId: "m2", mutation: "thumbnail" })
      assert.deepStrictEqual(yield* claim({ traceId, step: 1, messageId: "copy", mutation: "download" }), ["Duplicate"])
      yield* finish({ _tag: "DuplicateSkipped" }, { traceId, step: 1, messageId: "copy" })
      yield* TestClock.adjust(Duration.seconds(1))
      yield* finish({ _tag: "Done" }, { traceId, step: 2, messageId: "m2" })
      // an ending by a message that does not hold the place is not recorded
      yield* finish({ _tag: "Done" }, { traceId, step: 1, messageId: "copy" })

      const entries = yield* history(traceId)
      assert.deepStrictEqual(entries.map((entry) => [entry.step, entry.messageId, entry.mutation ?? null, entry.claimedAt - START]), [
        [0, "m0", null, 0],
        [1, "m1", "download", 1000],
        [2, "m2", "thumbnail", 2000]
      ])
      assert.strictEqual(entries[0]!.recordId, recordId)
      assert.deepStrictEqual(entries.map((entry) => entry.queue ?? null), [null, "q", null])
      assert.deepStrictEqual(entries.map((entry) => entry.duplicatesSkipped), [0, 1, 0])
      assert.deepStrictEqual(entries.map((entry) => entry.ending?.tag ?? null), [null, null, "Done"])
      assert.strictEqual(entries[2]!.ending!.at, START + 3000)
      assert.deepStrictEqual(yield* history(recordId), entries)
      assert.deepStrictEqual(yield* history(`nothing-${randomUUID()}`), [])
    }))

  it.effect("history: a dead letter's reason, and every chain of a record produced twice, the earlier first", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START)
      const recordId = `record-${randomUUID()}`
      const [first, second] = [newTrace(), newTrace()]
      yield* claim({ traceId: second, step: 0, messageId: "b0", recordId })
      yield* TestClock.adjust(Duration.seconds(1))
      yield* claim({ traceId: first, step: 0, messageId: "a0" })
      yield* claim({ traceId: first, step: 1, messageId: "a1", recordId, mutation: "download" })
      // the earlier chain is the one claimed first
      yield* TestClock.adjust(Duration.seconds(-5))
      yield* claim({ traceId: first, step: 0, messageId: "a0" })
      yield* release({ traceId: first, step: 1, messageId: "a1" })
      const entries = yield* history(recordId)
      assert.deepStrictEqual(entries.map((entry) => [entry.traceId, entry.step]), [[first, 0], [first, 1], [second, 0]])
      assert.deepInclude(entries[1]!.ending, { tag: "DeadLettered", reason: "CorruptImage", message: "premature end", stage: "thumbnail_200" })
      // given back, and a redriven message takes the place: the history shows the latest attempt
      assert.deepStrictEqual(yield* claim({ traceId: first, step: 1, messageId: "redriven", mutation: "download" }), ["Won"])
      const after = (yield* history(first)).find((entry) => entry.step === 1)!
      assert.strictEqual(after.messageId, "redriven")
      assert.isUndefined(after.ending)
      // the attempt it replaced is kept: which message, when, why
      assert.deepStrictEqual(after.earlier, {
        messageId: "a1",
        at: entries[1]!.ending!.at,
        reason: "CorruptImage",
        message: "premature end",
        stage: "thumbnail_200"
      })
      // a redelivery of the redriven message keeps it too; a place never dead-lettered has none
      assert.deepStrictEqual(yield* claim({ traceId: first, step: 1, messageId: "redriven", mutation: "download" }), ["Redelivery"])
      assert.deepStrictEqual((yield* history(first)).find((entry) => entry.step === 1)!.earlier, after.earlier)
      assert.isUndefined((yield* history(first)).find((entry) => entry.step === 0)!.earlier)
    }))

  it.effect("entries: every place claimed since a time", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(START + 3_600_000)
      const traceId = newTrace()
      yield* claim({ traceId, step: 0, messageId: "old" })
      yield* TestClock.adjust(Duration.minutes(2))
      const since = START + 3_600_000 + 60_000
      yield* claim({ traceId, step: 1, messageId: "new", mutation: "download" })
      const mine = (yield* TransitionLedger.use((ledger) => ledger.entries(since))).filter((entry) => entry.traceId === traceId)
      assert.deepStrictEqual(mine.map((entry) => entry.messageId), ["new"])
    }))
}
