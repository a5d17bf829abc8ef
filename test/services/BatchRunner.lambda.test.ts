import { assert, describe, it } from "@effect/vitest"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { Deferred, Effect, Layer, Option, type Scope } from "effect"
import { initialTransition, toAttributes } from "../../src/domain/transition.ts"
import { handleEvent, type HandlerServices } from "../../src/lambda/handler.ts"
import { greetingPipeline } from "../../src/pipelines/greeting.ts"
import { runAgent } from "../../src/programs/agent.ts"
import { BatchRunner, BatchRunnerError } from "../../src/services/BatchRunner.ts"
import { CurrentPipeline } from "../../src/services/CurrentPipeline.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import type { LambdaRunnerOptions } from "../../src/services/batchRunner/lambda.ts"
import { MemoryQueueControl } from "../../src/services/queue/memory.ts"
import type { QueueMessage } from "../../src/domain/messages.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { withEnv } from "../support/aws.ts"
import { ObjectStore } from "../../src/services/ObjectStore.ts"

const FUNCTION = "pipeline-handler"

interface Invocation {
  readonly functionName: string
  readonly invocationType: string | undefined
  readonly event: { readonly Records: ReadonlyArray<{ readonly messageId: string; readonly body: string }> }
}

interface Answer {
  readonly status?: number | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly body: string
}

interface FakeLambda {
  readonly endpoint: string
  readonly invocations: Array<Invocation>
  /** Requests whose connection closed before the answer was written. */
  readonly abandoned: () => number
}

const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/

/**
 * A local endpoint that answers Lambda's Invoke API (POST /2015-03-31/functions/{name}/invocations)
 * with `answer`, and points the SDK at it (AWS_ENDPOINT_URL_LAMBDA, dummy credentials) for the scope.
 */
