/**
 * The embedded queue: SQS semantics on one SQLite file (`node:sqlite`), so a producer and any
 * number of agents on one machine share queues with no AWS account.
 *
 * - Queue "URLs" are names (`pipeline`, `pipeline.fifo`); a queue exists once something uses it.
 * - Every queue that is not itself a dead-letter queue redrives to `deadLetterQueueName(name)`
 *   (`pipeline` -> `pipeline-dlq`, `jobs.fifo` -> `jobs-dlq.fifo`) once a message would be
 *   received more than `maxReceiveCount` times.
 * - Several processes may open the same file: WAL, a busy timeout, and every write in a
 *   `BEGIN IMMEDIATE` transaction, so select-and-mark in `receive` is atomic across processes.
 * - Times come from Effect's `Clock` (wall clock unless a test provides another one).
 */
import { createHash, randomUUID } from "node:crypto"
import { join, resolve } from "node:path"
import { Clock, Effect, Option, type Scope } from "effect"
import { type BatchResult, type EntryFailure, isFifo, MAX_BATCH, type OutgoingMessage, type QueueAttributes, type QueueMessage, type ReceiptEntry, type ReceiveOptions } from "../../domain/messages.ts"
import { MessageQueue, QueueError } from "../MessageQueue.ts"
import { DATABASE_FILE, inTransaction, isBusy, openDatabase } from "../SqliteFile.ts"

export { DATABASE_FILE }

export interface LocalQueueOptions {
  /** Folder holding the database file; created if missing. */
  readonly directory: string
  /** Seconds a received message stays invisible unless `receive` overrides it; default 30. */
  readonly visibilityTimeout?: number | undefined
  /** Receives allowed before a message moves to the dead-letter queue; default 5. */
  readonly maxReceiveCount?: number | undefined
  /** How long to wait for another process's lock before failing (retryable); default 5000 ms. */
  readonly busyTimeoutMs?: number | undefined
  /** Long-poll interval; default 50 ms. */
  readonly pollIntervalMs?: number | undefined
}

export const DEFAULT_VISIBILITY_TIMEOUT = 30
export const DEFAULT_MAX_RECEIVE_COUNT = 5
/** FIFO deduplication window, as in SQS. */
export const DEDUP_WINDOW_MS = 5 * 60 * 1000
/** SQS's limit for one message: body plus attribute names and values. */
export const MAX_MESSAGE_BYTES = 1024 * 1024

const QUEUE_NAME = /^[A-Za-z0-9_-]{1,80}(\.fifo)?$/
const ENTRY_ID = /^[A-Za-z0-9_-]{1,80}$/
// the characters SQS accepts in a message body
const INVALID_BODY_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u

export const isDeadLetterQueue = (name: string): boolean => name.endsWith("-dlq") || name.endsWith("-dlq.fifo")

/** The queue a message is moved to after too many receives; FIFO queues keep the `.fifo` suffix. */
export const deadLetterQueueName = (name: string): string =>
  isFifo(name) ? `${name.slice(0, -".fifo".length)}-dlq.fifo` : `${name}-dlq`

const SCHEMA = `
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY,
  queue TEXT NOT NULL,
  message_id TEXT NOT NULL,
  body TEXT NOT NULL,
  attributes TEXT NOT NULL,
  group_id TEXT,
  sent_at INTEGER NOT NULL,
  visible_at INTEGER NOT NULL,
  receive_count INTEGER NOT NULL DEFAULT 0,
  receipt_handle TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (queue, visible_at);
CREATE TABLE IF NOT EXISTS fifo_dedup (
  queue TEXT NOT NULL,
  dedup_id TEXT NOT NULL,
  message_id TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (queue, dedup_id)
) WITHOUT ROWID;
`

interface MessageRow {
  readonly seq: number
  readonly message_id: string
  readonly body: string
  readonly attributes: string
  readonly receive_count: number
}

interface CountsRow {
  readonly visible: number
  readonly in_flight: number
  readonly delayed: number
  readonly oldest_sent_at: number | null
}

const queueError = (operation: string, queueUrl: string, cause: unknown): QueueError => {
  return new QueueError({
    operation,
    queueUrl,
    message: cause instanceof Error ? cause.message : String(cause),
    retryable: isBusy(cause),
    cause
  })
}

