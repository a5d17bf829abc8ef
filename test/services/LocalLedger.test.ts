import { assert, describe, it, layer } from "@effect/vitest"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Effect } from "effect"
import { DATABASE_FILE } from "../../src/services/queue/local.ts"
import { ledgerCases } from "../support/ledgerCases.ts"
import * as LocalQueue from "../../src/services/queue/local.ts"
import { TransitionLedger } from "../../src/services/TransitionLedger.ts"
import * as LocalLedger from "../../src/services/ledger/local.ts"

const folder = () => mkdtempSync(join(tmpdir(), "ledger-"))

describe("LocalLedger", () => {
  layer(TransitionLedger.layerLocal(folder()))("on SQLite", ledgerCases)

  it.live("lives in the local queue's own file, and two openers (processes) see each other's claims", () =>
    Effect.gen(function*() {
      const directory = folder()
      const queue = yield* LocalQueue.make({ directory })
      yield* queue.send("pipeline", [{ id: "a", body: "{}" }])
      const first = yield* LocalLedger.make(directory)
      const second = yield* LocalLedger.make(directory)
      assert.deepStrictEqual(yield* first.claim([{ traceId: "t", step: 0, messageId: "m1" }]), ["Won"])
      assert.deepStrictEqual(yield* second.claim([{ traceId: "t", step: 0, messageId: "m2" }]), ["Duplicate"])
      assert.deepStrictEqual(yield* second.claim([{ traceId: "t", step: 0, messageId: "m1" }]), ["Redelivery"])
      const db = new DatabaseSync(join(directory, DATABASE_FILE), { readOnly: true })
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all().map((row) => row["name"])
      db.close()
      assert.includeMembers(tables, ["ledger", "messages"])
    }).pipe(Effect.scoped))

  it.live("a file from before the history gets its columns on open, and its claims read as history", () =>
    Effect.gen(function*() {
      const directory = folder()
      const old = new DatabaseSync(join(directory, DATABASE_FILE))
      old.exec(`CREATE TABLE ledger (trace_id TEXT NOT NULL, step INTEGER NOT NULL, message_id TEXT NOT NULL,
        claimed_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (trace_id, step)) WITHOUT ROWID`)
      old.prepare("INSERT INTO ledger VALUES ('t', 0, 'm0', 1000, ?)").run(Date.now() + 60_000)
      old.close()
      const ledger = yield* LocalLedger.make(directory)
      assert.deepStrictEqual(yield* ledger.history("t"), [
        { traceId: "t", step: 0, messageId: "m0", recordId: undefined, mutation: undefined, queue: undefined, claimedAt: 1000, ending: undefined, duplicatesSkipped: 0, earlier: undefined }
      ])
      assert.deepStrictEqual(yield* ledger.claim([{ traceId: "t", step: 0, messageId: "m1" }]), ["Duplicate"])
      assert.deepStrictEqual(yield* ledger.claim([{ traceId: "t", step: 1, messageId: "m1", mutation: "next", recordId: "r" }]), ["Won"])
      assert.deepStrictEqual((yield* ledger.history("r")).map((entry) => entry.step), [0, 1])
    }).pipe(Effect.scoped))
})
