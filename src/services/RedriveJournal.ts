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
 * of this machine's process; `redriveJournal/local.ts`, loaded when the layer is built), and
 * memory for tests.
 */
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
  /** In memory, for unit tests. */
  static readonly layerMemory = Layer.sync(RedriveJournal, () => {
    const entries = new Set<string>()
    const key = (queue: string, id: string) => `${queue}\u0000${id}`
    return RedriveJournal.of({
      sent: (queue, ids) => Effect.sync(() => new Set(ids.filter((id) => entries.has(key(queue, id))))),
      markSent: (queue, ids) => Effect.sync(() => ids.forEach((id) => entries.add(key(queue, id)))),
      forget: (queue, ids) => Effect.sync(() => ids.forEach((id) => entries.delete(key(queue, id))))
    })
  })

  /** A SQLite file, `redrive.sqlite` in `directory` (created if missing), written with synchronous = FULL. */
  static readonly layerLocal = (directory: string): Layer.Layer<RedriveJournal, JournalError> =>
    Layer.effect(
      RedriveJournal,
      Effect.flatMap(Effect.promise(() => import("./redriveJournal/local.ts")), (local) => local.make(directory))
    )

  /** The journal in `PIPELINE_DATA_DIR`. */
  static readonly layer: Layer.Layer<RedriveJournal, JournalError | Config.ConfigError> = Layer.unwrap(
    Effect.map(DataDirConfig, RedriveJournal.layerLocal)
  )
}
