/**
 * The laws the transition metadata rests on: canonical JSON does not depend on key order, and the
 * transition id names exactly one (record id, state) pair. A FIFO chain relies on the second: if
 * two different states of one record hashed alike, SQS would drop the second as a duplicate.
 */
import { createHash } from "node:crypto"
import fc from "fast-check"
import { assert, describe, it } from "vitest"
import { canonicalJson, transitionId } from "../../src/domain/transition.ts"

/** The same value with every object's keys in another order, all the way down. */
const shuffled = (value: unknown, order: (keys: Array<string>) => Array<string>): unknown => {
  if (Array.isArray(value)) return value.map((item) => shuffled(item, order))
  if (value !== null && typeof value === "object") {
    const source = value as Record<string, unknown>
    const target: Record<string, unknown> = {}
    for (const key of order(Object.keys(source))) {
      Object.defineProperty(target, key, { value: shuffled(source[key], order), enumerable: true, writable: true, configurable: true })
    }
    return target
  }
  return value
}
const reversed = (keys: Array<string>) => [...keys].reverse()

/** JSON states as records are: objects of strings, numbers, booleans, null, arrays and objects. */
const state = fc.jsonValue({ maxDepth: 3 })
const keyOrder = fc.func(fc.integer()).map((rank) => (keys: Array<string>) =>
  keys.map((key) => [key, rank(key)] as const).sort((a, b) => a[1] - b[1]).map(([key]) => key))

describe("canonicalJson", () => {
  it("sorts object keys at every depth", () => {
    assert.strictEqual(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } }), `{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}`)
  })

  it("gives the same text whatever the key order", () => {
    fc.assert(fc.property(state, keyOrder, (value, order) => {
      assert.strictEqual(canonicalJson(shuffled(value, order)), canonicalJson(value))
      assert.strictEqual(canonicalJson(shuffled(value, reversed)), canonicalJson(value))
    }))
  })

  it("round-trips through JSON.parse to an equal value", () => {
    fc.assert(fc.property(state, (value) => {
      // JSON itself turns -0 into 0; compare with what plain JSON keeps
      assert.deepStrictEqual(JSON.parse(canonicalJson(value)), JSON.parse(JSON.stringify(value)))
    }))
  })

  it("is the text of its definition, JSON.stringify with every object rebuilt with its keys sorted, for any value", () => {
    // the ids of transitions already sent rest on this text: a faster writer must not change it
    const definition = (value: unknown) =>
      JSON.stringify(value, (_key, inner: unknown) =>
        inner !== null && typeof inner === "object" && !Array.isArray(inner)
          ? Object.fromEntries(Object.keys(inner).sort().map((key) => [key, (inner as Record<string, unknown>)[key]]))
          : inner)
    const anything = fc.anything({
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withObjectString: true,
      withSparseArray: true,
      withTypedArray: true,
      withUnicodeString: true
    })
    fc.assert(fc.property(fc.oneof(state, anything), (value) => {
      assert.strictEqual(canonicalJson(value), definition(value))
    }))
    const ownProto: unknown = JSON.parse(`{"c":1,"__proto__":{"b":1,"a":2}}`)
    for (const value of [{ 10: 1, 9: 2, a: 1 }, { toJSON: () => ({ z: 1, a: 2 }) }, { b: undefined, a: () => 1 }, [undefined, -0, NaN], ownProto]) {
      assert.strictEqual(canonicalJson(value), definition(value))
    }
  })

  it("leaves arrays in their order", () => {
    fc.assert(fc.property(fc.array(fc.jsonValue({ maxDepth: 1 }), { minLength: 2 }), (items) => {
      fc.pre(JSON.stringify(items) !== JSON.stringify([...items].reverse()))
      assert.notStrictEqual(canonicalJson(items), canonicalJson([...items].reverse()))
    }))
  })
})

describe("transitionId", () => {
  it("is the SHA-256 of the record id, a NUL and the canonical JSON, in UTF-8, whatever the characters", () => {
    // ids already sent were made so: three updates of one hash
    fc.assert(fc.property(fc.string({ unit: "binary" }), fc.jsonValue({ maxDepth: 2 }), (recordId, value) => {
      const expected = createHash("sha256").update(recordId).update("\u0000").update(canonicalJson(value)).digest("hex")
      assert.strictEqual(transitionId(recordId, value), expected)
    }))
  })

  it("is a SHA-256 in hex", () => {
    fc.assert(fc.property(fc.string(), state, (recordId, value) => {
      assert.match(transitionId(recordId, value), /^[0-9a-f]{64}$/)
    }))
  })

  it("is the same for the same record id and state, whatever the key order", () => {
    fc.assert(fc.property(fc.string(), state, keyOrder, (recordId, value, order) => {
      assert.strictEqual(transitionId(recordId, shuffled(value, order)), transitionId(recordId, value))
    }))
  })

  it("changes when the state changes", () => {
    fc.assert(fc.property(fc.string(), state, state, (recordId, a, b) => {
      fc.pre(canonicalJson(a) !== canonicalJson(b))
      assert.notStrictEqual(transitionId(recordId, a), transitionId(recordId, b))
    }))
  })

  it("changes when the record id changes", () => {
    fc.assert(fc.property(fc.string(), fc.string(), state, (a, b, value) => {
      fc.pre(a !== b)
      assert.notStrictEqual(transitionId(a, value), transitionId(b, value))
    }))
  })

  it("tells the record id and the state apart where they meet", () => {
    // "1" + 23 and "12" + 3 are the same characters run together
    assert.notStrictEqual(transitionId("1", 23), transitionId("12", 3))
    fc.assert(fc.property(fc.string(), fc.integer({ min: 1, max: 9 }), fc.nat(), (head, digit, rest) => {
      assert.notStrictEqual(transitionId(head, Number(`${digit}${rest}`)), transitionId(`${head}${digit}`, rest))
    }))
  })

  it("the greeting chain's successive states have different ids (a FIFO queue keeps both)", () => {
    const ids = [{ id: "g" }, { id: "g", greeting: "hello" }, { id: "g", greeting: "hello", name: "world" }]
      .map((record) => transitionId("g", record))
    assert.strictEqual(new Set(ids).size, 3)
  })
})
