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
})
