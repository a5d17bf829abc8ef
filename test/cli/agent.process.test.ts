/**
 * The agent and producer as a user runs them (`src/bin/cli.ts` in child processes), on moto's
 * SQS/S3 and on the embedded queue: every record done, none lost to a SIGKILL, slow steps run once,
 * SIGTERM finishes in-flight work and hands nothing back late.
 */
import "../support/awsEnv.ts"
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3"
import { GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs"
import { assert, describe, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { afterAll } from "vitest"
import { LocalQueue } from "../../src/services/LocalQueue.ts"
import { createBucket, createQueue } from "../support/aws.ts"

const PIPELINE = ["--pipeline", "test/support/pipelines/tracked.ts"]

interface Started {
  readonly child: ChildProcess
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>
}

const start = (args: ReadonlyArray<string>, env: Record<string, string>): Started => {
  const child = spawn(process.execPath, ["src/bin/cli.ts", ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal, stdout, stderr }))
  )
  return { child, exit }
}

const run = async (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const result = await start(args, env).exit
  assert.strictEqual(result.code, 0, `${args.join(" ")} failed:\n${result.stderr}`)
  return result
}

const ids = (count: number) => Array.from({ length: count }, (_, i) => `rec-${i}`)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface QueueCounts {
  readonly visible: number
  readonly inFlight: number
  readonly dead: number
}

interface Backend {
  readonly env: Record<string, string>
  counts(): Promise<QueueCounts>
  /** Keys under a prefix of the bucket. */
  keys(prefix: string): Promise<ReadonlyArray<string>>
}

const sqs = new SQSClient({ useQueueUrlAsEndpoint: false })
const s3 = new S3Client({ forcePathStyle: true })
const temporaryDirs: Array<string> = []
afterAll(() => {
  sqs.destroy()
  s3.destroy()
  for (const dir of temporaryDirs) rmSync(dir, { recursive: true, force: true })
})

const backends: Record<string, (visibilityTimeout: number) => Promise<Backend>> = {
  moto: async (visibilityTimeout) => {
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
  local: async (visibilityTimeout) => {
    const dir = mkdtempSync(join(tmpdir(), "agent-test-"))
    temporaryDirs.push(dir)
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
        const main = await attributes("pipeline")
        const dead = await attributes("pipeline-dlq")
        return { visible: main.approximateVisible, inFlight: main.approximateInFlight, dead: dead.approximateVisible + dead.approximateInFlight }
      },
      keys: async (prefix) => walk(join(dir, "bucket", prefix), prefix)
    }
  }
}

const waitFor = async (condition: () => Promise<boolean>, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

for (const [name, makeBackend] of Object.entries(backends)) {
  describe(`agent and producer on ${name}`, { timeout: 60_000 }, () => {
    it("50 records produced, the agent runs until empty: all done, queue and DLQ empty", async () => {
      const backend = await makeBackend(30)
      const produced = await run(["produce", ...PIPELINE, ...ids(50)], backend.env)
      assert.include(produced.stdout, "sent 50 records")
      const agent = await run(["agent", ...PIPELINE, "--until-empty", "--concurrency", "20"], backend.env)
      assert.strictEqual((await backend.keys("finished/")).length, 50)
      assert.strictEqual((await backend.keys("runs/greet/")).length, 50, "each step ran once per record")
      assert.deepStrictEqual(await backend.counts(), { visible: 0, inFlight: 0, dead: 0 })
      assert.include(agent.stderr, `"transitions":200`)
    })

    it("killed with SIGKILL halfway and restarted: all 50 done, none lost", async () => {
      const backend = await makeBackend(2)
      const env = { ...backend.env, TRACKED_STEP_MS: "100" }
      await run(["produce", ...PIPELINE, ...ids(50)], env)
      const first = start(["agent", ...PIPELINE, "--concurrency", "10"], env)
      await waitFor(async () => (await backend.keys("finished/")).length >= 10, 40_000, "10 finished records")
      first.child.kill("SIGKILL")
      assert.strictEqual((await first.exit).signal, "SIGKILL")
      const finishedBeforeRestart = (await backend.keys("finished/")).length
      assert.isBelow(finishedBeforeRestart, 50, "killed before the end")
      await run(["agent", ...PIPELINE, "--until-empty", "--concurrency", "10"], env)
      const finished = new Set((await backend.keys("finished/")))
      assert.strictEqual(finished.size, 50)
      assert.deepStrictEqual(await backend.counts(), { visible: 0, inFlight: 0, dead: 0 })
    })

    it("a step slower than the visibility timeout runs once: the heartbeat keeps it hidden", async () => {
      const backend = await makeBackend(2)
      const env = { ...backend.env, TRACKED_STEP_MS: "5000", TRACKED_SLOW_STEP: "greet" }
      await run(["produce", ...PIPELINE, "slow-1"], env)
      await run(["agent", ...PIPELINE, "--until-empty", "--concurrency", "2"], env)
      assert.strictEqual((await backend.keys("runs/greet/")).length, 1, "the slow step ran once")
      assert.deepStrictEqual(await backend.keys("finished/"), ["finished/slow-1"])
    })

    it("SIGTERM during work: in-flight messages finish, nothing stays hidden, exit 0", async () => {
      const backend = await makeBackend(30)
      const env = { ...backend.env, TRACKED_STEP_MS: "1500" }
      await run(["produce", ...PIPELINE, ...ids(20)], env)
      const agent = start(["agent", ...PIPELINE, "--concurrency", "5"], env)
      await waitFor(async () => (await backend.counts()).inFlight === 5, 20_000, "5 messages in flight")
      agent.child.kill("SIGTERM")
      const result = await agent.exit
      assert.strictEqual(result.code, 0, result.stderr)
      assert.include(result.stderr, "finishing 5 messages in flight")
      assert.strictEqual((await backend.keys("runs/greet/")).length, 5, "the five in flight finished their step")
      const counts = await backend.counts()
      assert.strictEqual(counts.inFlight, 0, "nothing left invisible")
      assert.strictEqual(counts.visible, 20, "15 untouched + 5 successors, all visible now")
    })

    if (name === "local") {
      it("two agents on one queue share the work: every record done once", async () => {
        const backend = await makeBackend(30)
        const env = { ...backend.env, TRACKED_STEP_MS: "20" }
        await run(["produce", ...PIPELINE, ...ids(50)], env)
        const agents = [0, 1].map(() => start(["agent", ...PIPELINE, "--until-empty", "--concurrency", "10"], env))
        const results = await Promise.all(agents.map((agent) => agent.exit))
        for (const result of results) assert.strictEqual(result.code, 0, result.stderr)
        const transitions = results.map((result) => Number(/"transitions":(\d+)/.exec(result.stderr)?.[1]))
        assert.strictEqual(transitions[0]! + transitions[1]!, 200)
        assert.isTrue(transitions.every((count) => count > 0), `both agents worked: ${transitions.join(", ")}`)
        assert.strictEqual((await backend.keys("runs/greet/")).length, 50, "no record was processed twice")
        assert.strictEqual((await backend.keys("finished/")).length, 50)
      })
    }
  })
}
