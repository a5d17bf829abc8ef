/**
 * `npm run bench:agent`: queue API requests per state transition and transitions per second, in one
 * run, for the greeting pipeline:
 * - the agent (runAgent + the in-process runner) on SQS, on a moto server this script starts;
 * - a baseline on the same moto server: `sqs-consumer` with a plain handler (parse, route, send the
 *   successor with SendMessage, let sqs-consumer delete);
 * - the agent on the embedded SQLite queue, in a temporary folder.
 *
 * Requests are counted where they are made: the agent's by wrapping the `MessageQueue` service (a send or
 * delete of n entries is ceil(n/10) requests, as SqsQueue makes them), the baseline's by a
 * middleware on its SQS clients. On moto, a counting proxy in front of the server also counts what
 * actually went over the wire, as a check on both.
 *
 * The last rows run the agent while the records arrive one by one (BENCH_TRICKLE_GAP_MS apart)
 * instead of waiting as a backlog, on moto and on the local queue, without and with a batching
 * window (BENCH_BATCH_WINDOW, default "1 second"): without, batches are as full as the arrival
 * rate allows, and so is the request count; with, the agent gathers them for up to the window.
 * Their batch sizes (messages per batch run) are printed after the table.
 *
 * With the transition ledger: on moto its DynamoDB requests are counted on the wire, apart from
 * SQS's ("ledger/trans"); on the local queue it is a table in the same SQLite file.
 *
 * On a backlog the agent has several receives out at once (printed per row). moto's ReceiveMessage
 * takes no lock, so receives out together now and then get the same message (2 of 500 with ten at
 * once on 100 messages): a moto row may count a transition or two above 600. ElasticMQ does not.
 *
 * The latency rows put both consumers on a server far lighter than moto, with the latency a real
 * SQS call has: ElasticMQ (the JVM SQS server, downloaded from Maven Central on first use, see
 * test/support/elasticmq.ts) behind a proxy in a process of its own (bench/latencyProxy.ts) that
 * delays every request by 10–30 ms (BENCH_LATENCY_MS). The agent and sqs-consumer take turns on the
 * same backlog (agent, sqs-consumer, sqs-consumer, agent, ... for BENCH_LATENCY_ROUNDS rounds, so
 * that a drift in the machine's load falls on both), at each concurrency of
 * BENCH_LATENCY_CONCURRENCY, after a warm-up of the server's JIT. Each row prints the CPU share of
 * the server, the proxy and this process, and the server's own answer times as the proxy saw them:
 * they show whether the server was the limit.
 *
 * Options (environment): BENCH_RECORDS (default 200), BENCH_CONCURRENCY (default 40),
 * BENCH_TRICKLE_GAP_MS (default 20), BENCH_BATCH_WINDOW (default "1 second"), BENCH_ONLY=trickle
 * (only the rows where records trickle in), trickle-local (only those on the local queue) or
 * latency (only the rows on ElasticMQ with latency), BENCH_LATENCY_MS (default "10-30"),
 * BENCH_LATENCY_ROUNDS (default 2), BENCH_LATENCY_CONCURRENCY (default "10,40").
 */
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  type Message,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient
} from "@aws-sdk/client-sqs"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer, request as httpRequest, Agent } from "node:http"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import { Deferred, type Duration, Effect, Layer, Option, Schema, type Scope } from "effect"
import { Consumer } from "sqs-consumer"
import { fromAttributes, initialTransition, nextTransition, toAttributes } from "../src/domain/transition.ts"
import { Greeting, greetingPipeline } from "../src/pipelines/greeting.ts"
import { runAgent } from "../src/programs/agent.ts"
import { inProcessRunner } from "../src/programs/inProcessRunner.ts"
import { BatchRunner } from "../src/services/BatchRunner.ts"
import { EngineSettings } from "../src/services/EngineSettings.ts"
import { MAX_BATCH } from "../src/domain/messages.ts"
import { MessageQueue, type QueueError } from "../src/services/MessageQueue.ts"
import { TransitionLedger } from "../src/services/TransitionLedger.ts"
import { createLedgerTable, createQueue, uniqueName } from "../test/support/aws.ts"
import { ELASTICMQ_VERSION, startElasticMq } from "../test/support/elasticmq.ts"
import { startMoto } from "../test/support/moto.ts"
import { cpuSeconds } from "./processCpu.ts"
import { startLatencyProxy } from "./latencyProxy.ts"
import * as LocalQueue from "../src/services/queue/local.ts"
import { ObjectStore } from "../src/services/ObjectStore.ts"

