/**
 * A separate OS process on a LocalQueue database, driven by test/services/LocalQueue.test.ts.
 *
 *   node test/support/localQueueWorker.ts '{"directory":"...","queue":"q","mode":"drain"}'
 *
 * Prints `ready` once the database is open, waits for a line on stdin, then:
 * - `drain`: receives (and deletes) until a receive comes back empty, then prints
 *   `{"bodies":[...]}` and exits;
 * - `hold`: receives `count` messages with `visibilityTimeout`, never deletes them, prints
 *   `{"messageIds":[...]}` and waits to be killed.
 */
import { createInterface } from "node:readline"
import { Effect } from "effect"
import * as LocalQueue from "../../src/services/queue/local.ts"

interface Args {
  readonly directory: string
  readonly queue: string
  readonly mode: "drain" | "hold"
  readonly count?: number
  readonly visibilityTimeout?: number
}

const args = JSON.parse(process.argv[2] ?? "{}") as Args
const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]()

const program = Effect.gen(function*() {
  const queue = yield* LocalQueue.make({ directory: args.directory })
  process.stdout.write("ready\n")
  yield* Effect.promise(() => stdin.next())

  if (args.mode === "drain") {
    const bodies: Array<string> = []
    while (true) {
      const messages = yield* queue.receive(args.queue, { maxMessages: 5, visibilityTimeout: 60 })
      if (messages.length === 0) break
      bodies.push(...messages.map((message) => message.body))
      const result = yield* queue.delete(
        args.queue,
        messages.map((message, i) => ({ id: `m${i}`, receiptHandle: message.receiptHandle }))
      )
      if (result.failed.length > 0) throw new Error(`delete failed: ${JSON.stringify(result.failed)}`)
      // a little work per batch, so the two workers really interleave
      yield* Effect.sleep("2 millis")
    }
    process.stdout.write(`${JSON.stringify({ bodies })}\n`)
    return
  }

  const messageIds: Array<string> = []
  while (messageIds.length < (args.count ?? 1)) {
    const messages = yield* queue.receive(args.queue, {
      maxMessages: Math.min(10, (args.count ?? 1) - messageIds.length),
      visibilityTimeout: args.visibilityTimeout ?? 1,
      waitSeconds: 1
    })
    messageIds.push(...messages.map((message) => message.messageId))
  }
  process.stdout.write(`${JSON.stringify({ messageIds })}\n`)
  yield* Effect.never
})

Effect.runPromise(Effect.scoped(program)).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${String(error)}\n`)
    process.exit(1)
  }
)
