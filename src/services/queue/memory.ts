/**
 * An in-memory `MessageQueue` for unit tests. It keeps what makes the engine's tests mean something:
 * visibility timeouts (on Effect's Clock, so TestClock drives them), receive counts, fresh receipt
 * handles per receive, batches of at most 10, a redrive target, and injectable failures.
 */
import { Clock, Context, Duration, Effect, Option, Schedule } from "effect"
import { type BatchResult, chunks, type EntryFailure, isFifo, type OutgoingMessage, type QueueMessage, type ReceiptEntry, type ReceiveOptions } from "../../domain/messages.ts"
import { MessageQueue, QueueError } from "../MessageQueue.ts"

export interface StoredMessage {
  readonly messageId: string
  readonly body: string
  readonly attributes: Readonly<Record<string, string>>
  readonly groupId: string | undefined
  readonly deduplicationId: string | undefined
  receiveCount: number
  visibleAt: number
  receiptHandle: string | undefined
}

export interface MemoryQueueOptions {
  readonly deadLetterQueueUrl?: string | undefined
  readonly maxReceiveCount?: number | undefined
  readonly visibilityTimeout?: number | undefined
}

interface QueueState {
  readonly options: MemoryQueueOptions
  messages: Array<StoredMessage>
}

export type Operation = "send" | "receive" | "delete" | "changeVisibility" | "attributes"

/** Test hooks: return a failure to inject it, undefined to let the call through. */
export interface Faults {
  request?: ((operation: Operation, queueUrl: string) => QueueError | undefined) | undefined
  entry?: ((operation: Operation, queueUrl: string, message: OutgoingMessage) => EntryFailure | undefined) | undefined
}

/** Seeds, inspects and breaks the memory queue from a test. */
export class MemoryQueueControl extends Context.Service<MemoryQueueControl, {
  create(queueUrl: string, options?: MemoryQueueOptions): void
  /** Every message of a queue, visible or in flight. */
  messages(queueUrl: string): ReadonlyArray<StoredMessage>
  readonly faults: Faults
  /** Requests made, by operation (a send of 25 messages is 3 requests). */
  readonly requests: Record<Operation, number>
}>()("pipeline/services/MemoryQueueControl") {}

const DEFAULT_VISIBILITY_TIMEOUT = 30