const RECORDS = Number(process.env["BENCH_RECORDS"] ?? 200)
const CONCURRENCY = Number(process.env["BENCH_CONCURRENCY"] ?? 40)
const STEPS_PER_RECORD = 3 // createGreeting, createName, and the pass that finds it done
const TRANSITIONS = RECORDS * STEPS_PER_RECORD
const SCENARIO_TIMEOUT_MS = 60_000
const TRICKLE_GAP_MS = Number(process.env["BENCH_TRICKLE_GAP_MS"] ?? 20)
const BATCH_WINDOW = (process.env["BENCH_BATCH_WINDOW"] ?? "1 second") as Duration.Input
const TRICKLE_ONLY = process.env["BENCH_ONLY"]?.startsWith("trickle") === true
const LOCAL_TRICKLE_ONLY = process.env["BENCH_ONLY"] === "trickle-local"
const LATENCY_ONLY = process.env["BENCH_ONLY"] === "latency"
const LATENCY_MILLIS = (process.env["BENCH_LATENCY_MS"] ?? "10-30").split("-").map(Number) as [number, number]
const LATENCY_ROUNDS = Number(process.env["BENCH_LATENCY_ROUNDS"] ?? 2)
const LATENCY_CONCURRENCY = (process.env["BENCH_LATENCY_CONCURRENCY"] ?? `10,${CONCURRENCY}`).split(",").map(Number)

type Counts = Record<string, number>
const add = (counts: Counts, key: string, n = 1) => {
  counts[key] = (counts[key] ?? 0) + n
}
const total = (counts: Counts) => Object.values(counts).reduce((sum, n) => sum + n, 0)
const clear = (counts: Counts) => {
  for (const key of Object.keys(counts)) delete counts[key]
}

/** What the agent did, call by call, beyond the request counts. */
interface AgentTrace {
  readonly requests: Counts
  /** Messages per receive: index = messages received, value = how many receives. */
  readonly receivedPerCall: Array<number>
  /** Receives that asked for fewer than 10 because fewer slots were free. */
  askedForLess: number
  /** Receives out now, and for each receive how many were out as it went out (itself included): index = that many, value = how many receives. */
  receivesOut: number
  readonly outAtOnce: Array<number>
  readonly entriesPerSend: Array<number>
  readonly entriesPerDelete: Array<number>
  /** Time spent in calls, by operation (ms). */
  readonly millis: Counts
  readonly calls: Counts
  /** Messages per batch run: index = batch size, value = how many batches. */
  readonly batchSizes: Array<number>
}

const newTrace = (): AgentTrace => ({
  requests: {},
  receivedPerCall: [],
  askedForLess: 0,
  receivesOut: 0,
  outAtOnce: [],
  entriesPerSend: [],
  entriesPerDelete: [],
  millis: {},
  calls: {},
  batchSizes: []
})

const resetTrace = (trace: AgentTrace) => {
  clear(trace.requests)
  trace.receivedPerCall.length = 0
  trace.askedForLess = 0
  trace.receivesOut = 0
  trace.outAtOnce.length = 0
  trace.entriesPerSend.length = 0
  trace.entriesPerDelete.length = 0
  clear(trace.millis)
  clear(trace.calls)
  trace.batchSizes.length = 0
}

const requestsFor = (entries: number) => Math.ceil(entries / MAX_BATCH)

/**
 * The `MessageQueue` service below it, counting requests by SQS operation. `attributes` costs a
 * GetQueueUrl more on SQS when the queue has a dead-letter queue (SqsQueue resolves its URL).
 */
const countingQueue = <E>(below: Layer.Layer<MessageQueue, E>, trace: AgentTrace, sqs: boolean) =>
  Layer.effect(
    MessageQueue,
    Effect.gen(function*() {
      const inner = yield* MessageQueue
      const count = (operation: string, n: number) => Effect.sync(() => add(trace.requests, operation, n))
      const timed = <A>(operation: string, effect: Effect.Effect<A, QueueError>) =>
        Effect.suspend(() => {
          const started = performance.now()
          return effect.pipe(Effect.ensuring(Effect.sync(() => {
            add(trace.millis, operation, performance.now() - started)
            add(trace.calls, operation)
          })))
        })
      return MessageQueue.of({
        send: (queueUrl, messages) =>
          count("SendMessageBatch", requestsFor(messages.length)).pipe(
            Effect.tap(() => Effect.sync(() => trace.entriesPerSend.push(messages.length))),
            Effect.andThen(timed("send", inner.send(queueUrl, messages)))
          ),
        receive: (queueUrl, options) =>
          count("ReceiveMessage", 1).pipe(
            Effect.tap(() => Effect.sync(() => (options?.maxMessages ?? MAX_BATCH) < MAX_BATCH && trace.askedForLess++)),
            Effect.tap(() => Effect.sync(() => (trace.outAtOnce[++trace.receivesOut] = (trace.outAtOnce[trace.receivesOut] ?? 0) + 1))),
            Effect.andThen(timed("receive", inner.receive(queueUrl, options)).pipe(Effect.ensuring(Effect.sync(() => trace.receivesOut--)))),
            Effect.tap((messages) => Effect.sync(() => (trace.receivedPerCall[messages.length] = (trace.receivedPerCall[messages.length] ?? 0) + 1)))
          ),
        delete: (queueUrl, entries) =>
          count("DeleteMessageBatch", requestsFor(entries.length)).pipe(
            Effect.tap(() => Effect.sync(() => trace.entriesPerDelete.push(entries.length))),
            Effect.andThen(timed("delete", inner.delete(queueUrl, entries)))
          ),
        changeVisibility: (queueUrl, entries, seconds) =>
          count("ChangeMessageVisibilityBatch", requestsFor(entries.length)).pipe(
            Effect.andThen(inner.changeVisibility(queueUrl, entries, seconds))
          ),
        attributes: (queueUrl) =>
          count("GetQueueAttributes", 1).pipe(
            Effect.andThen(inner.attributes(queueUrl)),
            Effect.tap((attributes) =>
              sqs && Option.isSome(attributes.deadLetterQueueUrl) ? count("GetQueueUrl", 1) : Effect.void
            )
          )
      })
    })
  ).pipe(Layer.provide(below))

