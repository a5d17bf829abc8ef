/**
 * `status`, `dlq list`, `dlq redrive`, `trace` and `diagram` as a user runs them (the CLI in child
 * processes) on one backend, with real dead letters: the thumbnail pipeline's broken sample image
 * (CorruptImage) and records that fail the schema, dead-lettered by the agent. On moto with a
 * DynamoDB transition ledger, as the stack has. One file per backend (test/cli/operate*.test.ts),
 * so vitest runs them in parallel workers.
 */
import { assert, describe, it } from "@effect/vitest"
import { SetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs"
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { ConfigProvider, Effect, Exit, Scope } from "effect"
import { afterAll, afterEach, beforeAll } from "vitest"
import { makeThumbnailPipeline } from "../../src/pipelines/thumbnails/index.ts"
import { makeSampleImages, serveImages } from "../../src/pipelines/thumbnails/sampleImages.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { backendsFor } from "../../src/cli/layers.ts"
import type { QueueMessage } from "../../src/domain/messages.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { type Backend, type BackendName, cleanUpBackends, makeBackend, produceInProcess, temporaryDir } from "./backends.ts"
import { type CliResult, killRunningClis, runCli, startCli, waitFor } from "./cli.ts"
import { createLedgerTable } from "./aws.ts"
import { TRACKED } from "./agentProcess.ts"

export const BROKEN = "STK000004"
/** A good JPEG of the sample set (1800x1200), which replaces the broken one to "fix the cause". */
const GOOD = "STK000002"

/** Runs the CLI to its end and insists on `code` (default 0). */
export const runExpect = async (args: ReadonlyArray<string>, env: Record<string, string>, code = 0): Promise<CliResult> => {
  const result = await runCli(args, env)
  assert.strictEqual(result.code, code, `${args.join(" ")}: exit ${result.code}\n${result.stdout}\n${result.stderr}`)
  return result
}

export const runJson = async <A = any>(args: ReadonlyArray<string>, env: Record<string, string>): Promise<A> =>
  JSON.parse((await runExpect([...args, "--json"], env)).stdout) as A

/** Runs an effect over the backends `env` selects for a pipeline (thumbnails by default), in this process (the CLI's own layers). */
export const onBackend = <A, E>(
  env: Record<string, string>,
  body: (queueUrl: string) => Effect.Effect<A, E, MessageQueue>,
  pipelineName = "thumbnails"
) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const { queueUrl } = yield* EngineSettings
      return yield* body(queueUrl)
    }).pipe(Effect.provide(backendsFor(pipelineName)), Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env))))
  )

/** Sends bodies to the pipeline's queue as they are (no validation, no pipeline attributes): how a bad record gets in. */
export const sendRaw = (env: Record<string, string>, bodies: ReadonlyArray<string>) =>
  onBackend(env, (queueUrl) =>
    Effect.gen(function*() {
      const result = yield* (yield* MessageQueue).send(queueUrl, bodies.map((body, i) => ({ id: `raw${i}`, body })))
      assert.strictEqual(result.failed.length, 0)
    }))

/** Receives every message of a queue, each hidden for a minute: however slow, nothing comes round twice. */
const receiveEverything = (queueUrl: string) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    const all: Array<QueueMessage> = []
    while (true) {
      const batch = yield* queue.receive(queueUrl, { maxMessages: 10, waitSeconds: all.length === 0 ? 1 : 0, visibilityTimeout: 60 })
      if (batch.length === 0) return all
      all.push(...batch)
    }
  })

/** Every message in the pipeline's queue, taken off it. */
export const drainSource = (env: Record<string, string>) => onBackend(env, receiveEverything)

/** Every message in the pipeline's queue, left there: received, then made visible again. */
export const peekSource = (env: Record<string, string>) =>
  onBackend(env, (queueUrl) =>
    Effect.gen(function*() {
      const all = yield* receiveEverything(queueUrl)
      yield* (yield* MessageQueue).changeVisibility(queueUrl, all.map((message, i) => ({ id: `p${i}`, receiptHandle: message.receiptHandle })), 0)
      return all
    }))

