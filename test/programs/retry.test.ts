/** The one retry policy: bounded by its budget whatever the jitter, and only for retryable failures. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { PermanentError, RetryableError } from "../../src/domain/errors.ts"
import { retryPolicy } from "../../src/programs/retry.ts"

const failing = (error: RetryableError | PermanentError) => {
  const attempts: Array<number> = []
  const effect = Effect.suspend(() => Effect.sync(() => attempts.push(0)).pipe(Effect.andThen(Effect.fail(error))))
  return { attempts, effect }
}

describe("retryPolicy", () => {
  it.effect("gives up by its budget, after a handful of backed-off attempts, for any jitter (200 runs)", () =>
    Effect.gen(function*() {
      for (let run = 0; run < 200; run++) {
        const { attempts, effect } = failing(new RetryableError({ message: "busy" }))
        const fiber = yield* Effect.forkChild(Effect.exit(effect.pipe(Effect.retry(retryPolicy("3 seconds")))))
        yield* TestClock.adjust("2900 millis")
        assert.isUndefined(fiber.pollUnsafe(), `run ${run}: gave up before its budget`)
        yield* TestClock.adjust("110 millis")
        assert.isDefined(fiber.pollUnsafe(), `run ${run}: still retrying past its budget`)
        assert.isAtLeast(attempts.length, 5, `run ${run}`)
        assert.isAtMost(attempts.length, 9, `run ${run}: backing off, not spinning`)
      }
    }))

  it.effect("does not retry a permanent failure", () =>
    Effect.gen(function*() {
      const { attempts, effect } = failing(new PermanentError({ message: "never" }))
      const exit = yield* Effect.exit(effect.pipe(Effect.retry(retryPolicy("3 seconds"))))
      assert.isTrue(exit._tag === "Failure")
      assert.strictEqual(attempts.length, 1)
    }))

  it.effect("the first retry waits about 100 ms", () =>
    Effect.gen(function*() {
      const { attempts, effect } = failing(new RetryableError({ message: "busy" }))
      const fiber = yield* Effect.forkChild(Effect.exit(effect.pipe(Effect.retry(retryPolicy("1 second")))))
      yield* TestClock.adjust("79 millis")
      assert.strictEqual(attempts.length, 1)
      yield* TestClock.adjust("42 millis")
      assert.strictEqual(attempts.length, 2)
      yield* Fiber.interrupt(fiber)
    }))
})