/**
 * What is measured around a scenario beyond the caller's own counts: `start` when measuring
 * starts (after seeding), `stop` when it ends, with the requests a proxy saw on the wire since,
 * and, on ElasticMQ, the CPU each process used.
 */
interface Meter {
  readonly start: () => Promise<void>
  readonly stop: () => Promise<{ readonly wire: Counts; readonly cpu?: ServerLoad | undefined }>
}

/** CPU time over wall time (1 = one core busy) of each process, the machine's 1-minute load average, and the server's answer times. */
interface ServerLoad {
  readonly server: number
  readonly proxy: number
  readonly bench: number
  readonly load: number
  /** The server's own time per request (all but receives), ms, as the proxy saw it: median and 90th percentile. */
  readonly serverMedian: number
  readonly server90: number
}

/** A proxy in front of moto that counts requests by `X-Amz-Target` (SQS's JSON protocol). */
const countingProxy = async (upstream: string) => {
  const wire: Counts = {}
  const target = new URL(upstream)
  const agent = new Agent({ keepAlive: true, maxSockets: 256 })
  const server = createServer((request, response) => {
    const operation = String(request.headers["x-amz-target"] ?? "other").replace(/^AmazonSQS\./, "")
    add(wire, operation)
    const forward = httpRequest(
      { host: target.hostname, port: target.port, method: request.method, path: request.url, headers: request.headers, agent },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(response)
      }
    )
    forward.on("error", () => response.destroy())
    response.on("close", () => {
      if (!response.writableFinished) forward.destroy()
    })
    request.pipe(forward)
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const address = server.address()
  const port = typeof address === "object" && address !== null ? address.port : 0
  const meter: Meter = {
    start: async () => clear(wire),
    stop: async () => ({ wire: { ...wire } })
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    meter,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
        agent.destroy()
      })
  }
}

const initialMessages = () =>
  Array.from({ length: RECORDS }, (_, i) => {
    const record = { id: `r${i}` }
    return { id: `i${i}`, body: JSON.stringify(record), attributes: toAttributes(initialTransition(record.id, record)) }
  })

interface Result {
  readonly name: string
  readonly transitions: number
  readonly seconds: number
  readonly requests: Counts
  readonly wire?: Counts | undefined
  readonly trace?: AgentTrace | undefined
  readonly notes?: ReadonlyArray<string> | undefined
  readonly problems: ReadonlyArray<string>
  readonly cpu?: ServerLoad | undefined
  /** DynamoDB requests of the transition ledger, seen on the wire (SQS requests are counted apart). */
  readonly ledgerRequests?: number | undefined
}

// --- the agent -----------------------------------------------------------------------------------
/** Records arriving one at a time, through a queue client of their own (not counted). */
interface Trickle {
  readonly gapMillis: number
  readonly producer: Effect.Effect<MessageQueue["Service"], QueueError, Scope.Scope>
}

