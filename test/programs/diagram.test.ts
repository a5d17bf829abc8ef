/**
 * The diagram from ledger entries: declared first transition, observed transitions with counts,
 * in-flight notes, and only the entries of the pipeline's own queue (one ledger may serve several).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { greetingPipeline } from "../../src/pipelines/greeting.ts"
import { pipelineDiagram } from "../../src/programs/diagram.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { type Claim, TransitionLedger } from "../../src/services/TransitionLedger.ts"

const claim = (...claims: ReadonlyArray<Claim>) => TransitionLedger.use((ledger) => ledger.claim(claims))
const done = (claim: Claim) => TransitionLedger.use((ledger) => ledger.finish([{ ...claim, ending: { _tag: "Done" } }]))

const services = Layer.mergeAll(TransitionLedger.layerMemory, EngineSettings.layerWith({ queueUrl: "greeting" }))

describe("diagram", () => {
  it.effect("with nothing observed: the router's answer for the initial record, without a count", () =>
    Effect.gen(function*() {
      const diagram = yield* pipelineDiagram(greetingPipeline)
      assert.deepStrictEqual(diagram.transitions, [{ from: "produced", to: "createGreeting", label: "createGreeting", count: null }])
      assert.match(diagram.mermaid, /^ {4}produced --> after_createGreeting : createGreeting$/m)
    }).pipe(Effect.provide(services)))

  it.effect("observed transitions with counts, a step in flight as a note, and only the pipeline's own queue", () =>
    Effect.gen(function*() {
      for (const trace of ["a", "b"]) {
        yield* claim({ traceId: trace, step: 0, messageId: `${trace}0`, queue: "greeting" })
        yield* claim({ traceId: trace, step: 1, messageId: `${trace}1`, mutation: "createGreeting", queue: "greeting" })
      }
      const last = { traceId: "a", step: 2, messageId: "a2", mutation: "createName", queue: "greeting" }
      yield* claim(last)
      yield* done(last)
      // another pipeline's chain in the same ledger
      yield* claim({ traceId: "t", step: 0, messageId: "t0", queue: "thumbnails" })
      yield* claim({ traceId: "t", step: 1, messageId: "t1", mutation: "download", queue: "thumbnails" })

      const diagram = yield* pipelineDiagram(greetingPipeline)
      assert.deepStrictEqual(diagram.transitions, [
        { from: "produced", to: "createGreeting", label: "createGreeting", count: 2 },
        { from: "createGreeting", to: "createName", label: "createName", count: 1 },
        { from: "createName", to: "[*]", label: "done", count: 1 }
      ])
      assert.deepStrictEqual(diagram.inFlight, { createGreeting: 1 })
      assert.include(diagram.mermaid, "    note right of after_createGreeting : 1 in flight")
      assert.notInclude(diagram.mermaid, "download")
    }).pipe(Effect.provide(services)))

  it.effect("without a ledger: only what the pipeline declares, and it says so", () =>
    Effect.gen(function*() {
      const diagram = yield* pipelineDiagram(greetingPipeline)
      assert.isFalse(diagram.ledger)
      assert.strictEqual(diagram.transitions.length, 1)
      assert.match(diagram.mermaid, /^%% no transition ledger: only what the pipeline declares$/m)
    }).pipe(Effect.provide(TransitionLedger.layerNone)))
})
