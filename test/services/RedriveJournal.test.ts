/**
 * The redrive journal, in memory and on SQLite: what was marked sent is remembered per dead-letter
 * queue until forgotten, and on SQLite it survives closing the file (a killed redrive's next run).
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { type JournalError, RedriveJournal } from "../../src/services/RedriveJournal.ts"

const layers: Record<string, () => Layer.Layer<RedriveJournal, JournalError>> = {
  "in memory": () => RedriveJournal.layerMemory,
  "on SQLite": () => RedriveJournal.layerLocal(mkdtempSync(join(tmpdir(), "journal-")))
}

for (const [name, makeLayer] of Object.entries(layers)) {
  describe(`RedriveJournal ${name}`, () => {
    it.effect("remembers sent dead letters per queue until they are forgotten", () =>
      Effect.gen(function*() {
        const journal = yield* RedriveJournal
        assert.deepStrictEqual(yield* journal.sent("dlq-a", ["m1", "m2"]), new Set())
        yield* journal.markSent("dlq-a", ["m1", "m2"])
        yield* journal.markSent("dlq-a", ["m2"]) // twice is once
        yield* journal.markSent("dlq-a", [])
        assert.deepStrictEqual(yield* journal.sent("dlq-a", ["m1", "m2", "m3"]), new Set(["m1", "m2"]))
        assert.deepStrictEqual(yield* journal.sent("dlq-b", ["m1"]), new Set(), "another queue's ids are its own")
        yield* journal.forget("dlq-a", ["m1"])
        assert.deepStrictEqual(yield* journal.sent("dlq-a", ["m1", "m2"]), new Set(["m2"]))
      }).pipe(Effect.provide(makeLayer())))
  })
}

it.effect("RedriveJournal on SQLite: an entry outlives the process that wrote it", () =>
  Effect.gen(function*() {
    const directory = mkdtempSync(join(tmpdir(), "journal-"))
    const run = <A, E>(f: (journal: RedriveJournal["Service"]) => Effect.Effect<A, E>) =>
      RedriveJournal.use(f).pipe(Effect.provide(RedriveJournal.layerLocal(directory)))
    yield* run((journal) => journal.markSent("dlq", ["m1", "m2"]))
    yield* run((journal) => journal.forget("dlq", ["m2"]))
    assert.deepStrictEqual(yield* run((journal) => journal.sent("dlq", ["m1", "m2"])), new Set(["m1"]))
  }))