const fakeLambda = (
  answer: (invocation: Invocation, request: IncomingMessage) => Promise<Answer>
): Effect.Effect<FakeLambda, never, Scope.Scope> =>
  Effect.gen(function*() {
    const invocations: Array<Invocation> = []
    let abandoned = 0
    const respond = async (request: IncomingMessage, response: ServerResponse) => {
      const chunks: Array<Buffer> = []
      for await (const chunk of request) chunks.push(chunk as Buffer)
      const match = INVOKE_PATH.exec(request.url?.split("?")[0] ?? "")
      if (request.method !== "POST" || match === null) {
        response.writeHead(404, { "content-type": "application/json", "x-amzn-errortype": "ResourceNotFoundException" })
        response.end(JSON.stringify({ message: `no such route: ${request.method} ${request.url}` }))
        return
      }
      const header = request.headers["x-amz-invocation-type"]
      const invocation: Invocation = {
        functionName: decodeURIComponent(match[1]!),
        invocationType: Array.isArray(header) ? header[0] : header,
        event: JSON.parse(Buffer.concat(chunks).toString("utf8"))
      }
      invocations.push(invocation)
      const result = await answer(invocation, request)
      // (reading the body to its end destroys `request`; the socket tells whether the client went away)
      if (request.socket.destroyed) {
        abandoned++
        return
      }
      response.writeHead(result.status ?? 200, { "content-type": "application/json", ...result.headers })
      response.end(result.body)
    }
    const server = yield* Effect.acquireRelease(
      Effect.callback<ReturnType<typeof createServer>>((resume) => {
        const server = createServer((request, response) => {
          respond(request, response).catch((error: unknown) => {
            response.writeHead(500, { "content-type": "application/json", "x-amzn-errortype": "ServiceException" })
            response.end(JSON.stringify({ message: String(error) }))
          })
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.callback<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    const endpoint = `http://127.0.0.1:${port}`
    yield* withEnv({
      AWS_ENDPOINT_URL_LAMBDA: endpoint,
      AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: undefined,
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "testing",
      AWS_SECRET_ACCESS_KEY: "testing",
      AWS_SESSION_TOKEN: undefined,
      AWS_PROFILE: undefined
    })
    return { endpoint, invocations, abandoned: () => abandoned }
  })

const json = (value: unknown, headers?: Record<string, string>): Promise<Answer> =>
  Promise.resolve({ body: JSON.stringify(value), headers })

const message = (id: string): QueueMessage => ({
  messageId: id,
  receiptHandle: `rh-${id}`,
  body: JSON.stringify({ id }),
  attributes: { "pipeline.step": "0" },
  receiveCount: 1
})

const batch = ["m1", "m2", "m3"].map(message)

/** Runs `messages` through a lambda runner built after the fake endpoint is in place. */
const runOn = (messages: ReadonlyArray<QueueMessage>, options?: LambdaRunnerOptions) =>
  Effect.gen(function*() {
    const runner = yield* BatchRunner
    return yield* runner.run(messages)
  }).pipe(Effect.provide(BatchRunner.layerLambda(FUNCTION, options)))

/** The error of a batch that must fail as a whole. */
const failureOf = (messages: ReadonlyArray<QueueMessage>, options?: LambdaRunnerOptions) =>
  Effect.flip(runOn(messages, options)).pipe(Effect.tap((error) => Effect.sync(() => assert.instanceOf(error, BatchRunnerError))))

describe("BatchRunner.layerLambda", () => {
  it.live("sends the batch as an SQS event and answers with the reported failures", () =>
    Effect.gen(function*() {
      const lambda = yield* fakeLambda(() => json({ batchItemFailures: [{ itemIdentifier: "m2" }] }))
      const result = yield* runOn(batch)
      assert.deepStrictEqual([...result.failed], ["m2"])
      assert.isTrue(Option.isNone(result.outcomes), "a function that does not count its outcomes leaves them unknown")
      assert.strictEqual(lambda.invocations.length, 1)
      const [invocation] = lambda.invocations
      assert.strictEqual(invocation!.functionName, FUNCTION)
      assert.strictEqual(invocation!.invocationType, "RequestResponse")
      assert.deepStrictEqual(invocation!.event.Records.map((record) => record.messageId), ["m1", "m2", "m3"])
      assert.deepStrictEqual(invocation!.event.Records[0], {
        messageId: "m1",
        receiptHandle: "rh-m1",
        body: JSON.stringify({ id: "m1" }),
        attributes: { ApproximateReceiveCount: "1" },
        messageAttributes: { "pipeline.step": { stringValue: "0", dataType: "String" } },
        eventSource: "aws:sqs",
        eventSourceARN: "arn:aws:sqs:local:000000000000:pipeline"
      } as unknown as Invocation["event"]["Records"][number])
    }))

  it.live("an empty or null answer means every message succeeded, as for an event source mapping", () =>
    Effect.gen(function*() {
      const answers = [{ batchItemFailures: [] }, {}, null, { batchItemFailures: null }]
      let next = 0
      yield* fakeLambda(() => json(answers[next++]))
      for (const _ of answers) assert.strictEqual((yield* runOn(batch)).failed.size, 0)
    }))

  it.live("outcomes and figures next to the failures are read when they add up to the batch, and ignored otherwise", () =>
    Effect.gen(function*() {
      const outcomes = { advanced: 1, done: 1, deadLettered: 0, retried: 1, duplicates: 0 }
      // one message ran ahead three steps, another three steps to done
      const ranAhead = { advanced: 6, done: 1, deadLettered: 0, retried: 1, duplicates: 0 }
      const figures = { steps: { greet: { runs: 2, millis: 1.5 } }, deadLetteredBy: { MalformedBody: 1 } }
      const answers = [
        { batchItemFailures: [{ itemIdentifier: "m3" }], outcomes, figures },
        { batchItemFailures: [], outcomes: ranAhead },
        { batchItemFailures: [], outcomes: { ...outcomes, done: 5 } },
        { batchItemFailures: [], outcomes: { ...outcomes, advanced: 0 }, figures: { steps: { greet: { runs: -1, millis: 0 } }, deadLetteredBy: {} } },
        { batchItemFailures: [], outcomes: { advanced: "3" } }
      ]
      let next = 0
      yield* fakeLambda(() => json(answers[next++]))
      const counted = yield* runOn(batch)
      assert.deepStrictEqual([...counted.failed], ["m3"])
      assert.deepStrictEqual(counted.outcomes, Option.some(outcomes))
      assert.deepStrictEqual(counted.figures, figures)
      assert.deepStrictEqual((yield* runOn(batch)).outcomes, Option.some(ranAhead))
      assert.isTrue(Option.isNone((yield* runOn(batch)).outcomes), "5 done in a batch of 3")
      const short = yield* runOn(batch)
      assert.isTrue(Option.isNone(short.outcomes), "a message neither ended nor advanced")
      assert.isUndefined(short.figures, "not figures")
      assert.isTrue(Option.isNone((yield* runOn(batch)).outcomes), "not counts")
    }))

  it.live("a function error fails the whole batch with the error's message", () =>
    Effect.gen(function*() {
      yield* fakeLambda(() =>
        json({ errorType: "Error", errorMessage: "boom: the handler died", trace: [] }, { "X-Amz-Function-Error": "Unhandled" })
      )
      const error = yield* failureOf(batch)
      assert.include(error.message, "Unhandled")
      assert.include(error.message, "boom: the handler died")
    }))

  it.live("a function that answers too late fails the whole batch, and the request is abandoned", () =>
    Effect.gen(function*() {
      const lambda = yield* fakeLambda((_, request) =>
        new Promise((resolve) => {
          const timer = setTimeout(() => resolve({ body: JSON.stringify({ batchItemFailures: [] }) }), 5_000)
          request.socket.once("close", () => {
            clearTimeout(timer)
            resolve({ body: "" })
          })
        })
      )
      const started = Date.now()
      const error = yield* failureOf(batch, { timeout: "300 millis" })
      assert.include(error.message, "did not answer within")
      assert.isBelow(Date.now() - started, 3_000)
      yield* Effect.sleep("100 millis")
      assert.strictEqual(lambda.abandoned(), 1, "the HTTP request was aborted")
    }))

  it.live("an answer that is not JSON, or names a message not in the batch, fails the whole batch", () =>
    Effect.gen(function*() {
      const answers: Array<Answer> = [
        { body: "<html>oops</html>" },
        { body: JSON.stringify({ batchItemFailures: [{ itemIdentifier: "elsewhere" }] }) },
        { body: JSON.stringify({ batchItemFailures: [{ itemIdentifier: "" }] }) },
        { body: JSON.stringify({ batchItemFailures: [{ id: "m1" }] }) },
        { body: JSON.stringify([1, 2]) }
      ]
      let next = 0
      yield* fakeLambda(() => Promise.resolve(answers[next++]!))
      const messages = []
      for (const _ of answers) messages.push((yield* failureOf(batch)).message)
      assert.include(messages[0], "not JSON")
      assert.include(messages[1], "elsewhere")
      assert.include(messages[2], "which is not a message of the batch")
      assert.include(messages[3], "answered with no batch response")
      assert.include(messages[4], "answered with no batch response")
    }))

  it.live("an API error (no such function) fails the whole batch", () =>
    Effect.gen(function*() {
      yield* fakeLambda(() =>
        Promise.resolve({
          status: 404,
          headers: { "x-amzn-errortype": "ResourceNotFoundException" },
          body: JSON.stringify({ Type: "User", message: `Function not found: ${FUNCTION}` })
        })
      )
      const error = yield* failureOf(batch)
      assert.include(error.message, "ResourceNotFoundException")
    }))
})

describe("agent with the lambda runner", () => {
  const QUEUE = "work"
  const DLQ = "work-dlq"
  const services = Layer.provideMerge(
    CurrentPipeline.layerOf(greetingPipeline),
    Layer.mergeAll(
      MessageQueue.layerMemory({ [QUEUE]: { deadLetterQueueUrl: DLQ, maxReceiveCount: 3, visibilityTimeout: 30 } }),
      ObjectStore.layerMemory,
      EngineSettings.layerWith({ queueUrl: QUEUE })
    )
  )

  it.live("runs greeting records to done through the Invoke API, on the same queue", () =>
    Effect.gen(function*() {
      const count = 30
      const queue = yield* MessageQueue
      const records = Array.from({ length: count }, (_, i) => ({ id: `r${i}` }))
      yield* queue.send(
        QUEUE,
        records.map((record, i) => ({ id: `p${i}`, body: JSON.stringify(record), attributes: toAttributes(initialTransition(record.id, record)) }))
      )
      // the function: the real handler, on this test's queue and settings
      const context = yield* Effect.context<HandlerServices>()
      const reachedDone = new Set<string>()
      const lambda = yield* fakeLambda(async (invocation) => {
        for (const record of invocation.event.Records) {
          const body = JSON.parse(record.body) as { id: string; greeting?: string; name?: string }
          if (body.greeting !== undefined && body.name !== undefined) reachedDone.add(body.id)
        }
        try {
          return { body: JSON.stringify(await Effect.runPromiseWith(context)(handleEvent(invocation.event))) }
        } catch (error) {
          return {
            headers: { "X-Amz-Function-Error": "Unhandled" },
            body: JSON.stringify({ errorType: "Error", errorMessage: String(error) })
          }
        }
      })

      const stats = yield* runAgent({ queueUrl: QUEUE, concurrency: 25, untilEmpty: true, waitSeconds: 20, stop: Deferred.makeUnsafe<void>() }).pipe(
        Effect.provide(BatchRunner.layerLambda(FUNCTION))
      )
      assert.strictEqual(stats.succeeded, count * 3, "two steps and the done pass per record")
      assert.strictEqual(stats.failed, 0)
      assert.strictEqual(stats.advanced, count * 2, "the function's own count of transitions")
      assert.strictEqual(stats.done, count)
      assert.strictEqual(reachedDone.size, count)
      assert.isAbove(lambda.invocations.length, 0)
      assert.isTrue(lambda.invocations.every((invocation) => invocation.event.Records.length <= 10))
      const control = yield* MemoryQueueControl
      assert.deepStrictEqual(control.messages(QUEUE), [], "the agent deleted what the function handled")
      assert.deepStrictEqual(control.messages(DLQ), [])
    }).pipe(Effect.provide(services)))
})