const agentScenario = <E, L>(
  name: string,
  queueLayer: Layer.Layer<MessageQueue, E>,
  queueUrl: string,
  sqs: boolean,
  meter?: Meter,
  trickle?: Trickle,
  ledger: Layer.Layer<TransitionLedger, L> = TransitionLedger.layerNone,
  batchWindow: Duration.Input = 0,
  concurrency = CONCURRENCY
) => {
  const trace = newTrace()
  const services = Layer.mergeAll(countingQueue(queueLayer, trace, sqs), ObjectStore.layerMemory, EngineSettings.layerWith({ queueUrl }), ledger)
  return Effect.gen(function*() {
    const queue = yield* MessageQueue
    if (trickle === undefined) {
      const seeded = yield* queue.send(queueUrl, initialMessages())
      if (seeded.failed.length > 0) return yield* Effect.die(new Error(`seeding failed: ${seeded.failed[0]!.message}`))
    } else {
      const producer = yield* trickle.producer
      // one send every gap, whatever each send's latency (moto's can be longer than the gap)
      yield* Effect.forkScoped(Effect.forEach(initialMessages(), (message) =>
        Effect.forkScoped(producer.send(queueUrl, [message])).pipe(Effect.andThen(Effect.sleep(trickle.gapMillis))), { discard: true }))
    }
    resetTrace(trace)
    if (meter !== undefined) yield* Effect.promise(meter.start)

    const inner = yield* BatchRunner
    const counted = BatchRunner.of({
      run: (messages) =>
        Effect.sync(() => (trace.batchSizes[messages.length] = (trace.batchSizes[messages.length] ?? 0) + 1)).pipe(Effect.andThen(inner.run(messages)))
    })
    const allDone = yield* Deferred.make<number>()
    const stop = yield* Deferred.make<void>()
    const started = performance.now()
    const stats = yield* runAgent({
      queueUrl,
      concurrency,
      untilEmpty: false,
      waitSeconds: 20,
      stop,
      batchWindow,
      progressEvery: "5 millis",
      onProgress: (stats) =>
        stats.succeeded + stats.failed >= TRANSITIONS
          ? Deferred.succeed(allDone, performance.now()).pipe(Effect.andThen(Deferred.succeed(stop, undefined)))
          : Effect.void
    }).pipe(Effect.provideService(BatchRunner, counted), Effect.timeout(SCENARIO_TIMEOUT_MS))
    const finished = yield* Deferred.await(allDone)
    const requests = { ...trace.requests }
    const measured = meter === undefined ? undefined : yield* Effect.promise(meter.stop)
    const wire = measured?.wire
    const wireCounts = wire === undefined ? undefined : Object.fromEntries(Object.entries(wire).filter(([op]) => !op.startsWith("DynamoDB")))
    const ledgerRequests = wire === undefined ? undefined : total(Object.fromEntries(Object.entries(wire).filter(([op]) => op.startsWith("DynamoDB"))))

    const problems: Array<string> = []
    if (stats.failed > 0) problems.push(`${stats.failed} messages failed`)
    const left = yield* queue.attributes(queueUrl)
    const remaining = left.approximateVisible + left.approximateInFlight + left.approximateDelayed
    if (remaining > 0) {
      problems.push(
        `${remaining} messages left on the queue (${left.approximateVisible} visible, ${left.approximateInFlight} in flight, ` +
          `${left.approximateDelayed} delayed; the agent received ${stats.received}, handled ${stats.succeeded}, ` +
          `had ${stats.receiveErrors} receive errors)`
      )
    }
    return {
      name,
      transitions: stats.succeeded,
      seconds: (finished - started) / 1000,
      requests,
      wire: wireCounts,
      trace,
      problems,
      ledgerRequests,
      cpu: measured?.cpu
    } satisfies Result
  }).pipe(Effect.provide(Layer.provideMerge(inProcessRunner(greetingPipeline), services)), Effect.scoped)
}

// --- the baseline: sqs-consumer with a plain handler ---------------------------------------------
/** Counts requests (every attempt that goes out) and commands (attempts beyond the first are SDK retries). */
const countRequests = (client: SQSClient, requests: Counts, commands: Counts) => {
  const operation = (name: string | undefined) => name?.replace(/Command$/, "") ?? "other"
  client.middlewareStack.add(
    (next, context) => (args) => {
      add(commands, operation(context.commandName))
      return next(args)
    },
    { step: "initialize", name: "benchCommandCounter" }
  )
  client.middlewareStack.add(
    (next, context) => (args) => {
      add(requests, operation(context.commandName))
      return next(args)
    },
    // after the retry middleware: every attempt is a request
    { step: "deserialize", name: "benchRequestCounter" }
  )
  return client
}

const decodeGreeting = Schema.decodeUnknownSync(Greeting)
const encodeGreeting = Schema.encodeSync(Greeting)

const baselineScenario = async (name: string, queueUrl: string, meter: Meter, concurrency = CONCURRENCY): Promise<Result> => {
  const requests: Counts = {}
  const commands: Counts = {}
  const receiving = countRequests(new SQSClient({ useQueueUrlAsEndpoint: false }), requests, commands)
  const sending = countRequests(new SQSClient({ useQueueUrlAsEndpoint: false }), requests, commands)

  const seen = new Set<string>()
  let duplicates = 0
  const handleMessage = async (message: Message): Promise<Message> => {
    if (seen.has(message.MessageId ?? "")) duplicates++
    seen.add(message.MessageId ?? "")
    const record = decodeGreeting(JSON.parse(message.Body ?? ""))
    const route = greetingPipeline.router(record)
    if (route._tag === "UnknownState") throw new Error(route.message)
    if (route._tag === "Mutation") {
      const next = encodeGreeting(await Effect.runPromise(route.run(record)))
      const attributes: Record<string, string> = {}
      for (const [key, value] of Object.entries(message.MessageAttributes ?? {})) {
        if (value.StringValue !== undefined) attributes[key] = value.StringValue
      }
      const transition = nextTransition(fromAttributes(attributes, message.MessageId ?? ""), next.id ?? "", next)
      await sending.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: JSON.stringify(next),
          MessageAttributes: Object.fromEntries(
            Object.entries(toAttributes(transition)).map(([key, value]): [string, MessageAttributeValue] => [key, { DataType: "String", StringValue: value }])
          )
        })
      )
    }
    return message
  }

  // as many consumers as the agent's concurrency allows batches: each one handles a batch of 10 at a time
  const consumers = Array.from({ length: Math.max(1, Math.round(concurrency / MAX_BATCH)) }, () =>
    Consumer.create({
      queueUrl,
      sqs: receiving,
      batchSize: MAX_BATCH,
      waitTimeSeconds: 20,
      messageAttributeNames: ["All"],
      handleMessage
    }))

  let transitions = 0
  let measuring = true
  const problems: Array<string> = []
  const problem = (error: Error) => {
    if (measuring) problems.push(error.message)
  }
  await meter.start()
  const started = performance.now()
  const finished = await new Promise<number>((resolve) => {
    const timer = setTimeout(() => {
      problems.push(`timed out after ${SCENARIO_TIMEOUT_MS / 1000} s`)
      resolve(performance.now())
    }, SCENARIO_TIMEOUT_MS)
    for (const consumer of consumers) {
      consumer.on("message_processed", () => {
        if (++transitions === TRANSITIONS) {
          clearTimeout(timer)
          resolve(performance.now())
        }
      })
      consumer.on("error", problem)
      consumer.on("processing_error", problem)
      consumer.start()
    }
  })
  measuring = false
  const counted = { ...requests }
  const retries = total(requests) - total(commands)
  const notes = [
    ...(retries > 0 ? [`${retries} SDK retries (attempts beyond the first) are included in its requests`] : []),
    ...(duplicates > 0 ? [`${duplicates} messages were delivered twice (to two consumers at once), and handled twice`] : [])
  ]
  const measured = await meter.stop()
  for (const consumer of consumers) consumer.stop({ abort: true })
  await new Promise((resolve) => setTimeout(resolve, 200))
  receiving.destroy()
  sending.destroy()
  return {
    name,
    transitions,
    seconds: (finished - started) / 1000,
    requests: counted,
    wire: measured.wire,
    cpu: measured.cpu,
    notes,
    problems: [...new Set(problems)]
  }
}

