/**
 * The agent and producer as a user runs them, on the embedded queue and bucket (the same tests as
 * on moto, in test/support/agentProcess.ts), and two agents sharing one local queue.
 */
import { assert, describe, it } from "@effect/vitest"
import { describeAgentProcess, ids, TRACKED } from "../support/agentProcess.ts"
import { makeBackend, produceInProcess } from "../support/backends.ts"
import { startCli, waitFor } from "../support/cli.ts"
import tracked from "../support/pipelines/tracked.ts"

describeAgentProcess("local")

describe("agents on one local queue", { timeout: 60_000 }, () => {
  it("two agents on one queue share the work: every record done once", async () => {
    const backend = await makeBackend.local(30, "tracked")
    const env = { ...backend.env, TRACKED_STEP_MS: "20" }
    // both agents are polling before the first record arrives, however slowly each one starts
    const agents = [0, 1].map(() => startCli(["agent", ...TRACKED, "--concurrency", "10", "--wait-seconds", "1"], env))
    const started = agents.map(() => false)
    agents.forEach((agent, i) => agent.child.stderr!.on("data", (chunk: Buffer) => (started[i] ||= chunk.toString().includes("agent: tracked on"))))
    await waitFor(async () => started.every(Boolean), 30_000, "both agents started")
    await produceInProcess(backend, tracked, ids(50))
    await waitFor(async () => (await backend.keys("finished/")).length === 50, 30_000, "50 records finished")
    // a record is done a pass after its last step wrote finished/: stop once the queue is empty
    // (successors are sent before a message is deleted, so it is empty only at the end)
    await waitFor(async () => {
      const counts = await backend.counts()
      return counts.visible === 0 && counts.inFlight === 0
    }, 30_000, "the queue empty")
    for (const agent of agents) agent.child.kill("SIGTERM")
    const results = await Promise.all(agents.map((agent) => agent.exit))
    for (const result of results) assert.strictEqual(result.code, 0, result.stderr)
    const transitions = results.map((result) => Number(/"transitions":(\d+)/.exec(result.stderr)?.[1]))
    const done = results.map((result) => Number(/"done":(\d+)/.exec(result.stderr)?.[1]))
    assert.strictEqual(transitions[0]! + transitions[1]!, 150, "3 steps a record")
    assert.strictEqual(done[0]! + done[1]!, 50)
    assert.isTrue(transitions.every((count) => count > 0), `both agents worked: ${transitions.join(", ")}`)
    assert.strictEqual((await backend.keys("runs/greet/")).length, 50, "no record was processed twice")
    assert.strictEqual((await backend.keys("finished/")).length, 50)
  })
})
