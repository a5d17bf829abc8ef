/**
 * The example pipelines' state records survive the trip through a message body: encode, JSON,
 * decode gives back the same record, for any valid record.
 */
import { Schema } from "effect"
import fc from "fast-check"
import { assert, describe, it } from "vitest"
import { Greeting } from "../../src/pipelines/greeting.ts"
import { ThumbnailRecord } from "../../src/pipelines/thumbnails/record.ts"

const throughBody = <A>(schema: Schema.Codec<A, unknown>) => {
  const encode = Schema.encodeSync(schema)
  const decode = Schema.decodeUnknownSync(schema)
  return {
    direct: (record: A) => decode(encode(record)),
    viaJson: (record: A) => decode(JSON.parse(JSON.stringify(encode(record))))
  }
}

const greeting = fc.record({ id: fc.string(), greeting: fc.string(), name: fc.string() }, { requiredKeys: [] })

const stockNo = fc.string({
  unit: fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"),
  minLength: 1,
  maxLength: 64
})
const sizeFlags = fc.dictionary(fc.integer({ min: 1, max: 99_999 }).map((n) => `size_${n}`), fc.boolean(), { maxKeys: 5 })
const thumbnailRecord = fc.record(
  { stock_no: stockNo, has_raw: fc.boolean(), flags: sizeFlags },
  { requiredKeys: ["stock_no", "flags"] }
).map(({ flags, ...rest }): ThumbnailRecord => ({ ...flags, ...rest }))

describe("record schemas round-trip", () => {
  it("greeting: decode(encode(x)) is x, also through JSON", () => {
    const { direct, viaJson } = throughBody(Greeting)
    fc.assert(fc.property(greeting, (record) => {
      assert.deepStrictEqual(direct(record), record)
      assert.deepStrictEqual(viaJson(record), record)
    }))
  })

  it("thumbnails: decode(encode(x)) is x, also through JSON", () => {
    const { direct, viaJson } = throughBody(ThumbnailRecord)
    fc.assert(fc.property(thumbnailRecord, (record) => {
      assert.deepStrictEqual(direct(record), record)
      assert.deepStrictEqual(viaJson(record), record)
    }))
  })

  it("thumbnails: keys that are not flags are dropped, a stock number outside the safe alphabet is refused", () => {
    const decode = Schema.decodeUnknownSync(ThumbnailRecord)
    assert.deepStrictEqual(decode({ stock_no: "A1", note: "x", size_0: true, size_012: true, size_100: false }), {
      stock_no: "A1",
      size_100: false
    })
    fc.assert(fc.property(stockNo, fc.constantFrom("/", ".", " ", "é", "\u0000"), (valid, bad) => {
      assert.throws(() => decode({ stock_no: `${valid}${bad}` }), /stock_no must be/)
    }))
    assert.throws(() => decode({ stock_no: "x".repeat(65) }), /stock_no must be/)
  })
})
