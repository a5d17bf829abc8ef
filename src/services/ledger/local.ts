/**
 * The transition ledger of the embedded backends: a `ledger` table in the local queue's own SQLite
 * file, so one folder holds a pipeline's whole state. A batch of claims is one `BEGIN IMMEDIATE`
 * transaction, atomic across the processes that share the file.
 */
import { Clock, Duration, Effect } from "effect"
import { inTransaction, isBusy, openDatabase } from "../SqliteFile.ts"
import { CLAIM_TTL, type Claim, type ClaimResult, LedgerError, TransitionLedger } from "../TransitionLedger.ts"

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

const ledgerError = (operation: string, cause: unknown): LedgerError =>
  new LedgerError({ operation, message: cause instanceof Error ? cause.message : String(cause), retryable: isBusy(cause), cause })

/** The ledger in `<directory>/queue.sqlite`, beside the local queue; closed with the scope. */
export const make = (directory: string) =>
  Effect.gen(function*() {
    const db = yield* openDatabase(directory, SCHEMA, 5000, (_file, cause) => ledgerError("OpenDatabase", cause))
    const statements = {
      holder: db.prepare(`SELECT message_id, expires_at FROM ledger WHERE trace_id = ? AND step = ?`),
      take: db.prepare(
        `INSERT OR REPLACE INTO ledger (trace_id, step, message_id, claimed_at, expires_at) VALUES (?, ?, ?, ?, ?)`
      ),
      release: db.prepare(`DELETE FROM ledger WHERE trace_id = ? AND step = ? AND message_id = ?`)
    }

    const transaction = <A>(operation: string, body: () => A) =>
      Effect.try({ try: () => inTransaction(db, body), catch: (cause) => ledgerError(operation, cause) })

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
