/**
 * The redrive journal in a SQLite file (`redrive.sqlite` in the data directory); see
 * `../RedriveJournal.ts` for what it is for.
 */
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Effect, type Scope } from "effect"
import { JOURNAL_FILE, JournalError, RedriveJournal } from "../RedriveJournal.ts"

/** Opens (or creates) the journal in `directory`; closed with the scope. */
export const make = (directory: string): Effect.Effect<RedriveJournal["Service"], JournalError, Scope.Scope> =>
  Effect.gen(function*() {
    const file = join(directory, JOURNAL_FILE)
    const db = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          mkdirSync(directory, { recursive: true })
          const db = new DatabaseSync(file, { timeout: 5000 })
          // FULL: a committed entry survives the machine too, not only the process
          db.exec(`PRAGMA synchronous = FULL;
            CREATE TABLE IF NOT EXISTS redriven (
              dlq TEXT NOT NULL, message_id TEXT NOT NULL, sent_at INTEGER NOT NULL,
              PRIMARY KEY (dlq, message_id))`)
          return db
        },
        catch: (cause) => new JournalError({ message: `cannot open the redrive journal ${file}: ${String(cause)}`, cause })
      }),
      (db) => Effect.sync(() => db.isOpen && db.close())
    )
    const select = db.prepare(`SELECT 1 FROM redriven WHERE dlq = ? AND message_id = ?`)
    const insert = db.prepare(`INSERT OR IGNORE INTO redriven (dlq, message_id, sent_at) VALUES (?, ?, ?)`)
    const remove = db.prepare(`DELETE FROM redriven WHERE dlq = ? AND message_id = ?`)
    const write = (ids: ReadonlyArray<string>, row: (id: string) => void) =>
      Effect.try({
        try: () => {
          if (ids.length === 0) return
          db.exec("BEGIN IMMEDIATE")
          try {
            ids.forEach(row)
            db.exec("COMMIT")
          } catch (error) {
            if (db.isTransaction) db.exec("ROLLBACK")
            throw error
          }
        },
        catch: (cause) => new JournalError({ message: `redrive journal ${file}: ${String(cause)}`, cause })
      })
    return RedriveJournal.of({
      sent: (queue, ids) =>
        Effect.try({
          try: () => new Set(ids.filter((id) => select.get(queue, id) !== undefined)),
          catch: (cause) => new JournalError({ message: `redrive journal ${file}: ${String(cause)}`, cause })
        }),
      markSent: (queue, ids) => write(ids, (id) => insert.run(queue, id, Date.now())),
      forget: (queue, ids) => write(ids, (id) => remove.run(queue, id))
    })
  })