/** Writes an object into the bucket `env` selects (S3 or the local folder). */
const putObject = async (env: Record<string, string>, key: string, bytes: Buffer) => {
  const bucket = env["PIPELINE_BUCKET"]
  if (bucket === undefined) {
    const path = join(env["PIPELINE_DATA_DIR"]!, "bucket", key)
    mkdirSync(dirname(path), { recursive: true })
    return writeFileSync(path, bytes)
  }
  const s3 = new S3Client({ forcePathStyle: true })
  try {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes, ContentType: "image/jpeg" }))
  } finally {
    s3.destroy()
  }
}

/** On moto, the DLQ (`<queue>-dlq`, see test/support/aws.ts) gets this visibility timeout; the local queue's comes from the environment. */
const setDeadLetterVisibility = async (env: Record<string, string>, seconds: number) => {
  const queueUrl = env["PIPELINE_QUEUE_URL"]
  if (queueUrl === undefined) return
  const sqs = new SQSClient({ useQueueUrlAsEndpoint: false })
  try {
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: `${queueUrl}-dlq`, Attributes: { VisibilityTimeout: String(seconds) } }))
  } finally {
    sqs.destroy()
  }
}

/** On moto, a DynamoDB transition ledger beside the queue (as the stack has); locally it is in the queue's file. */
const withLedger = async (backend: Backend): Promise<Backend> =>
  backend.env["PIPELINE_QUEUE_URL"] === undefined ? backend : { ...backend, env: { ...backend.env, PIPELINE_LEDGER_TABLE: await createLedgerTable() } }

