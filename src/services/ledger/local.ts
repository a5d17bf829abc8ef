/**
 * The transition ledger of the embedded backends: a `ledger` table in the local queue's own SQLite
 * file, so one folder holds a pipeline's whole state. A batch of claims (or of endings) is one
 * `BEGIN IMMEDIATE` transaction, atomic across the processes that share the file.
 */
import type { DatabaseSync } from "node:sqlite"
import { Clock, Duration, Effect } from "effect"
import { inTransaction, isBusy, openDatabase } from "../SqliteFile.ts"
import {
  CLAIM_TTL,
  type Claim,
  type ClaimResult,
  type Entry,
  type Finish,
  LedgerError,
  sortEntries,
  TransitionLedger
} from "../TransitionLedger.ts"

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

/** Columns the history added; a file made before them gets them on open. */
const HISTORY_COLUMNS: ReadonlyArray<readonly [string, string]> = [
  ["record_id", "TEXT"],
  ["mutation", "TEXT"],
  ["ending", "TEXT"],
  ["ended_at", "INTEGER"],
  ["reason", "TEXT"],
  ["reason_message", "TEXT"],
  ["stage", "TEXT"],
  ["duplicates_skipped", "INTEGER NOT NULL DEFAULT 0"],
  ["earlier_message_id", "TEXT"],
  ["earlier_at", "INTEGER"],
  ["earlier_reason", "TEXT"],
  ["earlier_reason_message", "TEXT"],
  ["earlier_stage", "TEXT"],
  ["queue", "TEXT"]
]

const addHistoryColumns = (db: DatabaseSync) =>
  inTransaction(db, () => {
    const present = new Set(db.prepare(`SELECT name FROM pragma_table_info('ledger')`).all().map((row) => row["name"]))
    for (const [name, type] of HISTORY_COLUMNS) {
      if (!present.has(name)) db.exec(`ALTER TABLE ledger ADD COLUMN ${name} ${type}`)
    }
    db.exec(`CREATE INDEX IF NOT EXISTS ledger_by_record ON ledger (record_id) WHERE record_id IS NOT NULL`)
  })

const ledgerError = (operation: string, cause: unknown): LedgerError =>
  new LedgerError({ operation, message: cause instanceof Error ? cause.message : String(cause), retryable: isBusy(cause), cause })

interface Row {
  readonly trace_id: string
  readonly step: number
  readonly message_id: string
  readonly record_id: string | null
  readonly mutation: string | null
  readonly queue: string | null
  readonly claimed_at: number
  readonly ending: string | null
  readonly ended_at: number | null
  readonly reason: string | null
  readonly reason_message: string | null
  readonly stage: string | null
  readonly duplicates_skipped: number
  readonly earlier_message_id: string | null
  readonly earlier_at: number | null
  readonly earlier_reason: string | null
  readonly earlier_reason_message: string | null
  readonly earlier_stage: string | null
}

const entryOf = (row: Row): Entry => ({
  traceId: row.trace_id,
  step: row.step,
  messageId: row.message_id,
  recordId: row.record_id ?? undefined,
  mutation: row.mutation ?? undefined,
  queue: row.queue ?? undefined,
  claimedAt: row.claimed_at,
  ending: row.ending === "Done" || row.ending === "DeadLettered"
    ? {
      tag: row.ending,
      at: row.ended_at ?? row.claimed_at,
      reason: row.reason ?? undefined,
      message: row.reason_message ?? undefined,
      stage: row.stage ?? undefined
    }
    : undefined,
  duplicatesSkipped: row.duplicates_skipped,
  earlier: row.earlier_message_id === null ? undefined : {
    messageId: row.earlier_message_id,
    at: row.earlier_at ?? 0,
    reason: row.earlier_reason ?? undefined,
    message: row.earlier_reason_message ?? undefined,
    stage: row.earlier_stage ?? undefined
  }
})