// --- output ----------------------------------------------------------------------------------------
const perTransition = (counts: Counts, transitions: number) => total(counts) / transitions

const mean = (values: ReadonlyArray<number>) => values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length

const table = (results: ReadonlyArray<Result>) => {
  const columns = ["transitions", "seconds", "trans/s", "requests", "req/trans", "wire req", "receive", "send", "delete", "other", "ledger/trans"]
  const widths = [11, 8, 8, 9, 10, 9, 8, 6, 7, 6, 12]
  const line = (name: string, cells: ReadonlyArray<string>) =>
    `${name.padEnd(44)}${cells.map((cell, i) => cell.padStart(widths[i]! + 1)).join("")}`
  const out = [line("", columns)]
  out.push(line("original design (reference)", ["", "", "", "", "3.000", "", "1/msg", "1/msg", "1/msg", "", ""]))
  for (const result of results) {
    const r = result.requests
    const receive = (r["ReceiveMessage"] ?? 0)
    const send = (r["SendMessageBatch"] ?? 0) + (r["SendMessage"] ?? 0)
    const del = (r["DeleteMessageBatch"] ?? 0) + (r["DeleteMessage"] ?? 0)
    out.push(line(result.name, [
      String(result.transitions),
      result.seconds.toFixed(2),
      (result.transitions / result.seconds).toFixed(0),
      String(total(r)),
      perTransition(r, result.transitions).toFixed(3),
      result.wire === undefined ? "-" : String(total(result.wire)),
      String(receive),
      String(send),
      String(del),
      String(total(r) - receive - send - del),
      result.ledgerRequests === undefined ? "-" : (result.ledgerRequests / result.transitions).toFixed(3)
    ]))
  }
  out.push(line("goal", ["", "", "", "", "≤ 0.300", "", "", "", "", "", ""]))
  return out.join("\n")
}

const histogram = (perCall: ReadonlyArray<number>) =>
  perCall.flatMap((count, size) => (count === undefined || count === 0 ? [] : [`${size}:${count}`])).join(" ")

const diagnose = (result: Result) => {
  const trace = result.trace
  if (trace === undefined) return result.notes === undefined || result.notes.length === 0 ? [] : [`${result.name}:`, ...result.notes.map((note) => `  ${note}`)]
  const receives = trace.receivedPerCall.reduce((a, b) => a + (b ?? 0), 0)
  const received = trace.receivedPerCall.reduce((sum, count, size) => sum + (count ?? 0) * size, 0)
  const empty = trace.receivedPerCall[0] ?? 0
  const full = trace.receivedPerCall[MAX_BATCH] ?? 0
  const other = Object.entries(result.requests).filter(([op]) => !["ReceiveMessage", "SendMessageBatch", "DeleteMessageBatch"].includes(op))
  return [
    `${result.name}:`,
    `  receives ${receives} answered + ${(result.requests["ReceiveMessage"] ?? 0) - receives} long poll aborted at the stop (${empty} empty, ${full} full, ${trace.askedForLess} asked for < 10 for want of free slots), ${(received / Math.max(1, receives - empty)).toFixed(1)} messages per non-empty receive`,
    `    messages per receive -> receives: ${histogram(trace.receivedPerCall)}`,
    `    receives out at once (as each went out) -> receives: ${histogram(trace.outAtOnce)}`,
    `  sends ${trace.entriesPerSend.filter((n) => n > 0).length} calls, ${mean(trace.entriesPerSend.filter((n) => n > 0)).toFixed(1)} successors each; deletes ${trace.entriesPerDelete.length} calls, ${mean(trace.entriesPerDelete).toFixed(1)} messages each`,
    `  batches run ${trace.batchSizes.reduce((a, b) => a + (b ?? 0), 0)}, ${(trace.batchSizes.reduce((sum, count, size) => sum + (count ?? 0) * size, 0) / Math.max(1, trace.batchSizes.reduce((a, b) => a + (b ?? 0), 0))).toFixed(1)} messages each; size -> batches: ${histogram(trace.batchSizes)}`,
    `  other requests: ${other.length === 0 ? "none" : other.map(([op, n]) => `${op} ${n}`).join(", ")}`,
    `  mean time per call: ${["receive", "send", "delete"].map((op) => `${op} ${((trace.millis[op] ?? 0) / Math.max(1, trace.calls[op] ?? 0)).toFixed(1)} ms`).join(", ")}`,
    ...(result.notes ?? []).map((note) => `  ${note}`)
  ]
}

