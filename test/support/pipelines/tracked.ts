/**
 * A greeting pipeline for process-level tests: each step may be slowed down (TRACKED_STEP_MS), and
 * every mutation run leaves an object in the bucket, so a test can count runs and finished records.
 */
import { randomUUID } from "node:crypto"
import { Effect, Layer, Schema } from "effect"
import { definePipeline, done, mutation } from "../../../src/domain/Pipeline.ts"
import { ObjectStore, type ObjectStoreError } from "../../../src/services/ObjectStore.ts"

const Tracked = Schema.Struct({
  id: Schema.String,
  greeting: Schema.optionalKey(Schema.String),
  name: Schema.optionalKey(Schema.String),
  finished: Schema.optionalKey(Schema.Boolean)
})
type Tracked = typeof Tracked.Type

const stepMillis = Number(process.env["TRACKED_STEP_MS"] ?? 0)
/** Slow only this step, if set. */
const slowStep = process.env["TRACKED_SLOW_STEP"]

const tracked = (name: string, change: (record: Tracked) => Tracked) =>
  mutation<Tracked, ObjectStoreError, ObjectStore>(name, (record) =>
    Effect.gen(function*() {
      const store = yield* ObjectStore
      if (slowStep === undefined || slowStep === name) yield* Effect.sleep(stepMillis)
      yield* store.put(`runs/${name}/${record.id}/${randomUUID()}`, new Uint8Array(), "text/plain")
      const next = change(record)
      if (next.finished === true) yield* store.put(`finished/${record.id}`, new Uint8Array(), "text/plain")
      return next
    }))

const greet = tracked("greet", (record) => ({ ...record, greeting: "hello" }))
const name = tracked("name", (record) => ({ ...record, name: "world" }))
const finish = tracked("finish", (record) => ({ ...record, finished: true }))

export default definePipeline({
  name: "tracked",
  schema: Tracked,
  recordId: (record) => record.id,
  router: (record) =>
    record.greeting === undefined ? greet : record.name === undefined ? name : record.finished !== true ? finish : done,
  initialRecord: (id) => ({ id }),
  layer: Layer.empty
})