const invalid = (operation: string, queueUrl: string, message: string): QueueError =>
  new QueueError({ operation, queueUrl, message, retryable: false, cause: null })

const isIntIn = (value: number, min: number, max: number) => Number.isInteger(value) && value >= min && value <= max

const failure = (id: string, code: string, message: string): EntryFailure => ({ id, code, message, senderFault: true })

const byteLength = (message: OutgoingMessage): number => {
  let bytes = Buffer.byteLength(message.body)
  for (const [name, value] of Object.entries(message.attributes ?? {})) {
    bytes += Buffer.byteLength(name) + Buffer.byteLength(value)
  }
  return bytes
}

/** Opens (creating if needed) the queue database in `options.directory`; closed with the scope. */
export const make = (
  options: LocalQueueOptions
): Effect.Effect<MessageQueue["Service"], QueueError, Scope.Scope> =>
  Effect.gen(function*() {
    const directory = resolve(options.directory)
    const file = join(directory, DATABASE_FILE)
    const defaultVisibility = options.visibilityTimeout ?? DEFAULT_VISIBILITY_TIMEOUT
    const maxReceiveCount = options.maxReceiveCount ?? DEFAULT_MAX_RECEIVE_COUNT
    const pollIntervalMs = options.pollIntervalMs ?? 50
    if (!isIntIn(defaultVisibility, 0, 43_200)) {
      return yield* invalid("CreateQueue", file, `visibilityTimeout must be an integer 0..43200, got ${defaultVisibility}`)
    }
    if (!isIntIn(maxReceiveCount, 1, 1000)) {
      return yield* invalid("CreateQueue", file, `maxReceiveCount must be an integer 1..1000, got ${maxReceiveCount}`)
    }

    const db = yield* openDatabase(directory, SCHEMA, options.busyTimeoutMs ?? 5000, (file, cause) => queueError("OpenDatabase", file, cause))

    const statements = {
      insert: db.prepare(
        `INSERT INTO messages (queue, message_id, body, attributes, group_id, sent_at, visible_at, receive_count)
         VALUES (?, ?, ?, ?, ?, ?, ?, 0)`
      ),
      anyVisible: db.prepare(`SELECT 1 FROM messages WHERE queue = ? AND visible_at <= ? LIMIT 1`),
      nextStandard: db.prepare(
        `SELECT seq, message_id, body, attributes, receive_count FROM messages
         WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, seq LIMIT ?`
      ),
      // FIFO: send order, and nothing from a group that has a message in flight
      nextFifo: db.prepare(
        `SELECT seq, message_id, body, attributes, receive_count FROM messages AS m
         WHERE m.queue = ?1 AND m.visible_at <= ?2 AND NOT EXISTS (
           SELECT 1 FROM messages AS f WHERE f.queue = ?1 AND f.group_id = m.group_id AND f.visible_at > ?2)
         ORDER BY m.seq LIMIT ?3`
      ),
      markReceived: db.prepare(
        `UPDATE messages SET receipt_handle = ?, visible_at = ?, receive_count = receive_count + 1 WHERE seq = ?`
      ),
      // the queue's own redrive, as SQS's, but never without a reason: the error.* attributes the engine sets
      redrive: db.prepare(
        `INSERT INTO messages (queue, message_id, body, attributes, group_id, sent_at, visible_at, receive_count)
         SELECT ?1, message_id, body, json_set(attributes,
             '$."error.tag"', 'MaxReceiveCountExceeded',
             '$."error.message"', 'received ' || receive_count || ' times without being handled (maxReceiveCount ' || CAST(?4 AS INTEGER) || ')',
             '$."error.step"', 'receive',
             '$."error.receive_count"', CAST(receive_count AS TEXT),
             '$."error.source_queue"', queue),
           group_id, sent_at, ?2, receive_count
         FROM messages WHERE seq = ?3`
      ),
      deleteSeq: db.prepare(`DELETE FROM messages WHERE seq = ?`),
      deleteByHandle: db.prepare(`DELETE FROM messages WHERE queue = ? AND receipt_handle = ?`),
      setVisibility: db.prepare(
        `UPDATE messages SET visible_at = ? WHERE queue = ? AND receipt_handle = ? AND visible_at > ?`
      ),
      findHandle: db.prepare(`SELECT 1 FROM messages WHERE queue = ? AND receipt_handle = ?`),
      counts: db.prepare(
        `SELECT ifnull(sum(visible_at <= ?1), 0) AS visible,
                ifnull(sum(visible_at > ?1 AND receipt_handle IS NOT NULL), 0) AS in_flight,
                ifnull(sum(visible_at > ?1 AND receipt_handle IS NULL), 0) AS delayed,
                min(sent_at) AS oldest_sent_at
         FROM messages WHERE queue = ?2`
      ),
      expireDedup: db.prepare(`DELETE FROM fifo_dedup WHERE queue = ? AND expires_at <= ?`),
      findDedup: db.prepare(`SELECT 1 FROM fifo_dedup WHERE queue = ? AND dedup_id = ?`),
      insertDedup: db.prepare(`INSERT INTO fifo_dedup (queue, dedup_id, message_id, expires_at) VALUES (?, ?, ?, ?)`)
    }

    const transaction = <A>(body: () => A): A => inTransaction(db, body)

    /** Runs synchronous database work, turning anything thrown into a `QueueError`. */
    const attempt = <A>(operation: string, queueUrl: string, body: () => A): Effect.Effect<A, QueueError> =>
      Effect.try({ try: body, catch: (cause) => queueError(operation, queueUrl, cause) })

    const checkName = (operation: string, queueUrl: string): Effect.Effect<void, QueueError> =>
      QUEUE_NAME.test(queueUrl)
        ? Effect.void
        : Effect.fail(invalid(
          operation,
          queueUrl,
          `The local queue takes queue names (1-80 of [A-Za-z0-9_-], optional .fifo suffix), not "${queueUrl}"`
        ))

    const checkEntryIds = (operation: string, queueUrl: string, ids: ReadonlyArray<string>) => {
      const bad = ids.find((id) => !ENTRY_ID.test(id))
      if (bad !== undefined) {
        return Effect.fail(invalid(operation, queueUrl, `InvalidBatchEntryId: "${bad}" (1-80 of [A-Za-z0-9_-])`))
      }
      if (new Set(ids).size !== ids.length) {
        return Effect.fail(invalid(operation, queueUrl, "BatchEntryIdsNotDistinct: entry ids must be unique per call"))
      }
      return Effect.void
    }

    const validateOutgoing = (queueUrl: string, message: OutgoingMessage): EntryFailure | undefined => {
      const fifo = isFifo(queueUrl)
      const delay = message.delaySeconds ?? 0
      if (message.body.length === 0) return failure(message.id, "InvalidParameterValue", "The message body is empty")
      if (INVALID_BODY_CHAR.test(message.body)) {
        return failure(message.id, "InvalidMessageContents", "The message body contains characters SQS does not accept")
      }
      if (byteLength(message) > MAX_MESSAGE_BYTES) {
        return failure(message.id, "InvalidParameterValue", `The message is longer than ${MAX_MESSAGE_BYTES} bytes`)
      }
      if (Object.keys(message.attributes ?? {}).length > 10) {
        return failure(message.id, "InvalidParameterValue", "A message has at most 10 attributes")
      }
      if (!isIntIn(delay, 0, 900)) {
        return failure(message.id, "InvalidParameterValue", `delaySeconds must be an integer 0..900, got ${delay}`)
      }
      if (fifo && delay > 0) {
        return failure(message.id, "InvalidParameterValue", "FIFO queues take no per-message delaySeconds")
      }
      if (fifo && (message.groupId === undefined || message.groupId === "")) {
        return failure(message.id, "MissingParameter", "A FIFO queue needs a groupId on every message")
      }
      if (!fifo && message.deduplicationId !== undefined) {
        return failure(message.id, "InvalidParameterValue", "deduplicationId is only valid on FIFO queues")
      }
      return undefined
    }

    const send = Effect.fn("LocalQueue.send")(function*(queueUrl: string, messages: ReadonlyArray<OutgoingMessage>) {
      yield* checkName("SendMessage", queueUrl)
      yield* checkEntryIds("SendMessage", queueUrl, messages.map((message) => message.id))
      const now = yield* Clock.currentTimeMillis
      const fifo = isFifo(queueUrl)
      return yield* attempt("SendMessage", queueUrl, (): BatchResult => {
        const successful: Array<string> = []
        const failed: Array<EntryFailure> = []
        const accepted = messages.filter((message) => {
          const problem = validateOutgoing(queueUrl, message)
          if (problem !== undefined) failed.push(problem)
          return problem === undefined
        })
        if (accepted.length === 0) return { successful, failed }
        transaction(() => {
          if (fifo) statements.expireDedup.run(queueUrl, now)
          for (const message of accepted) {
            const messageId = randomUUID()
            if (fifo) {
              // without an explicit id, deduplicate on the body (SQS's ContentBasedDeduplication)
              const dedupId = message.deduplicationId ?? createHash("sha256").update(message.body).digest("hex")
              if (statements.findDedup.get(queueUrl, dedupId) !== undefined) {
                // SQS accepts a duplicate and does not deliver it again
                successful.push(message.id)
                continue
              }
              statements.insertDedup.run(queueUrl, dedupId, messageId, now + DEDUP_WINDOW_MS)
            }
            statements.insert.run(
              queueUrl,
              messageId,
              message.body,
              JSON.stringify(message.attributes ?? {}),
              message.groupId ?? null,
              now,
              now + (message.delaySeconds ?? 0) * 1000
            )
            successful.push(message.id)
          }
        })
        return { successful, failed }
      })
    })

    /** One attempt at receiving: select visible messages and mark them in flight, atomically. */
    const receiveNow = (queueUrl: string, maxMessages: number, visibilitySeconds: number, now: number) => {
      // cheap read first, so idle long polls do not take the write lock
      if (statements.anyVisible.get(queueUrl, now) === undefined) return []
      const next = isFifo(queueUrl) ? statements.nextFifo : statements.nextStandard
      const redriveTo = isDeadLetterQueue(queueUrl) ? undefined : deadLetterQueueName(queueUrl)
      return transaction(() => {
        const received: Array<QueueMessage> = []
        while (received.length < maxMessages) {
          const rows = next.all(queueUrl, now, maxMessages - received.length) as unknown as Array<MessageRow>
          if (rows.length === 0) break
          let redriven = false
          for (const row of rows) {
            if (redriveTo !== undefined && row.receive_count + 1 > maxReceiveCount) {
              statements.redrive.run(redriveTo, now, row.seq, maxReceiveCount)
              statements.deleteSeq.run(row.seq)
              redriven = true
              continue
            }
            const receiptHandle = randomUUID()
            statements.markReceived.run(receiptHandle, now + visibilitySeconds * 1000, row.seq)
            received.push({
              messageId: row.message_id,
              receiptHandle,
              body: row.body,
              attributes: JSON.parse(row.attributes) as Record<string, string>,
              receiveCount: row.receive_count + 1
            })
          }
          // a short page without redrives means nothing else is visible
          if (!redriven) break
        }
        return received
      })
    }

    const receive = Effect.fn("LocalQueue.receive")(function*(queueUrl: string, options?: ReceiveOptions) {
      yield* checkName("ReceiveMessage", queueUrl)
      const maxMessages = options?.maxMessages ?? MAX_BATCH
      const waitSeconds = options?.waitSeconds ?? 0
      const visibilitySeconds = options?.visibilityTimeout ?? defaultVisibility
      if (!isIntIn(maxMessages, 1, MAX_BATCH)) {
        return yield* invalid("ReceiveMessage", queueUrl, `maxMessages must be an integer 1..10, got ${maxMessages}`)
      }
      if (!isIntIn(waitSeconds, 0, 20)) {
        return yield* invalid("ReceiveMessage", queueUrl, `waitSeconds must be an integer 0..20, got ${waitSeconds}`)
      }
      if (!isIntIn(visibilitySeconds, 0, 43_200)) {
        return yield* invalid(
          "ReceiveMessage",
          queueUrl,
          `visibilityTimeout must be an integer 0..43200, got ${visibilitySeconds}`
        )
      }
      const deadline = (yield* Clock.currentTimeMillis) + waitSeconds * 1000
      while (true) {
        const now = yield* Clock.currentTimeMillis
        const received = yield* attempt(
          "ReceiveMessage",
          queueUrl,
          () => receiveNow(queueUrl, maxMessages, visibilitySeconds, now)
        )
        if (received.length > 0 || now >= deadline) return received
        yield* Effect.sleep(Math.min(pollIntervalMs, deadline - now))
      }
    })

    const invalidHandle = (id: string) =>
      failure(
        id,
        "ReceiptHandleIsInvalid",
        "The receipt handle is unknown, its message was deleted, or the message was received again since"
      )

    const delete_ = Effect.fn("LocalQueue.delete")(function*(queueUrl: string, entries: ReadonlyArray<ReceiptEntry>) {
      yield* checkName("DeleteMessage", queueUrl)
      yield* checkEntryIds("DeleteMessage", queueUrl, entries.map((entry) => entry.id))
      if (entries.length === 0) return { successful: [], failed: [] }
      return yield* attempt("DeleteMessage", queueUrl, (): BatchResult =>
        transaction(() => {
          const successful: Array<string> = []
          const failed: Array<EntryFailure> = []
          for (const entry of entries) {
            if (statements.deleteByHandle.run(queueUrl, entry.receiptHandle).changes > 0) successful.push(entry.id)
            else failed.push(invalidHandle(entry.id))
          }
          return { successful, failed }
        }))
    })

    const changeVisibility = Effect.fn("LocalQueue.changeVisibility")(
      function*(queueUrl: string, entries: ReadonlyArray<ReceiptEntry>, seconds: number) {
        yield* checkName("ChangeMessageVisibility", queueUrl)
        yield* checkEntryIds("ChangeMessageVisibility", queueUrl, entries.map((entry) => entry.id))
        if (!isIntIn(seconds, 0, 43_200)) {
          return yield* invalid(
            "ChangeMessageVisibility",
            queueUrl,
            `The visibility timeout must be an integer 0..43200, got ${seconds}`
          )
        }
        if (entries.length === 0) return { successful: [], failed: [] }
        const now = yield* Clock.currentTimeMillis
        return yield* attempt("ChangeMessageVisibility", queueUrl, (): BatchResult =>
          transaction(() => {
            const successful: Array<string> = []
            const failed: Array<EntryFailure> = []
            for (const entry of entries) {
              const updated = statements.setVisibility.run(now + seconds * 1000, queueUrl, entry.receiptHandle, now)
              if (updated.changes > 0) successful.push(entry.id)
              else if (statements.findHandle.get(queueUrl, entry.receiptHandle) !== undefined) {
                failed.push(failure(entry.id, "MessageNotInflight", "The message's visibility timeout has already expired"))
              } else failed.push(invalidHandle(entry.id))
            }
            return { successful, failed }
          }))
      }
    )

    const attributes = Effect.fn("LocalQueue.attributes")(function*(queueUrl: string) {
      yield* checkName("GetQueueAttributes", queueUrl)
      const now = yield* Clock.currentTimeMillis
      const counts = yield* attempt(
        "GetQueueAttributes",
        queueUrl,
        () => statements.counts.get(now, queueUrl) as unknown as CountsRow
      )
      return {
        visibilityTimeout: defaultVisibility,
        approximateVisible: counts.visible,
        approximateInFlight: counts.in_flight,
        approximateDelayed: counts.delayed,
        fifo: isFifo(queueUrl),
        deadLetterQueueUrl: isDeadLetterQueue(queueUrl) ? Option.none() : Option.some(deadLetterQueueName(queueUrl)),
        maxReceiveCount: isDeadLetterQueue(queueUrl) ? Option.none() : Option.some(maxReceiveCount),
        oldestAgeSeconds: counts.oldest_sent_at === null ? undefined : Math.max(0, Math.floor((now - counts.oldest_sent_at) / 1000))
      } satisfies QueueAttributes
    })

    return MessageQueue.of({ send, receive, delete: delete_, changeVisibility, attributes })
  })
