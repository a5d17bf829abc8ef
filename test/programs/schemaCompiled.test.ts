/**
 * The engine has Effect compile its record schema (`compileRecordSchema`). The compiled parsers
 * must answer as the interpreter does: the same records, with their keys in the same order (the
 * order a successor's body is written in), and the same error messages, default and with all
 * errors, decoding bodies and encoding what mutations return. The interpreter's answers come from a
 * child process that never compiles; the inputs are valid records, near misses and junk.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { deserialize, serialize } from "node:v8"
import type { Schema } from "effect"
import fc from "fast-check"
import { afterAll, assert, describe, it } from "vitest"
import { compileRecordSchema } from "../../src/programs/engine.ts"
import * as schemas from "./schemaCompiled.schemas.ts"

const folder = mkdtempSync(join(tmpdir(), "schema-compiled-"))
afterAll(() => rmSync(folder, { recursive: true, force: true }))

type Name = "Greeting" | "ThumbnailRecord" | "Rich"

/** The interpreter's answers, from a process that imports the schemas and never compiles them. */
const interpreted = (name: Name, inputs: ReadonlyArray<unknown>): Array<Array<schemas.Answer>> => {
  const inputFile = join(folder, `${name}.in`)
  const outputFile = join(folder, `${name}.out`)
  writeFileSync(inputFile, serialize(inputs))
  const module = pathToFileURL(join(import.meta.dirname, "schemaCompiled.schemas.ts")).href
  const code = `import { readFileSync, writeFileSync } from "node:fs"
    import { deserialize, serialize } from "node:v8"
    import * as schemas from ${JSON.stringify(module)}
    const inputs = deserialize(readFileSync(${JSON.stringify(inputFile)}))
    writeFileSync(${JSON.stringify(outputFile)}, serialize(schemas.answers(schemas[${JSON.stringify(name)}], inputs)))`
  execFileSync(process.execPath, ["--input-type=module", "-e", code], { stdio: ["ignore", "inherit", "inherit"] })
  return deserialize(readFileSync(outputFile)) as Array<Array<schemas.Answer>>
}

/** Runs `f` counting the functions made from source text meanwhile. */
const functionsMade = <A>(f: () => A): { readonly result: A; readonly count: number } => {
  const original = globalThis.Function
  let count = 0
  globalThis.Function = new Proxy(original, {
    apply: (target, self, args) => {
      count++
      return Reflect.apply(target, self, args)
    },
    construct: (target, args) => {
      count++
      return Reflect.construct(target, args)
    }
  })
  try {
    return { result: f(), count }
  } finally {
    globalThis.Function = original
  }
}

/** Values near a record's shape: its keys (and others) holding anything JSON or a mutation could hold. */
const nearMiss = (keys: ReadonlyArray<string>) =>
  fc.dictionary(
    fc.oneof(fc.constantFrom(...keys), fc.string({ maxLength: 8 })),
    fc.oneof(
      fc.string({ maxLength: 12 }),
      fc.boolean(),
      fc.double(),
      fc.integer(),
      fc.constant(null),
      fc.constant(undefined),
      fc.jsonValue({ maxDepth: 2 })
    ),
    { maxKeys: 6 }
  )
const junk = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined), fc.constant([]), fc.constant(null))

const cases: ReadonlyArray<{ readonly name: Name; readonly valid: fc.Arbitrary<unknown>; readonly keys: ReadonlyArray<string> }> = [
  {
    name: "Greeting",
    valid: fc.record({ id: fc.string(), greeting: fc.string(), name: fc.string() }, { requiredKeys: [] }),
    keys: ["id", "greeting", "name"]
  },
  {
    name: "ThumbnailRecord",
    valid: fc.record({
      stock_no: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
      has_raw: fc.boolean(),
      size_100: fc.boolean(),
      size_200: fc.boolean()
    }, { requiredKeys: ["stock_no"] }),
    keys: ["stock_no", "has_raw", "size_100", "size_200", "size_0", "size_012", "size_123456"]
  },
  {
    name: "Rich",
    // the encoded side, as a body holds it; encoding it is a near miss (count is a string)
    valid: fc.record({
      id: fc.string(),
      count: fc.integer().map(String),
      kind: fc.constantFrom("a", "b"),
      tags: fc.array(fc.string(), { maxLength: 3 }),
      nested: fc.record({ at: fc.string(), ok: fc.boolean() }, { requiredKeys: ["at"] }),
      either: fc.oneof(fc.string(), fc.integer({ min: 0, max: 9 }))
    }, { requiredKeys: ["id", "count"] }),
    keys: ["id", "count", "kind", "tags", "nested", "either"]
  }
]

describe("the engine's compiled record schemas answer as the interpreter does", () => {
  for (const { keys, name, valid } of cases) {
    it(`${name}: the same records, key order and errors`, () => {
      const inputs = [
        ...fc.sample(valid, { numRuns: 300, seed: 14 }),
        ...fc.sample(nearMiss(keys), { numRuns: 300, seed: 15 }),
        ...fc.sample(junk, { numRuns: 50, seed: 16 })
      ]
      const expected = interpreted(name, inputs)
      // Effect compiles with `new Function`: counted, so that a compiler that fell back to the
      // interpreter (or was never asked) cannot pass as one that answers the same
      const made = functionsMade(() => {
        compileRecordSchema(schemas[name] as Schema.Top)
        return schemas.answers(schemas[name], inputs)
      })
      const actual = made.result
      assert.isAbove(made.count, 0, "nothing was compiled")
      // the samples reach both sides of the schema
      const decoded = expected.filter(([answer]) => "value" in answer!).length
      assert.isAtLeast(decoded, 300)
      assert.isAtLeast(expected.length - decoded, 150)
      for (const [index, input] of inputs.entries()) {
        assert.deepStrictEqual(actual[index], expected[index], `input ${index}: ${JSON.stringify(input)}`)
      }
    })
  }
})
