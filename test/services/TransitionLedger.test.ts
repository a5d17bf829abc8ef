import { assert, describe, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { TransitionLedger } from "../../src/services/TransitionLedger.ts"
import { ledgerCases } from "../support/ledgerCases.ts"

describe("TransitionLedger", () => {
  layer(TransitionLedger.layerMemory)("layerMemory", ledgerCases)

  it.effect("layerNone is disabled and lets every claim win, even a second message at one place", () =>
    Effect.gen(function*() {
      const ledger = yield* TransitionLedger
      assert.isFalse(ledger.enabled)
      const place = { traceId: "t", step: 1 }
      const results = yield* ledger.claim([{ ...place, messageId: "a" }, { ...place, messageId: "b" }])
      assert.deepStrictEqual(results, ["Won", "Won"])
    }).pipe(Effect.provide(TransitionLedger.layerNone)))
})