export const describeOperate = (name: BackendName) => {
  const scope = Effect.runSync(Scope.make())
  let samples = ""
  let imageSource = ""
  let cachedSamples = ""
  beforeAll(async () => {
    // the sample set is made once per machine (cached); each file serves its own copy, whose broken image it replaces
    cachedSamples = join(tmpdir(), "pipeline-operate-samples-4")
    await Effect.runPromise(makeSampleImages(cachedSamples, { count: 4 }))
    samples = temporaryDir("operate-samples-")
    for (const stockNo of [GOOD, BROKEN]) copyFileSync(join(cachedSamples, `${stockNo}.jpg`), join(samples, `${stockNo}.jpg`))
    imageSource = (await Effect.runPromise(serveImages(samples).pipe(Scope.provide(scope)))).imageSource
  }, 60_000)
  afterEach(killRunningClis)
  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    cleanUpBackends()
  })

  /**
   * A backend whose DLQ holds the broken image's record (CorruptImage) and `schemaViolations`
   * records that fail the schema, and the environment for the commands under test, in which the
   * DLQ's visibility timeout is `dlqVisibility` (the agent runs with 30 s, so nothing is dead-lettered twice).
   */
  const withDeadLetters = async (dlqVisibility: number, schemaViolations: number) => {
    // broken again (a test before may have fixed it)
    copyFileSync(join(cachedSamples, `${BROKEN}.jpg`), join(samples, `${BROKEN}.jpg`))
    const backend = await withLedger(await makeBackend[name](30))
    const agentEnv: Record<string, string> = { ...backend.env, IMAGE_SOURCE: imageSource }
    await produceInProcess(backend, makeThumbnailPipeline([100, 200]), [BROKEN])
    await sendRaw(agentEnv, Array.from({ length: schemaViolations }, (_, i) => JSON.stringify({ stock_no: 1000 + i })))
    await runExpect(["agent", "--until-empty", "--wait-seconds", "0"], agentEnv)
    assert.deepStrictEqual(await backend.counts(), { visible: 0, inFlight: 0, dead: schemaViolations + 1 }, JSON.stringify(await runJson(["status"], agentEnv)))
    await setDeadLetterVisibility(agentEnv, dlqVisibility)
    const env = name === "local" ? { ...agentEnv, PIPELINE_VISIBILITY_TIMEOUT: String(dlqVisibility) } : agentEnv
    return { backend, env }
  }

  // each CLI launch is about a second on an idle machine, several on a busy one
  describe(`status, dlq list and dlq redrive on ${name}`, { timeout: 120_000 }, () => {
    it("status and dlq list show the dead letters with their reasons and leave them in the DLQ; after the fix a redrive gets the record done", async () => {
      const { backend, env } = await withDeadLetters(30, 1)

      const status = await runJson(["status"], env)
      assert.deepInclude(status.queue, { visible: 0, inFlight: 0, delayed: 0 })
      assert.deepStrictEqual(status.deadLetters.reasons, { CorruptImage: 1, SchemaViolation: 1 })
      assert.strictEqual(status.deadLetters.count, 2)
      assert.strictEqual(status.deadLetters.steps["decode"], 1)
      const text = (await runExpect(["status"], env)).stdout
      assert.match(text, /reasons: (CorruptImage 1, SchemaViolation 1)/)

      const listed = await runJson(["dlq", "list"], env)
      assert.strictEqual(listed.count, 2)
      const corrupt = listed.letters.find((letter: any) => letter.reason === "CorruptImage")
      assert.include(corrupt.body, BROKEN)
      assert.isString(corrupt.message)
      assert.isString(corrupt.step)
      assert.notStrictEqual(corrupt.step, "decode")
      assert.isAtLeast(corrupt.receiveCount, 1)
      assert.strictEqual(corrupt.sourceQueue, env["PIPELINE_QUEUE_URL"] ?? "thumbnails")
      const schema = listed.letters.find((letter: any) => letter.reason === "SchemaViolation")
      assert.deepInclude(schema, { step: "decode", body: JSON.stringify({ stock_no: 1000 }) })
      // not consumed: a second look, at once, sees both again (the DLQ's visibility timeout is 30 s)
      assert.strictEqual((await runJson(["dlq", "list"], env)).letters.length, 2)
      assert.match((await runExpect(["dlq", "list"], env)).stdout, /^2 dead letters in .*\n\n\S+ {2}(CorruptImage|SchemaViolation)/)

      // fix the cause: the image at its source, and the raw copy the pipeline already took (the dead
      // letter is the record after its download step, so the redrive resumes at the thumbnails)
      copyFileSync(join(samples, `${GOOD}.jpg`), join(samples, `${BROKEN}.jpg`))
      assert.deepStrictEqual(await backend.keys("raw/"), [`raw/${BROKEN}.jpg`])
      await putObject(env, `raw/${BROKEN}.jpg`, readFileSync(join(samples, `${GOOD}.jpg`)))
      const redriven = await runJson(["dlq", "redrive", "--reason", "CorruptImage"], env)
      assert.deepInclude(redriven, { method: "copy", redriven: 1, finished: 0, notDeleted: 0 })
      const [back, ...more] = await peekSource(env)
      assert.strictEqual(more.length, 0)
      assert.deepInclude(JSON.parse(back!.body), { stock_no: BROKEN, has_raw: true })
      assert.deepStrictEqual(Object.keys(back!.attributes).sort(), ["pipeline.mutation", "pipeline.step", "pipeline.trace_id", "pipeline.transition_id"])
      await runExpect(["agent", "--until-empty", "--wait-seconds", "0"], env)
      assert.includeMembers([...await backend.keys("thumbnails/")], [`thumbnails/100/${BROKEN}.jpg`, `thumbnails/200/${BROKEN}.jpg`])
      const after = await runJson(["status"], env)
      assert.deepStrictEqual(after.deadLetters.reasons, { SchemaViolation: 1 })
      assert.deepInclude(after.queue, { visible: 0, inFlight: 0 })
      // the record's history: done, and the attempt the redrive replaced is still told
      const traced = (await runJson(["trace", BROKEN], env)).chains[0]
      assert.deepStrictEqual(traced.steps.map((step: any) => [step.step, step.outcome]), [[0, "advanced"], [1, "advanced"], [2, "advanced"], [3, "done"]])
      assert.deepInclude(traced.steps[1].redriven.reason, { tag: "CorruptImage", stage: "thumbnail_200" })
      assert.match((await runExpect(["trace", BROKEN], env)).stdout, /\n {6}redriven: before it, message \S+ was dead-lettered \S+: CorruptImage at thumbnail_200\n/)
      assert.strictEqual(after.lastHour.deadLettered, 2, "the redriven dead letter still counts")
    })

    it("a redrive killed halfway, then run again: every dead letter exactly once in the source queue", async () => {
      const { backend, env } = await withDeadLetters(2, 29)
      const copy = name === "moto" ? ["--copy"] : []
      // 5 a second: the run lasts 6 s, killed once 10 are back
      const first = startCli(["dlq", "redrive", ...copy, "--rate", "5"], env)
      // killed once 10 are back and deleted from the DLQ: during the pause before the next batch,
      // which it has received and holds (the window between a send and its delete is the moto
      // test's; a kill while a send request is in flight is the one window left, see RedriveJournal.ts)
      await waitFor(async () => {
        const counts = await backend.counts()
        return counts.visible >= 10 && counts.visible + counts.dead <= 30
      }, 30_000, "10 redriven")
      first.child.kill("SIGKILL")
      assert.strictEqual((await first.exit).signal, "SIGKILL")
      assert.isAbove((await backend.counts()).dead, 0, "killed before the end")
      const second = await runJson(["dlq", "redrive", ...copy], env)
      assert.strictEqual(second.notDeleted, 0)
      assert.strictEqual((await runJson(["status"], env)).deadLetters.count, 0)
      const drained = await drainSource(env)
      assert.strictEqual(new Set(drained.map((message) => message.messageId)).size, drained.length)
      const bodies = drained.map((message) => message.body).sort()
      const expected = [JSON.stringify({ stock_no: BROKEN, has_raw: true }), ...Array.from({ length: 29 }, (_, i) => JSON.stringify({ stock_no: 1000 + i }))].sort()
      assert.deepStrictEqual(bodies, expected)
    })
  })

  describe(`trace and diagram on ${name}`, { timeout: 120_000 }, () => {
    it("trace: a done record, a dead-lettered one (by record id and by the trace id dlq list shows), an unknown id; diagram: the observed transitions with counts", async () => {
      const { backend, env } = await withDeadLetters(30, 1)
      await produceInProcess(backend, makeThumbnailPipeline([100, 200]), [GOOD])
      await runExpect(["agent", "--until-empty", "--wait-seconds", "0"], { ...env, IMAGE_SOURCE: imageSource })

      const done = await runJson(["trace", GOOD], env)
      assert.strictEqual(done.chains.length, 1)
      const [chain] = done.chains
      assert.strictEqual(chain.recordId, GOOD)
      assert.deepStrictEqual(chain.steps.map((step: any) => [step.step, step.madeBy, step.mutation, step.outcome]), [
        [0, null, "download", "advanced"],
        [1, "download", "thumbnail_200", "advanced"],
        [2, "thumbnail_200", "thumbnail_100", "advanced"],
        [3, "thumbnail_100", null, "done"]
      ])
      assert.strictEqual(new Set(chain.steps.map((step: any) => step.messageId)).size, 4)
      for (const step of chain.steps) assert.isFalse(Number.isNaN(Date.parse(step.at)))
      assert.deepStrictEqual(await runJson(["trace", chain.traceId], env), { ...done, id: chain.traceId }, "the same chain by its trace id")
      const text = (await runExpect(["trace", GOOD], env)).stdout
      assert.match(text, new RegExp(`^record ${GOOD} · trace ${chain.traceId}\n {2}step 0 {2}\\S+ {2}message \\S+ {2}download → advanced\n`))
      assert.match(text, /\n {2}step 3 .* done\n?$/)

      const broken = (await runJson(["trace", BROKEN], env)).chains[0]
      assert.deepStrictEqual(broken.steps.map((step: any) => [step.step, step.outcome]), [[0, "advanced"], [1, "dead-lettered"]])
      assert.deepInclude(broken.steps[1].reason, { tag: "CorruptImage", stage: "thumbnail_200" })
      assert.match(broken.steps[1].reason.message, /corrupt|truncated|premature/i)
      assert.match((await runExpect(["trace", BROKEN], env)).stdout, /thumbnail_200 → dead-lettered: CorruptImage/)

      // a record that failed the schema had no id to find it by: dlq list shows its trace id
      const letters = (await runJson(["dlq", "list"], env)).letters
      const schema = letters.find((letter: any) => letter.reason === "SchemaViolation")
      assert.isString(schema.traceId)
      const violated = (await runJson(["trace", schema.traceId], env)).chains[0]
      assert.deepStrictEqual(violated.steps.map((step: any) => [step.step, step.outcome, step.reason?.tag, step.reason?.stage]), [[0, "dead-lettered", "SchemaViolation", "decode"]])

      const unknown = await runExpect(["trace", "STK999999"], env, 1)
      assert.match(unknown.stderr, /^error: no record or trace STK999999 in the transition ledger/m)
      assert.strictEqual(unknown.stdout, "")

      const diagram = await runJson(["diagram"], env)
      const counts = Object.fromEntries(diagram.transitions.map((t: any) => [`${t.from} -> ${t.to}: ${t.label}`, t.count]))
      assert.deepStrictEqual(counts, {
        "produced -> download: download": 2,
        "produced -> dead_letters: SchemaViolation at decode": 1,
        "download -> thumbnail_200: thumbnail_200": 1,
        "download -> dead_letters: CorruptImage at thumbnail_200": 1,
        "thumbnail_200 -> thumbnail_100: thumbnail_100": 1,
        "thumbnail_100 -> [*]: done": 1
      })
      const mermaid = (await runExpect(["diagram"], env)).stdout
      assert.strictEqual(mermaid.trim(), diagram.mermaid)
      assert.match(mermaid, /^stateDiagram-v2$/m)
      assert.match(mermaid, /^ {4}produced --> after_download : download \(2\)$/m)
      assert.match(mermaid, /^ {4}after_download --> dead_letters : CorruptImage at thumbnail_200 \(1\)$/m)
      assert.match(mermaid, /^ {4}after_thumbnail_100 --> \[\*\] : done \(1\)$/m)

      const status = await runJson(["status"], env)
      assert.deepStrictEqual(status.lastHour, {
        started: 3,
        steps: { download: 2, thumbnail_200: 1, thumbnail_100: 1 },
        done: 1,
        deadLettered: 2
      })
      assert.match((await runExpect(["status"], env)).stdout, /last hour \(transition ledger\)\n {2}3 started · steps run: download 2, thumbnail_200 1, thumbnail_100 1 · 1 done · 2 dead-lettered/)
    })

    it("trace shows a record in flight; diagram draws a pipeline loaded by path and the greeting pipeline, declared first, then observed", async () => {
      const backend = await withLedger(await makeBackend[name](30))
      const env = backend.env

      // nothing run yet: only what the pipeline declares, its first mutation, without a count
      const declared = await runJson([...TRACKED, "diagram"], env)
      assert.deepStrictEqual(declared.transitions, [{ from: "produced", to: "greet", label: "greet", count: null }])
      assert.strictEqual(declared.pipeline, "tracked")

      // the second step takes a minute: the record waits there, claimed and running
      await produceInProcess(backend, (await import("./pipelines/tracked.ts")).default, ["slow"])
      const agent = startCli(["agent", ...TRACKED, "--wait-seconds", "0"], { ...env, TRACKED_STEP_MS: "60000", TRACKED_SLOW_STEP: "name" })
      let inFlight: any
      await waitFor(async () => {
        const result = await runCli(["trace", "slow", "--json"], env)
        inFlight = result.code === 0 ? JSON.parse(result.stdout) : undefined
        return inFlight?.chains[0].steps.length === 2
      }, 60_000, "step 1 claimed")
      assert.deepStrictEqual(inFlight.chains[0].steps.map((step: any) => [step.step, step.madeBy, step.mutation, step.outcome]), [
        [0, null, "greet", "advanced"],
        [1, "greet", null, "in-flight"]
      ])
      assert.match((await runExpect(["trace", "slow"], env)).stdout, /step 1 .* in flight/)
      const running = await runJson([...TRACKED, "diagram"], env)
      assert.deepStrictEqual(running.transitions, [{ from: "produced", to: "greet", label: "greet", count: 1 }])
      assert.deepStrictEqual(running.inFlight, { greet: 1 })
      assert.match(running.mermaid, /note right of after_greet : 1 in flight/)
      // the queue's oldest message (in flight): the local queue knows its age; SQS does not say without a receive
      const { queue } = await runJson([...TRACKED, "status"], env)
      if (name === "local") {
        assert.isAtLeast(queue.oldestAgeSeconds, 0)
        assert.isNull(queue.oldestAgeNote)
      } else {
        assert.isNull(queue.oldestAgeSeconds)
        assert.match(queue.oldestAgeNote, /SQS does not report it without a receive/)
      }
      agent.child.kill("SIGKILL")
      await agent.exit

      // the greeting pipeline on its own backend: declared, then run
      const greeting = await withLedger(await makeBackend[name](30))
      assert.deepStrictEqual((await runJson(["--pipeline", "greeting", "diagram"], greeting.env)).transitions, [
        { from: "produced", to: "createGreeting", label: "createGreeting", count: null }
      ])
      await runExpect(["produce", "--pipeline", "greeting", "a", "b"], greeting.env)
      await runExpect(["agent", "--pipeline", "greeting", "--until-empty", "--wait-seconds", "0"], greeting.env)
      const text = (await runExpect(["--pipeline", "greeting", "diagram"], greeting.env)).stdout
      assert.include(text, [
        "stateDiagram-v2",
        `    state "produced" as produced`,
        `    state "after createGreeting" as after_createGreeting`,
        `    state "after createName" as after_createName`,
        "    [*] --> produced",
        "    produced --> after_createGreeting : createGreeting (2)",
        "    after_createGreeting --> after_createName : createName (2)",
        "    after_createName --> [*] : done (2)"
      ].join("\n"))
      if (name === "local") {
        // one ledger (the queue's file), a queue per pipeline: another pipeline's diagram leaves greeting's chains out
        assert.deepStrictEqual((await runJson([...TRACKED, "diagram"], greeting.env)).transitions, [{ from: "produced", to: "greet", label: "greet", count: null }])
      }
    })

    it("trace without an id is bad usage (exit 2); --help exits 0", async () => {
      const backend = await makeBackend[name](30)
      await runExpect(["trace"], backend.env, 2)
      await runExpect(["trace", " "], backend.env, 2)
      // no ledger table on SQS: no history, and it says why; locally the ledger is in the queue's file
      const missing = await runExpect(["trace", "x"], backend.env, 1)
      assert.match(missing.stderr, name === "moto" ? /^error: no transition ledger, so no history: on SQS set PIPELINE_LEDGER_TABLE/m : /^error: no record or trace x/m)
      assert.include((await runExpect(["trace", "--help"], backend.env)).stdout, "record id or trace id")
      assert.include((await runExpect(["diagram", "--help"], backend.env)).stdout, "Mermaid")
    })
  })
}
