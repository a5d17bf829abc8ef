/**
 * `status`, `dlq list` and `dlq redrive` as a user runs them (the CLI in child processes) on one
 * backend, with real dead letters: the thumbnail pipeline's broken sample image (CorruptImage)
 * and records that fail the schema, dead-lettered by the agent. One file per backend
 * (test/cli/operate*.test.ts), so vitest runs them in parallel workers.
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
import { backendsLayer } from "../../src/cli/layers.ts"
import type { QueueMessage } from "../../src/domain/messages.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { type BackendName, cleanUpBackends, makeBackend, produceInProcess, temporaryDir } from "./backends.ts"
import { type CliResult, killRunningClis, runCli, startCli, waitFor } from "./cli.ts"

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

/** Runs an effect over the backends `env` selects, in this process (the CLI's own layers). */
export const onBackend = <A, E>(env: Record<string, string>, body: (queueUrl: string) => Effect.Effect<A, E, MessageQueue>) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const { queueUrl } = yield* EngineSettings
      return yield* body(queueUrl)
    }).pipe(Effect.provide(backendsLayer), Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(env))))
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
    const backend = await makeBackend[name](30)
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
      assert.strictEqual(corrupt.sourceQueue, env["PIPELINE_QUEUE_URL"] ?? "pipeline")
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
      assert.deepStrictEqual(Object.keys(back!.attributes).sort(), ["pipeline.step", "pipeline.trace_id", "pipeline.transition_id"])
      await runExpect(["agent", "--until-empty", "--wait-seconds", "0"], env)
      assert.includeMembers([...await backend.keys("thumbnails/")], [`thumbnails/100/${BROKEN}.jpg`, `thumbnails/200/${BROKEN}.jpg`])
      const after = await runJson(["status"], env)
      assert.deepStrictEqual(after.deadLetters.reasons, { SchemaViolation: 1 })
      assert.deepInclude(after.queue, { visible: 0, inFlight: 0 })
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
}
