/**
 * For schemaCompiled.test.ts: the record schemas compared, and every way the engine asks one (decode
 * a body, encode a mutation's result; first error or all), answered the same in either process.
 */
import { Exit, Schema } from "effect"

export { Greeting } from "../../src/pipelines/greeting.ts"
export { ThumbnailRecord } from "../../src/pipelines/thumbnails/record.ts"

/** What an author might write beyond the examples: a transformation, literals, arrays, nesting, a union. */
export const Rich = Schema.Struct({
  id: Schema.String,
  count: Schema.NumberFromString,
  kind: Schema.optionalKey(Schema.Literals(["a", "b"])),
  tags: Schema.optionalKey(Schema.Array(Schema.String)),
  nested: Schema.optionalKey(Schema.Struct({ at: Schema.String, ok: Schema.optionalKey(Schema.Boolean) })),
  either: Schema.optionalKey(Schema.Union([Schema.String, Schema.Int]))
})

export type Answer = { readonly value: unknown; readonly text: string } | { readonly error: string }

const answer = (exit: Exit.Exit<unknown, Schema.SchemaError>): Answer => {
  if (Exit.isSuccess(exit)) return { value: exit.value, text: JSON.stringify(exit.value) ?? "undefined" }
  const reason = exit.cause.reasons[0]
  return { error: reason !== undefined && reason._tag === "Fail" ? reason.error.message : String(exit.cause) }
}

export const answers = (schema: Schema.Top, inputs: ReadonlyArray<unknown>): Array<Array<Answer>> => {
  const decode = Schema.decodeUnknownExit(schema as Schema.Codec<unknown, unknown>)
  const encode = Schema.encodeUnknownExit(schema as Schema.Codec<unknown, unknown>)
  return inputs.map((input) => [
    answer(decode(input)),
    answer(decode(input, { errors: "all" })),
    answer(encode(input)),
    answer(encode(input, { errors: "all" }))
  ])
}
