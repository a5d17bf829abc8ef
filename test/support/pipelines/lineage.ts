/**
 * A greeting pipeline that records its own lineage, for the fault suite (test/faults).
 *
 * greet → name → finish → done. Every mutation run appends a fresh nonce to the record's `path`,
 * so each successor's body names the run that made it: two runs of one step can never produce the
 * same body, and a body seen twice is one send delivered twice. The step of a record is
 * `path.length`; its lineage is the last nonce (`root` at step 0).
 *
 * With `LINEAGE_LOG_DIR` set, each process appends JSON lines to `<dir>/<pid>.jsonl`, synchronously
 * (a SIGKILL loses nothing written):
 * - `{"k":"see","id","step","from"}` each time the router is asked about a record: the pipeline's
 *   code worked on that lineage at that place (the engine routes only messages that hold their
 *   place when a transition ledger is on);
 * - `{"k":"run","id","step","from","nonce"}` each time a mutation runs.
 */
import { randomUUID } from "node:crypto"
import { appendFileSync } from "node:fs"
import { join } from "node:path"
import { Effect, Layer, Schema } from "effect"
import { definePipeline, done, mutation } from "../../../src/domain/Pipeline.ts"

const Lineage = Schema.Struct({
  id: Schema.String,
  path: Schema.Array(Schema.String),
  greeting: Schema.optionalKey(Schema.String),
  name: Schema.optionalKey(Schema.String),
  finished: Schema.optionalKey(Schema.Boolean)
})
type Lineage = typeof Lineage.Type

const logDir = process.env["LINEAGE_LOG_DIR"]
const logFile = logDir === undefined || logDir === "" ? undefined : join(logDir, `${process.pid}.jsonl`)
const stepMillis = Number(process.env["LINEAGE_STEP_MS"] ?? 0)

export type LineageLine =
  | { readonly k: "see"; readonly id: string; readonly step: number; readonly from: string }
  | { readonly k: "run"; readonly id: string; readonly step: number; readonly from: string; readonly nonce: string }

const write = (line: LineageLine) => {
  if (logFile !== undefined) appendFileSync(logFile, `${JSON.stringify(line)}\n`)
}

/** The nonce of the run that made this record, `root` for a produced one. */
export const lineageOf = (record: { readonly path: ReadonlyArray<string> }): string => record.path.at(-1) ?? "root"

const step = (name: string, change: (record: Lineage) => Lineage) =>
  mutation<Lineage>(name, (record) =>
    Effect.gen(function*() {
      if (stepMillis > 0) yield* Effect.sleep(stepMillis)
      const nonce = randomUUID()
      write({ k: "run", id: record.id, step: record.path.length, from: lineageOf(record), nonce })
      return { ...change(record), path: [...record.path, nonce] }
    }))

const greet = step("greet", (record) => ({ ...record, greeting: "hello" }))
const name = step("name", (record) => ({ ...record, name: "world" }))
const finish = step("finish", (record) => ({ ...record, finished: true }))

/** The step at which a record is done (three mutations). */
export const DONE_STEP = 3

export default definePipeline({
  name: "lineage",
  schema: Lineage,
  recordId: (record) => record.id,
  router: (record) => {
    write({ k: "see", id: record.id, step: record.path.length, from: lineageOf(record) })
    return record.greeting === undefined ? greet : record.name === undefined ? name : record.finished !== true ? finish : done
  },
  initialRecord: (id) => ({ id, path: [] }),
  layer: Layer.empty
})
