/**
 * The embedded backends' one SQLite file (`<directory>/queue.sqlite`), shared by the local queue and
 * the local transition ledger, and by every process that opens it: WAL, a busy timeout, and writes
 * in `BEGIN IMMEDIATE` transactions.
 */
import { mkdirSync } from "node:fs"
import { join, resolve } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Effect, Schedule, type Scope } from "effect"

export const DATABASE_FILE = "queue.sqlite"

const SQLITE_BUSY = 5
const SQLITE_LOCKED = 6

/** Another process holds the lock: worth trying again. */
export const isBusy = (cause: unknown): boolean => {
  const errcode = typeof cause === "object" && cause !== null ? (cause as { errcode?: unknown }).errcode : undefined
  // extended result codes carry the primary code in the low byte
  const code = typeof errcode === "number" ? errcode & 0xff : undefined
  return code === SQLITE_BUSY || code === SQLITE_LOCKED
}

/** Opens (creating if needed) the file in `directory` and applies `schema`; closed with the scope. */
export const openDatabase = <E extends { readonly retryable: boolean }>(
  directory: string,
  schema: string,
  busyTimeoutMs: number,
  onError: (file: string, cause: unknown) => E
): Effect.Effect<DatabaseSync, E, Scope.Scope> => {
  const folder = resolve(directory)
  const file = join(folder, DATABASE_FILE)
  return Effect.acquireRelease(
    Effect.try({
      try: () => {
        mkdirSync(folder, { recursive: true })
        const db = new DatabaseSync(file, { timeout: busyTimeoutMs })
        try {
          db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
          db.exec(schema)
        } catch (error) {
          db.close()
          throw error
        }
        return db
      },
      catch: (cause) => onError(file, cause)
    }).pipe(
      // two processes creating the file at once can briefly see it locked
      Effect.retry({ while: (error) => error.retryable, schedule: Schedule.spaced("50 millis"), times: 40 })
    ),
    (db) => Effect.sync(() => db.isOpen && db.close())
  )
}

/** Runs `body` in one `BEGIN IMMEDIATE` transaction: atomic across the processes sharing the file. */
export const inTransaction = <A>(db: DatabaseSync, body: () => A): A => {
  db.exec("BEGIN IMMEDIATE")
  try {
    const result = body()
    db.exec("COMMIT")
    return result
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK")
    throw error
  }
}
