/**
 * The two backends a process-level test runs the CLI on, each as the environment that selects it
 * plus ways to look at it from outside: moto's SQS and S3 (raw SDK clients), or the embedded queue
 * and bucket in a fresh PIPELINE_DATA_DIR. Import "./awsEnv.ts" first for moto.
 *
 * Records are produced in process, through the producer program and the same live layers the CLI
 * uses, where the CLI's `produce` itself is not under test (a CLI launch costs seconds).
 */
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3"
import { GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs"
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigProvider, Effect } from "effect"
import type { AnyPipeline } from "../../src/domain/Pipeline.ts"
import { Attribute } from "../../src/domain/transition.ts"
import { EngineSettings, localQueueFor } from "../../src/services/EngineSettings.ts"
import { parseInputs, produce } from "../../src/programs/producer.ts"
import { backendsFor } from "../../src/cli/layers.ts"
import { createBucket, createQueue } from "./aws.ts"
import * as LocalQueue from "../../src/services/queue/local.ts"

export interface QueueCounts {
  readonly visible: number
  readonly inFlight: number
  readonly dead: number
}

export interface Backend {
  /** The environment that points the CLI at this backend. */
  readonly env: Record<string, string>
  counts(): Promise<QueueCounts>
  /** Keys under a prefix of the bucket. */
  keys(prefix: string): Promise<ReadonlyArray<string>>
}

export type BackendName = "moto" | "local"

const temporaryDirs: Array<string> = []
let clients: { readonly sqs: SQSClient; readonly s3: S3Client } | undefined
const awsClients = () => (clients ??= { sqs: new SQSClient({ useQueueUrlAsEndpoint: false }), s3: new S3Client({ forcePathStyle: true }) })

/** Closes the SDK clients and removes the data directories made so far (for `afterAll`). */
export const cleanUpBackends = () => {
  clients?.sqs.destroy()
  clients?.s3.destroy()
  clients = undefined
  for (const dir of temporaryDirs.splice(0)) rmSync(dir, { recursive: true, force: true })
}

/** A fresh, empty directory, removed by `cleanUpBackends`. */
export const temporaryDir = (prefix: string): string => {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  temporaryDirs.push(dir)
  return dir
}

/** A fresh queue (with a dead-letter queue after 5 receives) and bucket on `name`. */
/** A backend for the pipeline named `pipelineName` (locally, each pipeline has its own queue). */
export const makeBackend: Record<BackendName, (visibilityTimeout: number, pipelineName?: string) => Promise<Backend>> = {
  moto: async (visibilityTimeout) => {
    const { sqs, s3 } = awsClients()
    const queue = await createQueue({ maxReceiveCount: 5, visibilityTimeout })
    const bucket = await createBucket()
    const count = async (url: string) => {
      const { Attributes = {} } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ["All"] }))
      return { visible: Number(Attributes["ApproximateNumberOfMessages"]), inFlight: Number(Attributes["ApproximateNumberOfMessagesNotVisible"]) }
    }
    return {
      env: { PIPELINE_QUEUE_URL: queue.queueUrl, PIPELINE_BUCKET: bucket },
      counts: async () => {
        const main = await count(queue.queueUrl)
        const dead = await count(queue.dlqUrl!)
        return { ...main, dead: dead.visible + dead.inFlight }
      },
      keys: async (prefix) => {
        const keys: Array<string> = []
        let token: string | undefined
        do {
          const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }))
          keys.push(...(page.Contents ?? []).map((object) => object.Key!))
          token = page.NextContinuationToken
        } while (token !== undefined)
        return keys
      }
    }
  },
  local: async (visibilityTimeout, pipelineName = "thumbnails") => {
    const dir = temporaryDir("agent-test-")
    const attributes = (name: string) =>
      Effect.runPromise(
        Effect.gen(function*() {
          const queue = yield* LocalQueue.make({ directory: dir })
          return yield* queue.attributes(name)
        }).pipe(Effect.scoped)
      )
    const walk = (folder: string, prefix: string): Array<string> => {
      try {
        return readdirSync(folder).flatMap((entry) => {
          const path = join(folder, entry)
          return statSync(path).isDirectory() ? walk(path, `${prefix}${entry}/`) : [`${prefix}${entry}`]
        })
      } catch {
        return []
      }
    }
    return {
      env: { PIPELINE_DATA_DIR: dir, PIPELINE_VISIBILITY_TIMEOUT: String(visibilityTimeout) },
      counts: async () => {
        const main = await attributes(localQueueFor(pipelineName))
        const dead = await attributes(`${localQueueFor(pipelineName)}-dlq`)
        return { visible: main.approximateVisible, inFlight: main.approximateInFlight, dead: dead.approximateVisible + dead.approximateInFlight }
      },
      keys: async (prefix) => walk(join(dir, "bucket", prefix), prefix)
    }
  }
}

/**
 * Sends ids (or JSON records) as `produce` would: validated by the pipeline, step 0, a trace id
 * each, through the backends layer chosen by `backend.env` alone.
 */
export const produceInProcess = (backend: Backend, pipeline: AnyPipeline, inputs: ReadonlyArray<string>): Promise<void> =>
  Effect.runPromise(
    Effect.gen(function*() {
      const { queueUrl } = yield* EngineSettings
      const { messages, invalid } = parseInputs(pipeline, queueUrl, inputs.map((text, i) => ({ source: `input ${i + 1}`, text })))
      if (invalid.length > 0) return yield* Effect.die(new Error(`invalid inputs: ${JSON.stringify(invalid)}`))
      const result = yield* produce(queueUrl, messages)
      if (result.sent !== inputs.length) return yield* Effect.die(new Error(`sent ${result.sent} of ${inputs.length}: ${JSON.stringify(result.failed)}`))
    }).pipe(
      Effect.provide(backendsFor(pipeline.name)),
      Effect.provide(ConfigProvider.layer(ConfigProvider.fromEnvRecord(backend.env)))
    )
  )

/** Every message on a pipeline's embedded queue in `dataDir`, taken off it: its record and its step and trace attributes. */
export const drainLocalQueue = (dataDir: string, pipelineName = "thumbnails") =>
  Effect.runPromise(Effect.gen(function*() {
    const queue = yield* LocalQueue.make({ directory: dataDir })
    const all: Array<{ body: unknown; step: string | undefined; trace: string | undefined }> = []
    while (true) {
      const batch = yield* queue.receive(localQueueFor(pipelineName), { maxMessages: 10 })
      if (batch.length === 0) return all
      all.push(...batch.map((m) => ({ body: JSON.parse(m.body), step: m.attributes[Attribute.step], trace: m.attributes[Attribute.traceId] })))
    }
  }).pipe(Effect.scoped))