// --- the latency rows: ElasticMQ behind a latency proxy ----------------------------------------------
const ownCpuSeconds = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1e6
}

/**
 * Sends, receives and deletes messages straight to the server (ten loops at once) in periods of 2 s
 * until its CPU time per request stops falling (its JIT has compiled the paths), 40 s at most.
 * Returns the last period's server CPU per request (ms) and how long it took (s).
 */
const warmUp = async (endpoint: string, pid: number) => {
  const client = new SQSClient({ endpoint })
  const began = performance.now()
  try {
    const { QueueUrl } = await client.send(new CreateQueueCommand({ QueueName: uniqueName("warm-up") }))
    const attributes = { a: { DataType: "String", StringValue: "x" } }
    let requests = 0
    const loop = async (until: number) => {
      while (performance.now() < until) {
        await client.send(new SendMessageBatchCommand({
          QueueUrl,
          Entries: Array.from({ length: 10 }, (_, i) => ({ Id: `m${i}`, MessageBody: "{}", MessageAttributes: attributes }))
        }))
        const { Messages = [] } = await client.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, MessageAttributeNames: ["All"] }))
        if (Messages.length > 0) {
          await client.send(new DeleteMessageBatchCommand({ QueueUrl, Entries: Messages.map((message, i) => ({ Id: `d${i}`, ReceiptHandle: message.ReceiptHandle! })) }))
        }
        requests += Messages.length > 0 ? 3 : 2
      }
    }
    let previous = Number.POSITIVE_INFINITY
    for (let period = 0; ; period++) {
      const [cpu, count] = [cpuSeconds(pid), requests]
      await Promise.all(Array.from({ length: 10 }, () => loop(performance.now() + 2000)))
      const perRequest = ((cpuSeconds(pid) - cpu) / (requests - count)) * 1000
      if ((period >= 3 && perRequest > previous * 0.9) || period >= 19) return { perRequest, seconds: (performance.now() - began) / 1000 }
      previous = perRequest
    }
  } finally {
    client.destroy()
  }
}

/**
 * The agent and sqs-consumer on ElasticMQ behind the latency proxy, taking turns. Undefined (and
 * a line saying why) when ElasticMQ cannot be installed or started.
 */
const latencyRows = async (): Promise<Array<Result> | undefined> => {
  console.log(`starting ElasticMQ ${ELASTICMQ_VERSION}…`)
  const server = await startElasticMq().catch((error: unknown) => {
    console.log(`latency rows skipped: ${error instanceof Error ? error.message : String(error)}`)
    return undefined
  })
  if (server === undefined) return undefined
  const proxy = await startLatencyProxy(server.endpoint, LATENCY_MILLIS)
  const endpoint = process.env["AWS_ENDPOINT_URL"]
  process.env["AWS_ENDPOINT_URL"] = proxy.endpoint
  let started = { at: 0, server: 0, proxy: 0, bench: 0 }
  const sample = () => ({ at: performance.now(), server: cpuSeconds(server.pid), proxy: cpuSeconds(proxy.pid), bench: ownCpuSeconds() })
  const meter: Meter = {
    start: async () => {
      await proxy.take()
      started = sample()
    },
    stop: async () => {
      const now = sample()
      const seconds = (now.at - started.at) / 1000
      const taken = await proxy.take()
      const quantile = (q: number) => taken.serverMillis[Math.min(taken.serverMillis.length - 1, Math.floor(q * taken.serverMillis.length))] ?? 0
      return {
        wire: taken.counts,
        cpu: {
          serverMedian: quantile(0.5),
          server90: quantile(0.9),
          server: (now.server - started.server) / seconds,
          proxy: (now.proxy - started.proxy) / seconds,
          bench: (now.bench - started.bench) / seconds,
          load: loadavg()[0]!
        }
      }
    }
  }
  try {
    const warm = await warmUp(server.endpoint, server.pid)
    console.log(`ElasticMQ warmed up in ${warm.seconds.toFixed(0)} s: ${warm.perRequest.toFixed(2)} ms of its CPU per request`)
    const results: Array<Result> = []
    for (const concurrency of LATENCY_CONCURRENCY) {
      const label = `ElasticMQ + ${LATENCY_MILLIS.join("–")} ms, c ${concurrency}`
      for (let round = 0; round < LATENCY_ROUNDS; round++) {
        for (const who of round % 2 === 0 ? ["agent", "sqs-consumer"] : ["sqs-consumer", "agent"]) {
          const queue = await createQueue({ maxReceiveCount: 5, visibilityTimeout: 30 })
          if (who === "agent") {
            results.push(await Effect.runPromise(agentScenario(
              `agent, ${label}`,
              MessageQueue.layerSqs,
              queue.queueUrl,
              true,
              meter,
              undefined,
              TransitionLedger.layerNone,
              0,
              concurrency
            )))
          } else {
            // seeded through SqsQueue, not counted
            await Effect.runPromise(
              Effect.gen(function*() {
                const sqs = yield* MessageQueue
                return yield* sqs.send(queue.queueUrl, initialMessages())
              }).pipe(Effect.provide(MessageQueue.layerSqs))
            )
            results.push(await baselineScenario(`sqs-consumer, ${label}`, queue.queueUrl, meter, concurrency))
          }
        }
      }
    }
    return results
  } finally {
    process.env["AWS_ENDPOINT_URL"] = endpoint
    await proxy.stop()
    await server.stop()
  }
}

