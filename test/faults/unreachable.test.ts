/**
 * The agent (the real CLI, a child process) when its endpoint cannot be reached at start: it backs
 * off and logs each attempt with the queue and the endpoint's error, never exits on it, stops
 * cleanly on SIGTERM while waiting, and goes to work once the endpoint answers.
 */
import "../support/awsEnv.ts"
import { assert, describe, it } from "@effect/vitest"
import { mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import { createQueue } from "../support/aws.ts"
import { waitFor } from "../support/cli.ts"
import { startFaultProxy } from "../support/faultProxy.ts"
import { freePort } from "../support/moto.ts"
import { doneIds, PIPELINE, readLineage, recordIds, startCli } from "./harness.ts"

const dirs: Array<string> = []
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

interface LogLine {
  readonly message: string
  readonly level: string
  readonly annotations: Record<string, unknown>
}
const logLines = (stderr: string): ReadonlyArray<LogLine> =>
  stderr.split("\n").flatMap((line) => {
    try {
      return [JSON.parse(line) as LogLine]
    } catch {
      return []
    }
  })
const retries = (stderr: string) => logLines(stderr).filter((line) => line.message.startsWith("cannot reach the queue"))

describe("agent with an unreachable endpoint", { timeout: 40_000 }, () => {
  it("at start: logs each retry with the queue, the endpoint and the attempt; SIGTERM while waiting exits 0", async () => {
    const port = await freePort() // nothing listens there
    const queueUrl = "https://sqs.us-east-1.amazonaws.com/123456789012/unreachable"
    const agent = startCli(["agent", ...PIPELINE], { PIPELINE_QUEUE_URL: queueUrl, AWS_ENDPOINT_URL_SQS: `http://127.0.0.1:${port}` })
    await waitFor(async () => retries(agent.stderr()).length >= 3, 30_000, "three logged retries")
    agent.child.kill("SIGTERM")
    const exit = await agent.exit
    assert.strictEqual(exit.code, 0, exit.stderr)
    const logged = retries(exit.stderr)
    assert.deepStrictEqual(logged.slice(0, 3).map((line) => line.annotations["attempt"]), [1, 2, 3])
    for (const line of logged) {
      assert.strictEqual(line.level, "ERROR")
      assert.strictEqual(line.annotations["queueUrl"], queueUrl)
      assert.include(line.message, queueUrl)
      assert.include(line.message, `127.0.0.1:${port}`, "the endpoint that refused")
    }
  })

  it("comes up later: the agent goes to work once it answers, then stops on SIGTERM", async () => {
    const port = await freePort()
    const queue = await createQueue()
    const dir = mkdtempSync(join(tmpdir(), "faults-unreachable-"))
    dirs.push(dir)
    const lineageDir = join(dir, "lineage")
    mkdirSync(lineageDir)
    const ids = recordIds(3)
    // produced straight to moto; the agent goes through the endpoint that is not there yet
    const produced = await startCli(["produce", ...PIPELINE, ...ids], { PIPELINE_QUEUE_URL: queue.queueUrl }).exit
    assert.strictEqual(produced.code, 0, produced.stderr)
    const agent = startCli(["agent", ...PIPELINE], {
      PIPELINE_QUEUE_URL: queue.queueUrl,
      PIPELINE_DATA_DIR: dir,
      AWS_ENDPOINT_URL_SQS: `http://127.0.0.1:${port}`,
      LINEAGE_LOG_DIR: lineageDir
    })
    await waitFor(async () => retries(agent.stderr()).length >= 2, 30_000, "two logged retries")
    const proxy = await startFaultProxy({ target: process.env["AWS_ENDPOINT_URL"]!, port, decide: () => ({ _tag: "None" }) })
    try {
      await waitFor(async () => doneIds(readLineage(lineageDir)).size === ids.length, 30_000, "every record done")
      agent.child.kill("SIGTERM")
      const exit = await agent.exit
      assert.strictEqual(exit.code, 0, exit.stderr)
      assert.isAtLeast(retries(exit.stderr).length, 2)
    } finally {
      await proxy.close()
    }
  })
})
