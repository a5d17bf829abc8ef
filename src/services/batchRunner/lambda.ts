/**
 * The `BatchRunner` that runs each batch on the deployed Lambda function: a synchronous `Invoke`
 * (RequestResponse) with the SQS event an event source mapping would send, answered as an event
 * source mapping with ReportBatchItemFailures reads it.
 *
 * - `FunctionError` set (Handled or Unhandled), no answer within `timeout`, an answer that is not
 *   JSON, or one that breaks the batch-response contract: the whole batch failed.
 * - Otherwise the failed messages are the `batchItemFailures[].itemIdentifier`s. As for the event
 *   source mapping, `null`, `{}` and an empty or null `batchItemFailures` mean that all succeeded,
 *   and an identifier that is empty or names no message of the batch fails the whole batch.
 * - `outcomes` next to them (what this project's handler returns) says how the messages ended;
 *   a function that does not return it, or counts that do not add up to the batch, leave them unknown.
 *   `figures` says what the steps did (runs and milliseconds a step, dead letters by reason).
 *
 * Region, endpoint and credentials come from the SDK's own conventions (AWS_REGION,
 * AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_LAMBDA, the default credential chain).
 */
import { InvokeCommand, LambdaClient } from "@aws-sdk/client-lambda"
import { Duration, Effect, Option, Result, Schema } from "effect"
import { BatchResponse, toSqsEvent } from "../../domain/sqsEvent.ts"
import { awsErrorMessage } from "../awsSdk.ts"
import { BatchFigures, BatchRunner, BatchRunnerError, OutcomeCounts } from "../BatchRunner.ts"

export interface LambdaRunnerOptions {
  /** How long to wait for one invocation's answer; default 15 min 30 s (Lambda's maximum run time and a margin). */
  readonly timeout?: Duration.Input | undefined
  /** A version or alias of the function. */
  readonly qualifier?: string | undefined
  /** The `eventSourceARN` of the records (the handler does not read it). */
  readonly queueArn?: string | undefined
}

export const DEFAULT_INVOKE_TIMEOUT = Duration.sum(Duration.minutes(15), Duration.seconds(30))

const FunctionErrorPayload = Schema.Struct({
  errorMessage: Schema.optionalKey(Schema.String),
  errorType: Schema.optionalKey(Schema.String)
})

/** The payload as JSON, or none; kept apart from the decode so "not JSON" has its own message. */
const parseJson = Schema.decodeUnknownOption(Schema.fromJsonString(Schema.Unknown))
const decodeFunctionError = Schema.decodeUnknownOption(Schema.fromJsonString(FunctionErrorPayload))
const decodeBatchResponse = Schema.decodeUnknownOption(BatchResponse)
const decodeOutcomes = Schema.decodeUnknownOption(Schema.Struct({ outcomes: OutcomeCounts }))
const decodeFigures = Schema.decodeUnknownOption(Schema.Struct({ figures: BatchFigures }))

/**
 * Counts that can be this batch's: every message ended one way (done, dead-lettered, retried,
 * skipped) or advanced at least one step (several when it ran ahead; a record done after running
 * ahead counts its steps as advanced too).
 */
const addsUp = (outcomes: OutcomeCounts, messages: number) => {
  const ended = outcomes.done + outcomes.deadLettered + outcomes.retried + outcomes.duplicates
  return ended <= messages && outcomes.advanced >= messages - ended
}

const excerpt = (text: string) => (text.length > 200 ? `${text.slice(0, 200)}…` : text)

const functionErrorMessage = (kind: string, text: string): string => {
  const payload = decodeFunctionError(text)
  if (Option.isSome(payload)) {
    const { errorMessage, errorType } = payload.value
    if (errorMessage !== undefined || errorType !== undefined) {
      return `function error (${kind}): ${[errorType, errorMessage].filter((part) => part !== undefined).join(": ")}`
    }
  }
  return `function error (${kind}): ${excerpt(text)}`
}

/** Invokes `functionName`: one client, destroyed with the layer's scope. */
export const make = (functionName: string, options: LambdaRunnerOptions = {}) => Effect.gen(function*() {
  const client = yield* Effect.acquireRelease(
    Effect.sync(() => new LambdaClient({})),
    (client) => Effect.sync(() => client.destroy())
  )
  const timeout = Duration.fromInputUnsafe(options.timeout ?? DEFAULT_INVOKE_TIMEOUT)
  const fail = (message: string, cause: unknown = null) => new BatchRunnerError({ message, cause })

  return BatchRunner.of({
    run: Effect.fn("LambdaRunner.run")(function*(messages) {
      const output = yield* Effect.tryPromise({
        try: (abortSignal) =>
          client.send(
            new InvokeCommand({
              FunctionName: functionName,
              InvocationType: "RequestResponse",
              Payload: JSON.stringify(toSqsEvent(messages, options.queueArn)),
              ...(options.qualifier !== undefined ? { Qualifier: options.qualifier } : {})
            }),
            { abortSignal }
          ),
        catch: (cause) => fail(`invoking ${functionName} failed: ${awsErrorMessage(cause)}`, cause)
      }).pipe(
        Effect.timeoutOrElse({
          duration: timeout,
          orElse: () => Effect.fail(fail(`${functionName} did not answer within ${Duration.format(timeout)}`))
        })
      )
      const text = new TextDecoder().decode(output.Payload ?? new Uint8Array())
      if (output.FunctionError !== undefined && output.FunctionError !== "") {
        return yield* fail(functionErrorMessage(output.FunctionError, text), text)
      }
      const json = parseJson(text)
      if (Option.isNone(json)) return yield* fail(`${functionName} answered with something that is not JSON: ${excerpt(text)}`, text)
      const response = decodeBatchResponse(json.value)
      if (Option.isNone(response)) {
        return yield* fail(`${functionName} answered with no batch response: ${excerpt(text)}`, json.value)
      }
      const ids = new Set(messages.map((message) => message.messageId))
      const failed = new Set<string>()
      for (const item of response.value?.batchItemFailures ?? []) {
        if (!ids.has(item.itemIdentifier)) {
          return yield* fail(
            `${functionName} reported a failure for "${item.itemIdentifier}", which is not a message of the batch`,
            json.value
          )
        }
        failed.add(item.itemIdentifier)
      }
      const outcomes = Option.filterMap(decodeOutcomes(json.value), ({ outcomes }) =>
        addsUp(outcomes, messages.length) ? Result.succeed(outcomes) : Result.failVoid)
      const figures = Option.getOrUndefined(Option.map(decodeFigures(json.value), ({ figures }) => figures))
      return { failed: failed as ReadonlySet<string>, outcomes, figures }
    })
  })
})
