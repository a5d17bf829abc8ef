/** The one retry policy: bounded by its budget whatever the jitter, and only for retryable failures. */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Exit, Fiber, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { PermanentError, RetryableError } from "../../src/domain/errors.ts"
import { retryOnFailure, retryPolicy } from "../../src/programs/retry.ts"

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

describe("retryOnFailure", () => {
  /** Runs `retrying` over an effect that fails its first `failures` attempts, on the test clock: when each attempt was made, and the end. */
  const attemptTimes = (
    failures: number,
    retrying: (effect: Effect.Effect<string, RetryableError | PermanentError>) => Effect.Effect<string, RetryableError | PermanentError>
  ) =>
    Effect.gen(function*() {
      const times: Array<number> = []
      const start = yield* Clock.currentTimeMillis
      const effect = Effect.gen(function*() {
        times.push((yield* Clock.currentTimeMillis) - start)
        if (times.length === 1 && failures < 0) return yield* new PermanentError({ message: "never" })
        if (times.length <= failures) return yield* new RetryableError({ message: `busy ${times.length}` })
        return "done"
      })
      const fiber = yield* Effect.forkChild(Effect.exit(retrying(effect)))
      for (let step = 0; step < 300 && fiber.pollUnsafe() === undefined; step++) yield* TestClock.adjust("10 millis")
      return { times, exit: yield* Fiber.join(fiber) }
    })

  // a schedule that reads its elapsed time, as the retry policy does: it must start where Effect.retry's does
  const schedule = Schedule.exponential("100 millis").pipe(
    Schedule.while(({ elapsed, input }: Schedule.Metadata<Duration.Duration, RetryableError | PermanentError>) =>
      input._tag === "RetryableError" && elapsed < 1_000
    )
  )

  it.effect("makes the attempts Effect.retry makes, at the same times, and ends the same way", () =>
    Effect.gen(function*() {
      for (const failures of [-1, 0, 1, 3, 20]) {
        const expected = yield* attemptTimes(failures, (effect) => Effect.retry(effect, schedule))
        const actual = yield* attemptTimes(failures, (effect) => retryOnFailure(effect, schedule))
        assert.deepStrictEqual(actual.times, expected.times, `${failures} failures`)
        assert.deepStrictEqual(actual.exit, expected.exit, `${failures} failures`)
      }
      // the cases say something: a success at once, a retried success, a give-up with the last error
      assert.strictEqual((yield* attemptTimes(0, (effect) => retryOnFailure(effect, schedule))).times.length, 1)
      const retried = yield* attemptTimes(3, (effect) => retryOnFailure(effect, schedule))
      assert.deepStrictEqual(retried.times, [0, 100, 300, 700])
      assert.isTrue(Exit.isSuccess(retried.exit))
      const givenUp = yield* attemptTimes(20, (effect) => retryOnFailure(effect, schedule))
      assert.isTrue(Exit.isFailure(givenUp.exit))
      assert.strictEqual(givenUp.times.length, 5)
    }))
})