/** The ledger in `<directory>/queue.sqlite`, beside the local queue; closed with the scope. */
export const make = (directory: string) =>
  Effect.gen(function*() {
    const db = yield* openDatabase(directory, SCHEMA, 5000, (_file, cause) => ledgerError("OpenDatabase", cause))
    yield* Effect.try({ try: () => addHistoryColumns(db), catch: (cause) => ledgerError("OpenDatabase", cause) })
    const statements = {
      holder: db.prepare(`SELECT * FROM ledger WHERE trace_id = ? AND step = ?`),
      take: db.prepare(
        `INSERT OR REPLACE INTO ledger (trace_id, step, message_id, claimed_at, expires_at, record_id, mutation, queue,
           earlier_message_id, earlier_at, earlier_reason, earlier_reason_message, earlier_stage)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
      ),
      end: db.prepare(
        `UPDATE ledger SET ending = ?, ended_at = ?, reason = ?, reason_message = ?, stage = ?
         WHERE trace_id = ? AND step = ? AND message_id = ?`
      ),
      duplicate: db.prepare(`UPDATE ledger SET duplicates_skipped = duplicates_skipped + 1 WHERE trace_id = ? AND step = ?`),
      ofTrace: db.prepare(`SELECT * FROM ledger WHERE trace_id = ?`),
      ofRecord: db.prepare(`SELECT * FROM ledger WHERE trace_id IN (SELECT trace_id FROM ledger WHERE record_id = ?)`),
      since: db.prepare(`SELECT * FROM ledger WHERE claimed_at >= ?`)
    }

    const transaction = <A>(operation: string, body: () => A) =>
      Effect.try({ try: () => inTransaction(db, body), catch: (cause) => ledgerError(operation, cause) })
    const read = <A>(operation: string, body: () => A) =>
      Effect.try({ try: body, catch: (cause) => ledgerError(operation, cause) })

    return TransitionLedger.of({
      enabled: true,
      claim: (claims: ReadonlyArray<Claim>) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          claims.length === 0 ? Effect.succeed([]) : transaction("Claim", () =>
            claims.map((claim): ClaimResult => {
              const current = statements.holder.get(claim.traceId, claim.step) as unknown as (Row & { readonly expires_at: number }) | undefined
              const held = current !== undefined && current.expires_at > now && current.ending !== "DeadLettered"
              if (held && current.message_id !== claim.messageId) return "Duplicate"
              // a redrive's message takes a dead letter's place: the place keeps that attempt
              const replaced = current?.ending === "DeadLettered" && current.message_id !== claim.messageId
              // a redelivery keeps the attempt its place already kept
              const earlier = replaced
                ? { ...current, earlier_message_id: current.message_id, earlier_at: current.ended_at, earlier_reason: current.reason, earlier_reason_message: current.reason_message, earlier_stage: current.stage }
                : held
                ? current
                : undefined
              statements.take.run(
                claim.traceId,
                claim.step,
                claim.messageId,
                claim.reachedAt ?? now,
                now + Duration.toMillis(CLAIM_TTL),
                claim.recordId === undefined || claim.recordId === "" ? null : claim.recordId,
                claim.mutation ?? null,
                claim.queue ?? null,
                earlier?.earlier_message_id ?? null,
                earlier?.earlier_at ?? null,
                earlier?.earlier_reason ?? null,
                earlier?.earlier_reason_message ?? null,
                earlier?.earlier_stage ?? null
              )
              return held ? "Redelivery" : "Won"
            }))),
      finish: (finishes: ReadonlyArray<Finish>) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) =>
          finishes.length === 0 ? Effect.void : transaction("Finish", () => {
            for (const { ending, messageId, step, traceId } of finishes) {
              if (ending._tag === "DuplicateSkipped") statements.duplicate.run(traceId, step)
              else {
                const dead = ending._tag === "DeadLettered" ? ending : undefined
                statements.end.run(ending._tag, now, dead?.reason ?? null, dead?.message ?? null, dead?.stage ?? null, traceId, step, messageId)
              }
            }
          })),
      history: (id: string) =>
        read("History", () => {
          const own = statements.ofTrace.all(id) as unknown as ReadonlyArray<Row>
          const rows = own.length > 0 ? own : statements.ofRecord.all(id) as unknown as ReadonlyArray<Row>
          return sortEntries(rows.map(entryOf))
        }),
      entries: (since: number) => read("Entries", () => (statements.since.all(since) as unknown as ReadonlyArray<Row>).map(entryOf))
    })
  })
