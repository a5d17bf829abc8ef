/**
 * Fault suite on the local queue (SQLite): a few hundred three-step records, agents (the real CLI,
 * child processes) killed with SIGKILL at random and restarted until every record is done. No
 * proxy: the faults are the kills.
 *
 * The independent record of what was sent is a trigger the test installs on the queue's
 * `messages` table: every row inserted (a send, or a move to the dead-letter queue) is copied into
 * an audit table, whatever the project's code counts. What the pipeline's code worked on comes
 * from the lineage log (test/support/pipelines/lineage.ts); see harness.ts for the definitions.
 *
 * Environment: `PIPELINE_LEDGER=off` runs without the transition ledger and only reports forks
 * and duplicate runs. `FAULT_RECORDS` (default 200), `FAULT_SEED` (default 11) and
 * `FAULT_AGENTS_MS` (time allowed to the agents, default 40 s) change the run.
 */
import { assert, describe, it } from "@effect/vitest"
import { mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Effect } from "effect"
import { afterAll } from "vitest"
import { DATABASE_FILE } from "../../src/services/queue/local.ts"
import { seededRandom } from "../support/faultProxy.ts"
import {
  analyseLineage,
  analyseSends,
  doneIds,
  ledgerOn,
  PIPELINE,
  readLineage,
  recordIds,
  runAgentsWithKills,
  sentMessage,
  startCli
} from "./harness.ts"
import * as LocalQueue from "../../src/services/queue/local.ts"

const RECORDS = Number(process.env["FAULT_RECORDS"] ?? 200)
const SEED = Number(process.env["FAULT_SEED"] ?? 11)
const AGENTS_MS = Number(process.env["FAULT_AGENTS_MS"] ?? 40_000)

const dirs: Array<string> = []
afterAll(() => {
  if (process.env["FAULT_KEEP"] === undefined) for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/**
 * Creates the queue's database, then a trigger that copies every inserted message row into
 * `audit_sends`, and a fault: each deleted row costs a few milliseconds of work (a slow disk), so
 * a kill lands more often between a successor's send and its parent's delete.
 */
const installAudit = async (dir: string): Promise<DatabaseSync> => {
  await Effect.runPromise(Effect.scoped(LocalQueue.make({ directory: dir })))
  const db = new DatabaseSync(join(dir, DATABASE_FILE), { timeout: 10_000 })
  db.exec(`
    CREATE TABLE audit_sends (seq INTEGER, queue TEXT, message_id TEXT, body TEXT, attributes TEXT);
    CREATE TRIGGER audit_message_insert AFTER INSERT ON messages BEGIN
      INSERT INTO audit_sends VALUES (NEW.seq, NEW.queue, NEW.message_id, NEW.body, NEW.attributes);
    END;
    CREATE TRIGGER slow_message_delete BEFORE DELETE ON messages BEGIN
      SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) SELECT x FROM c);
    END;
  `)
  return db
}

describe("fault suite on the local queue", () => {
  it(`${RECORDS} records, agents killed at random: 0 lost, 0 forked, nothing sent twice`, { timeout: Math.max(60_000, AGENTS_MS + 20_000) }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "faults-local-"))
    dirs.push(dir)
    const lineageDir = join(dir, "lineage")
    mkdirSync(lineageDir)
    const db = await installAudit(dir)
    const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n
    try {
      const env: Record<string, string> = {
        PIPELINE_DATA_DIR: dir,
        // short, so messages held by a killed agent come back soon; high, so none is dead-lettered
        PIPELINE_VISIBILITY_TIMEOUT: "3",
        PIPELINE_MAX_RECEIVE_COUNT: "100",
        LINEAGE_LOG_DIR: lineageDir,
        ...(ledgerOn ? {} : { PIPELINE_LEDGER: "off" })
      }
      const ids = recordIds(RECORDS)
      const produced = await startCli(["produce", ...PIPELINE, ...ids], env).exit
      assert.strictEqual(produced.code, 0, produced.stderr)
      assert.include(produced.stdout, `sent ${RECORDS} records`)

      const sends = () => count(`SELECT count(*) AS n FROM audit_sends`)
      const queued = () => count(`SELECT count(*) AS n FROM messages WHERE queue = 'lineage'`)
      const chaos = await runAgentsWithKills({
        start: () => startCli(["agent", ...PIPELINE, "--concurrency", "10"], env),
        agents: 2,
        random: seededRandom(SEED + 1),
        sends,
        killEvery: [60, 160],
        lineageDir,
        finished: async () => doneIds(readLineage(lineageDir)).size === RECORDS && queued() === 0,
        timeoutMs: AGENTS_MS,
        status: async () => `${dir}: ${doneIds(readLineage(lineageDir)).size} of ${RECORDS} done, ${queued()} messages in the queue`
      })

      const rows = db.prepare(`SELECT queue, message_id, body, attributes FROM audit_sends ORDER BY seq`).all() as Array<
        { queue: string; message_id: string; body: string; attributes: string }
      >
      const sent = rows.map((row) => sentMessage(row.queue, row.message_id, row.body, JSON.parse(row.attributes) as Record<string, string>))
      const main = analyseSends(sent.filter((message) => message.queue === "lineage"), ids)
      const deadLettered = sent.filter((message) => message.queue !== "lineage").length
      const lineage = analyseLineage(readLineage(lineageDir), ids)
      console.log(`fault suite, local queue, ledger ${ledgerOn ? "on" : "off"}: ${JSON.stringify({
        records: RECORDS,
        seed: SEED,
        ...chaos,
        crashes: chaos.crashes.length,
        lost: lineage.notDone.length,
        deadLettered,
        forkedChains: lineage.forkedChains,
        forkedPlaces: lineage.forkedPlaces,
        mutationRuns: lineage.mutationRuns,
        duplicateRuns: lineage.duplicateRuns,
        accepted: main.accepted,
        copies: main.copies,
        sentTwice: main.resentBodies
      })}`)

      assert.deepStrictEqual(lineage.notDone, [], "every record reached done")
      assert.strictEqual(deadLettered, 0, "nothing dead-lettered")
      assert.deepStrictEqual(main.neverProduced, [], "every record was produced")
      assert.strictEqual(main.recordsWithSeveralTraces, 0, "one chain per record: the producer ran once")
      // a send on the local queue is one transaction whose answer only a dead process misses: a body twice is a resend
      assert.strictEqual(main.resentBodies, 0, "no body inserted twice")
      assert.isAbove(chaos.kills, 0)
      assert.deepStrictEqual(chaos.crashes, [], "no agent exited on its own")
      if (ledgerOn) {
        assert.isAbove(main.copies, 0, "the kills made copies, so the ledger was put to the test")
        assert.strictEqual(lineage.forkedChains, 0, "no chain forked: copies never advanced")
      }
    } finally {
      db.close()
    }
  })
})
