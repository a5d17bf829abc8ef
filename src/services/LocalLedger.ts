/**
 * The transition ledger of the embedded backends: a `ledger` table in the local queue's own SQLite
 * file, so one folder holds a pipeline's whole state. A batch of claims is one `BEGIN IMMEDIATE`
 * transaction, atomic across the processes that share the file.
 */
import { mkdirSync } from "node:fs"
import { join, resolve } from "node:path"
import { DatabaseSync } from "node:sqlite"
import { Clock, Duration, Effect, Layer, Schedule } from "effect"
import { DATABASE_FILE } from "./LocalQueue.ts"
import { CLAIM_TTL, type Claim, type ClaimResult, LedgerError, TransitionLedger } from "./TransitionLedger.ts"

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ledger (
  trace_id TEXT NOT NULL,
  step INTEGER NOT NULL,
  message_id TEXT NOT NULL,
  claimed_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (trace_id, step)
) WITHOUT ROWID;
`

const SQLITE_BUSY = 5
const SQLITE_LOCKED = 6

const ledgerError = (operation: string, cause: unknown): LedgerError => {
  const errcode = typeof cause === "object" && cause !== null ? (cause as { errcode?: unknown }).errcode : undefined
  const code = typeof errcode === "number" ? errcode & 0xff : undefined
  return new LedgerError({
    operation,
    message: cause instanceof Error ? cause.message : String(cause),
    retryable: code === SQLITE_BUSY || code === SQLITE_LOCKED,
    cause
  })
}

export const makeLocalLedger = (directory: string) =>
  Effect.gen(function*() {
    const folder = resolve(directory)
    const db = yield* Effect.acquireRelease(
      Effect.try({
        try: () => {
          mkdirSync(folder, { recursive: true })
          const db = new DatabaseSync(join(folder, DATABASE_FILE), { timeout: 5000 })
          try {
            db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            db.exec(SCHEMA)
          } catch (error) {
            db.close()
            throw error
          }
          return db
        },
        catch: (cause) => ledgerError("OpenDatabase", cause)
      }).pipe(Effect.retry({ while: (error) => error.retryable, schedule: Schedule.spaced("50 millis"), times: 40 })),
      (db) => Effect.sync(() => db.isOpen && db.close())
    )
    const statements = {
      holder: db.prepare(`SELECT message_id, expires_at FROM ledger WHERE trace_id = ? AND step = ?`),
      take: db.prepare(
        `INSERT OR REPLACE INTO ledger (trace_id, step, message_id, claimed_at, expires_at) VALUES (?, ?, ?, ?, ?)`
      ),
      release: db.prepare(`DELETE FROM ledger WHERE trace_id = ? AND step = ? AND message_id = ?`)
    }

    const transaction = <A>(operation: string, body: () => A) =>
      Effect.try({
        try: () => {
          db.exec("BEGIN IMMEDIATE")
          try {
            const result = body()
            db.exec("COMMIT")
            return result
          } catch (error) {
            db.exec("ROLLBACK")
            throw error
          }
        },
        catch: (cause) => ledgerError(operation, cause)
      })

    return TransitionLedger.of({
      enabled: true,
      claim: (claims: ReadonlyArray<Claim>) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          claims.length === 0 ? Effect.succeed([]) : transaction("Claim", () =>
            claims.map((claim): ClaimResult => {
              const current = statements.holder.get(claim.traceId, claim.step) as
                | { readonly message_id: string; readonly expires_at: number }
                | undefined
              if (current !== undefined && current.expires_at > now) {
                return current.message_id === claim.messageId ? "Redelivery" : "Duplicate"
              }
              statements.take.run(claim.traceId, claim.step, claim.messageId, now, now + Duration.toMillis(CLAIM_TTL))
              return "Won"
            }))),
      release: (claims) =>
        claims.length === 0 ? Effect.void : transaction("Release", () => {
          for (const claim of claims) statements.release.run(claim.traceId, claim.step, claim.messageId)
        })
    })
  })

export const LocalLedger = {
  /** The ledger in `<directory>/queue.sqlite`, beside the local queue. */
  layerAt: (directory: string): Layer.Layer<TransitionLedger, LedgerError> => Layer.effect(TransitionLedger, makeLocalLedger(directory))
} as const
