/**
 * The seed's hello-world as a pipeline: `{}` → `{ greeting: "hello" }` → `{ …, name: "world" }` → done.
 */
import { Effect, Layer, Schema } from "effect"
import { definePipeline, done, mutation } from "../domain/Pipeline.ts"

export const Greeting = Schema.Struct({
  /** Optional: tells records apart (FIFO group, transition id); bare ids from the producer land here. */
  id: Schema.optionalKey(Schema.String),
  greeting: Schema.optionalKey(Schema.String),
  name: Schema.optionalKey(Schema.String)
})
export type Greeting = typeof Greeting.Type

export const createGreeting = mutation<Greeting>("createGreeting", (record) =>
  Effect.succeed({ ...record, greeting: "hello" }))

export const createName = mutation<Greeting>("createName", (record) =>
  Effect.succeed({ ...record, name: "world" }))

export const greetingPipeline = definePipeline({
  name: "greeting",
  schema: Greeting,
  recordId: (record) => record.id ?? "",
  router: (record) => {
    if (record.greeting === undefined) return createGreeting
    if (record.name === undefined) return createName
    return done
  },
  initialRecord: (id) => ({ id }),
  layer: Layer.empty
})
