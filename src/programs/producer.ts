/**
 * The producer: turns ids and JSON records into initial state records and sends them.
 *
 * Every input is validated against the pipeline's schema before anything is sent; one bad input
 * stops the whole lot unless invalid inputs are to be skipped.
 */
import { Effect, Schema } from "effect"
import type { AnyPipeline } from "../domain/Pipeline.ts"
import { Attribute, fifoFields, initialTransition, toAttributes } from "../domain/transition.ts"
import { isFifo, type OutgoingMessage } from "../domain/messages.ts"
import { sendAll } from "./sendAll.ts"

/** One input as the user gave it: where it came from (for messages) and its text. */
export interface ProducerInput {
  readonly source: string
  readonly text: string
  /** A line of JSON Lines: JSON is required (a record, or a quoted id). */
  readonly jsonLine?: boolean | undefined
}

export interface InvalidInput {
  readonly source: string
  readonly reason: string
}

export interface ParsedInputs {
  readonly messages: ReadonlyArray<OutgoingMessage>
  readonly invalid: ReadonlyArray<InvalidInput>
}

/** Lines of JSON Lines text as inputs, numbered from 1; blank lines are skipped. */
export const linesOf = (text: string, name: string): ReadonlyArray<ProducerInput> =>
  text.split(/\r?\n/).flatMap((line, index) => line.trim() === "" ? [] : [{ source: `${name} line ${index + 1}`, text: line, jsonLine: true }])

/**
 * A JSON object is a record; anything else is a bare id, made into the pipeline's initial record.
 * A line of a JSON Lines file or stdin must be JSON: a record, or a quoted id. An empty id is refused.
 */
export const parseInputs = (pipeline: AnyPipeline, queueUrl: string, inputs: ReadonlyArray<ProducerInput>): ParsedInputs => {
  const decode = Schema.decodeUnknownResult(pipeline.schema)
  const encode = Schema.encodeUnknownSync(pipeline.schema)
  const messages: Array<OutgoingMessage> = []
  const invalid: Array<InvalidInput> = []
  for (const input of inputs) {
    const text = input.text.trim()
    let candidate: unknown
    if (text.startsWith("{") || input.jsonLine === true) {
      let json: unknown
      try {
        json = JSON.parse(text)
      } catch (error) {
        invalid.push({ source: input.source, reason: `not JSON: ${(error as Error).message}` })
        continue
      }
      candidate = typeof json === "string" ? pipeline.initialRecord(json) : json
      if (typeof json === "string" && json.trim() === "") {
        invalid.push({ source: input.source, reason: "an empty id" })
        continue
      }
    } else if (text === "") {
      invalid.push({ source: input.source, reason: "an empty id" })
      continue
    } else {
      candidate = pipeline.initialRecord(text)
    }
    const decoded = decode(candidate, { errors: "all" })
    if (decoded._tag === "Failure") {
      invalid.push({ source: input.source, reason: decoded.failure.message })
      continue
    }
    const encoded = encode(decoded.success)
    const recordId: string = pipeline.recordId(decoded.success)
    const transition = initialTransition(recordId, encoded)
    messages.push({
      id: `i${messages.length}`,
      body: JSON.stringify(encoded),
      // the record id too, by which the transition ledger finds the chain (`trace ID`)
      attributes: { ...toAttributes(transition), ...(recordId === "" ? {} : { [Attribute.recordId]: recordId }) },
      ...(isFifo(queueUrl) ? fifoFields(recordId, transition) : {})
    })
  }
  return { messages, invalid }
}

export interface ProduceResult {
  readonly sent: number
  readonly failed: ReadonlyArray<{ readonly body: string; readonly reason: string }>
}

/** Sends initial records, 10 a request, resending entries that failed for a retryable reason. */
// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const produce = Effect.fn("produce")(function*(queueUrl: string, messages: ReadonlyArray<OutgoingMessage>) {
  const failures = yield* sendAll(queueUrl, messages)
  const failed = messages.flatMap((message) => {
    const failure = failures.get(message.id)
    return failure === undefined ? [] : [{ body: message.body, reason: `${failure._tag}: ${failure.message}` }]
  })
  return { sent: messages.length - failed.length, failed } satisfies ProduceResult
})