const rate = (results: ReadonlyArray<Result>) =>
  results.reduce((sum, result) => sum + result.transitions, 0) / results.reduce((sum, result) => sum + result.seconds, 0)

const latencySummary = (results: ReadonlyArray<Result>) => {
  const percent = (share: number) => `${(share * 100).toFixed(0)}%`
  const columns = ["trans/s", "req/trans", "server CPU", "CPU ms/req", "server ms", "proxy CPU", "bench CPU", "load 1 min"]
  const out = [
    `On ElasticMQ ${ELASTICMQ_VERSION} (JVM, in memory) behind a proxy (own process) adding ${LATENCY_MILLIS.join("–")} ms to each request, ` +
      `c = concurrency (the agent's messages in flight; sqs-consumer: c / 10 consumers of batches of 10). CPU = CPU time over wall time while ` +
      `measuring (100% = one core busy; the machine has ${navigator.hardwareConcurrency} cores); CPU ms/req = the server's CPU per request it was sent; ` +
      `server ms = the server's time to answer a request (receives left out: a long poll waits), median and 90th percentile, as the proxy saw it:`,
    `${"".padEnd(44)}${columns.map((c) => c.padStart(11)).join("")}`
  ]
  for (const result of results) {
    const cpu = result.cpu
    const wire = result.wire === undefined ? 0 : total(result.wire)
    out.push(`${result.name.padEnd(44)}${[
      (result.transitions / result.seconds).toFixed(0),
      perTransition(result.requests, result.transitions).toFixed(3),
      cpu === undefined ? "-" : percent(cpu.server),
      cpu === undefined || wire === 0 ? "-" : ((cpu.server * result.seconds * 1000) / wire).toFixed(2),
      cpu === undefined ? "-" : `${cpu.serverMedian}, ${cpu.server90}`,
      cpu === undefined ? "-" : percent(cpu.proxy),
      cpu === undefined ? "-" : percent(cpu.bench),
      cpu === undefined ? "-" : cpu.load.toFixed(2)
    ].map((c) => c.padStart(11)).join("")}`)
  }
  for (const concurrency of LATENCY_CONCURRENCY) {
    const at = results.filter((result) => result.name.endsWith(`, c ${concurrency}`))
    const agent = rate(at.filter((result) => result.name.startsWith("agent")))
    const consumer = rate(at.filter((result) => result.name.startsWith("sqs-consumer")))
    out.push(
      `c ${concurrency}, transitions per second over ${LATENCY_ROUNDS} rounds: agent ${agent.toFixed(0)}, sqs-consumer ${consumer.toFixed(0)}; ` +
        `agent / sqs-consumer = ${(agent / consumer).toFixed(2)} (goal ≥ 1.5)`
    )
  }
  return out.join("\n")
}

