/**
 * The redrive journal: which dead letters a redrive has already sent back to their source queue
 * but not yet deleted from the dead-letter queue.
 *
 * A redrive by receive → send → delete can be killed between the send and the delete. The dead
 * letter then reappears in the DLQ while its copy is already in the source queue, and a second run
 * would send it again. So a redrive writes each dead letter's id here (durably, before deleting it)
 * once its copy is confirmed sent, and a later run that meets that id again only deletes it. The
 * entry is removed once the delete succeeded.
 *
 * What is left: a kill after SQS (or the local queue) took a send but before its answer was
 * written here, a window of one request, sends that message again on the next run; the engine's
 * transition ledger then runs it once (the copy's place in its chain is already claimed).
 *
 * Layers: a SQLite file in `PIPELINE_DATA_DIR` (whatever the queue is: it guards against a kill
 * of this machine's process), and memory for tests.
 */
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { type Config, Context, Effect, Layer, Schema } from "effect"
import { DataDirConfig } from "./DataDir.ts"

export class JournalError extends Schema.TaggedError<JournalError>()("JournalError", {
  message: Schema.String,
  cause: Schema.Defect()
}) {}

export const JOURNAL_FILE = "redrive.sqlite"

export class RedriveJournal extends Context.Service<RedriveJournal, {
  /** Of these dead-letter message ids, the ones already sent back. */
  sent(deadLetterQueue: string, messageIds: ReadonlyArray<string>): Effect.Effect<ReadonlySet<string>, JournalError>
  /** Records that these dead letters' copies are in their source queue (durable when it returns). */
  markSent(deadLetterQueue: string, messageIds: ReadonlyArray<string>): Effect.Effect<void, JournalError>
  /** Forgets dead letters that were deleted from the dead-letter queue. */
  forget(deadLetterQueue: string, messageIds: ReadonlyArray<string>): Effect.Effect<void, JournalError>
}>()("pipeline/services/RedriveJournal") {
  static readonly layerMemory = Layer.sync(RedriveJournal, () => {
    const entries = new Set<string>()
    const key = (queue: string, id: string) => `${queue}\u0000${id}`
    return RedriveJournal.of({
      sent: (queue, ids) => Effect.sync(() => new Set(ids.filter((id) => entries.has(key(queue, id))))),
      markSent: (queue, ids) => Effect.sync(() => ids.forEach((id) => entries.add(key(queue, id)))),
      forget: (queue, ids) => Effect.sync(() => ids.forEach((id) => entries.delete(key(queue, id))))
    })
  })

  static readonly layerAt = (directory: string): Layer.Layer<RedriveJournal, JournalError> =>
    Layer.effect(
      RedriveJournal,
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
    )

  /** The journal in `PIPELINE_DATA_DIR`. */
  static readonly layer: Layer.Layer<RedriveJournal, JournalError | Config.ConfigError> = Layer.unwrap(
    Effect.map(DataDirConfig, RedriveJournal.layerAt)
  )
}