/** A memory queue and its control, sharing one state; `initial` sets up queues with options. */
export const make = (initial: Readonly<Record<string, MemoryQueueOptions>> = {}) => Effect.sync(() => {
  const queues = new Map<string, QueueState>(
    Object.entries(initial).map(([queueUrl, options]) => [queueUrl, { options, messages: [] }])
  )
  const faults: Faults = {}
  const requests: Record<Operation, number> = { send: 0, receive: 0, delete: 0, changeVisibility: 0, attributes: 0 }
  let sequence = 0

  const queueOf = (queueUrl: string): QueueState => {
    let state = queues.get(queueUrl)
    if (state === undefined) {
      state = { options: {}, messages: [] }
      queues.set(queueUrl, state)
    }
    return state
  }

  const request = (operation: Operation, queueUrl: string) =>
    Effect.suspend(() => {
      requests[operation]++
      const failure = faults.request?.(operation, queueUrl)
      return failure === undefined ? Effect.void : Effect.fail(failure)
    })

  const control = MemoryQueueControl.of({
    create: (queueUrl, options = {}) => {
      queues.set(queueUrl, { options, messages: queueOf(queueUrl).messages })
    },
    messages: (queueUrl) => [...queueOf(queueUrl).messages],
    faults,
    requests
  })

  // plain code in one step, not a generator a request: the agent and thumbnails benchmarks run the
  // engine over this queue (bench:engine gives it the peers' stand-in instead)
  const send = (queueUrl: string, messages: ReadonlyArray<OutgoingMessage>) =>
    Effect.clockWith((clock) => {
      const successful: Array<string> = []
      const failed: Array<EntryFailure> = []
      const fifo = isFifo(queueUrl)
      for (const chunk of chunks(messages)) {
        requests.send++
        const requestFailure = faults.request?.("send", queueUrl)
        if (requestFailure !== undefined) return Effect.fail(requestFailure)
        const now = clock.currentTimeMillisUnsafe()
        const state = queueOf(queueUrl)
        for (const message of chunk) {
          const failure = faults.entry?.("send", queueUrl, message) ??
            (fifo && message.groupId === undefined
              ? { id: message.id, code: "MissingParameter", message: "MessageGroupId is required", senderFault: true }
              : undefined)
          if (failure !== undefined) {
            failed.push(failure)
            continue
          }
          const duplicate = fifo && message.deduplicationId !== undefined &&
            state.messages.some((stored) => stored.deduplicationId === message.deduplicationId)
          if (!duplicate) {
            state.messages.push({
              messageId: `m-${++sequence}`,
              body: message.body,
              attributes: message.attributes ?? {},
              groupId: message.groupId,
              deduplicationId: message.deduplicationId,
              receiveCount: 0,
              visibleAt: now + (message.delaySeconds ?? 0) * 1000,
              receiptHandle: undefined
            })
          }
          successful.push(message.id)
        }
      }
      return Effect.succeed({ successful, failed } satisfies BatchResult)
    })

  const receive = (queueUrl: string, options: ReceiveOptions = {}) =>
    request("receive", queueUrl).pipe(
      Effect.andThen(
        receiveNow(queueUrl, options).pipe(
          // a long poll, coarsely: one request that looks again every 10 ms until the wait is over
          Effect.repeat({
            while: (received) => received.length === 0,
            schedule: Schedule.spaced("10 millis").pipe(Schedule.upTo({ duration: Duration.seconds(options.waitSeconds ?? 0) }))
          })
        )
      )
    )

  const receiveNow = (queueUrl: string, options: ReceiveOptions) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const state = queueOf(queueUrl)
      const visibility = options.visibilityTimeout ?? state.options.visibilityTimeout ?? DEFAULT_VISIBILITY_TIMEOUT
      const received: Array<QueueMessage> = []
      for (const message of [...state.messages]) {
        if (received.length >= Math.min(options.maxMessages ?? 10, 10)) break
        if (message.visibleAt > now) continue
        const maxReceiveCount = state.options.maxReceiveCount
        if (state.options.deadLetterQueueUrl !== undefined && maxReceiveCount !== undefined &&
          message.receiveCount >= maxReceiveCount) {
          // SQS's redrive: moved on the receive that would exceed maxReceiveCount
          state.messages = state.messages.filter((m) => m !== message)
          queueOf(state.options.deadLetterQueueUrl).messages.push({ ...message, receiptHandle: undefined, visibleAt: now })
          continue
        }
        message.receiveCount++
        message.visibleAt = now + visibility * 1000
        message.receiptHandle = `rh-${++sequence}`
        received.push({
          messageId: message.messageId,
          receiptHandle: message.receiptHandle,
          body: message.body,
          attributes: message.attributes,
          receiveCount: message.receiveCount
        })
      }
      return received
    })

  const byReceipt = (
    operation: Operation,
    queueUrl: string,
    entries: ReadonlyArray<ReceiptEntry>,
    apply: (state: QueueState, message: StoredMessage, now: number) => void
  ) =>
    Effect.gen(function*() {
      const successful: Array<string> = []
      const failed: Array<EntryFailure> = []
      for (const chunk of chunks(entries)) {
        yield* request(operation, queueUrl)
        const now = yield* Clock.currentTimeMillis
        const state = queueOf(queueUrl)
        for (const entry of chunk) {
          const message = state.messages.find((m) => m.receiptHandle === entry.receiptHandle)
          if (message === undefined) {
            failed.push({ id: entry.id, code: "ReceiptHandleIsInvalid", message: "unknown receipt handle", senderFault: true })
          } else {
            apply(state, message, now)
            successful.push(entry.id)
          }
        }
      }
      return { successful, failed } satisfies BatchResult
    })

  const queue = MessageQueue.of({
    send,
    receive,
    delete: (queueUrl, entries) =>
      byReceipt("delete", queueUrl, entries, (state, message) => {
        state.messages = state.messages.filter((m) => m !== message)
      }),
    changeVisibility: (queueUrl, entries, seconds) =>
      byReceipt("changeVisibility", queueUrl, entries, (_state, message, now) => {
        message.visibleAt = now + seconds * 1000
      }),
    attributes: (queueUrl) =>
      Effect.gen(function*() {
        yield* request("attributes", queueUrl)
        const now = yield* Clock.currentTimeMillis
        const state = queueOf(queueUrl)
        const inFlight = state.messages.filter((m) => m.visibleAt > now && m.receiptHandle !== undefined).length
        const delayed = state.messages.filter((m) => m.visibleAt > now && m.receiptHandle === undefined).length
        return {
          visibilityTimeout: state.options.visibilityTimeout ?? DEFAULT_VISIBILITY_TIMEOUT,
          approximateVisible: state.messages.length - inFlight - delayed,
          approximateInFlight: inFlight,
          approximateDelayed: delayed,
          fifo: isFifo(queueUrl),
          deadLetterQueueUrl: Option.fromUndefinedOr(state.options.deadLetterQueueUrl),
          maxReceiveCount: state.options.deadLetterQueueUrl === undefined
            ? Option.none()
            : Option.fromUndefinedOr(state.options.maxReceiveCount)
        }
      })
  })
  return { queue, control }
})

/** A request-level failure to inject through `faults.request`. */
export const queueFailure = (operation: string, queueUrl: string, retryable: boolean) =>
  new QueueError({ operation, queueUrl, message: retryable ? "injected: throttled" : "injected: denied", retryable, cause: null })