// --- run ---------------------------------------------------------------------------------------------
const main = async () => {
  const moto = LATENCY_ONLY ? undefined : (console.log(`starting moto…`), await startMoto())
  const proxy = moto === undefined ? undefined : await countingProxy(moto.endpoint)
  const dataDir = mkdtempSync(join(tmpdir(), "bench-agent-"))
  Object.assign(process.env, {
    ...(proxy === undefined ? {} : { AWS_ENDPOINT_URL: proxy.endpoint }),
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "testing",
    AWS_SECRET_ACCESS_KEY: "testing"
  })
  for (const name of ["AWS_ENDPOINT_URL_SQS", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_SESSION_TOKEN", "AWS_PROFILE"]) delete process.env[name]

  try {
    const results: Array<Result> = []
    const localQueue: Layer.Layer<MessageQueue, QueueError> = MessageQueue.layerLocal({ directory: dataDir, visibilityTimeout: 30 })
    if (proxy !== undefined && !TRICKLE_ONLY) {
      const agentQueue = await createQueue({ maxReceiveCount: 5, visibilityTimeout: 30 })
      results.push(await Effect.runPromise(agentScenario("agent, moto (SqsQueue)", MessageQueue.layerSqs, agentQueue.queueUrl, true, proxy.meter)))
      const ledgerQueue = await createQueue({ maxReceiveCount: 5, visibilityTimeout: 30 })
      results.push(await Effect.runPromise(agentScenario(
        "agent, moto, DynamoDB ledger",
        MessageQueue.layerSqs,
        ledgerQueue.queueUrl,
        true,
        proxy.meter,
        undefined,
        TransitionLedger.layerDynamo(await createLedgerTable())
      )))

      const baselineQueue = await createQueue({ maxReceiveCount: 5, visibilityTimeout: 30 })
      // seeded through SqsQueue, not counted
      await Effect.runPromise(
        Effect.gen(function*() {
          const queue = yield* MessageQueue
          return yield* queue.send(baselineQueue.queueUrl, initialMessages())
        }).pipe(Effect.provide(MessageQueue.layerSqs))
      )
      results.push(await baselineScenario("sqs-consumer baseline, moto", baselineQueue.queueUrl, proxy.meter))

      results.push(await Effect.runPromise(agentScenario("agent, local queue (SQLite)", localQueue, "pipeline", false)))
      results.push(await Effect.runPromise(agentScenario(
        "agent, local queue, local ledger",
        localQueue,
        "ledgered",
        false,
        undefined,
        undefined,
        TransitionLedger.layerLocal(dataDir)
      )))
    }
    // records arriving one every TRICKLE_GAP ms instead of a backlog, without and with a batching window
    const sqsProducer: Trickle["producer"] = Effect.flatMap(Effect.promise(() => import("../src/services/queue/sqs.ts")), (sqs) => sqs.make)
    for (const window of LOCAL_TRICKLE_ONLY || proxy === undefined ? [] : [0, BATCH_WINDOW]) {
      const label = window === 0 ? "" : `, window ${String(window)}`
      const trickleQueue = await createQueue({ maxReceiveCount: 5, visibilityTimeout: 30 })
      results.push(await Effect.runPromise(agentScenario(
        `agent, moto, 1 rec/${TRICKLE_GAP_MS} ms${label}`,
        MessageQueue.layerSqs,
        trickleQueue.queueUrl,
        true,
        proxy?.meter,
        { gapMillis: TRICKLE_GAP_MS, producer: sqsProducer },
        TransitionLedger.layerNone,
        window
      )))
    }
    for (const window of LATENCY_ONLY ? [] : [0, BATCH_WINDOW]) {
      const label = window === 0 ? "" : `, window ${String(window)}`
      results.push(await Effect.runPromise(agentScenario(
        `agent, local, 1 rec/${TRICKLE_GAP_MS} ms${label}`,
        localQueue,
        window === 0 ? "trickle" : "trickle-window",
        false,
        undefined,
        { gapMillis: TRICKLE_GAP_MS, producer: LocalQueue.make({ directory: dataDir }) },
        TransitionLedger.layerNone,
        window
      )))
    }
    // both consumers on a server that is not the bottleneck, with a real call's latency
    const latency = TRICKLE_ONLY ? undefined : await latencyRows()
    if (latency !== undefined) results.push(...latency)

    console.log("")
    console.log(
      `greeting pipeline: ${RECORDS} records -> ${TRANSITIONS} transitions. A transition is one message handled: ` +
        `a step that sends the record's next state (2 per record), or the pass that finds it done and deletes it (1 per record).`
    )
    console.log(
      `agent: concurrency ${CONCURRENCY}, long poll 20 s, in-process handler; baseline: ${Math.max(1, Math.round(CONCURRENCY / MAX_BATCH))} sqs-consumer consumers, batchSize 10, long poll 20 s. ` +
        `Requests: counted by the caller; "wire req" = requests seen by a proxy in front of the server (with records trickling in, the producer's ${RECORDS} sends too). node ${process.version}.`
    )
    console.log("")
    console.log(table(results))
    console.log("")
    for (const result of results) for (const text of diagnose(result)) console.log(text)
    console.log(`goal with a ${String(BATCH_WINDOW)} window at one record every 20 ms: ≤ 0.35 requests per transition`)
    if (latency !== undefined) console.log(`\n${latencySummary(latency)}\n`)
    console.log(`ideal with full batches: (${TRANSITIONS / 10} receives + ${(RECORDS * 2) / 10} sends + ${TRANSITIONS / 10} deletes) / ${TRANSITIONS} = ${((TRANSITIONS / 10 + (RECORDS * 2) / 10 + TRANSITIONS / 10) / TRANSITIONS).toFixed(3)} per transition`)
    const problems = results.flatMap((result) => result.problems.map((problem) => `${result.name}: ${problem}`))
    if (problems.length > 0) {
      console.log("")
      for (const problem of problems) console.log(`PROBLEM ${problem}`)
      process.exitCode = 1
    }
  } finally {
    await proxy?.stop()
    await moto?.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

await main()
