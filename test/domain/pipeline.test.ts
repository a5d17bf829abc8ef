/**
 * What an author builds a pipeline from: mutations, `done` and `unknownState` are the router's
 * three answers, told apart by their tag.
 */
import { Effect, Exit } from "effect"
import { assert, describe, it } from "vitest"
import { UnknownState } from "../../src/domain/errors.ts"
import { done, mutation, unknownState } from "../../src/domain/Pipeline.ts"

describe("pipeline building blocks", () => {
  it("a mutation is tagged, named and runs its function", () => {
    const double = mutation<number>("double", (n) => Effect.succeed(n * 2))
    assert.strictEqual(double._tag, "Mutation")
    assert.strictEqual(double.name, "double")
    assert.deepStrictEqual(Effect.runSyncExit(double.run(21)), Exit.succeed(42))
  })

  it("done and unknownState are the other two answers", () => {
    assert.strictEqual(done._tag, "Done")
    const unknown = unknownState("no rule for a record with both flags")
    assert.instanceOf(unknown, UnknownState)
    assert.strictEqual(unknown._tag, "UnknownState")
    assert.strictEqual(unknown.message, "no rule for a record with both flags")
  })
})
