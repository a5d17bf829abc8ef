/**
 * A gentle stop for long-running commands. Under `runMain`, SIGINT and SIGTERM interrupt the
 * command; `graceful` turns that interruption into a request: `stop` completes, and the command
 * waits for the body to finish its work (and say what it did) before it ends. A second signal
 * while it waits ends the process at once (exit 130), as a second Ctrl-C does elsewhere.
 */
import { Deferred, Effect, Fiber } from "effect"

const exitNow = () => process.exit(130)

/** While `effect` runs, a SIGINT or SIGTERM ends the process at once. */
const secondSignalExits = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      process.once("SIGINT", exitNow)
      process.once("SIGTERM", exitNow)
    }),
    () => effect,
    () =>
      Effect.sync(() => {
        process.off("SIGINT", exitNow)
        process.off("SIGTERM", exitNow)
      })
  )

export const graceful = <A, E, R>(body: (stop: Deferred.Deferred<void>) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const stop = yield* Deferred.make<void>()
    // detached, so interrupting this fiber does not interrupt the body: only `stop` reaches it
    const running = yield* Effect.forkDetach(body(stop))
    return yield* Fiber.join(running).pipe(
      Effect.onInterrupt(() => secondSignalExits(Deferred.succeed(stop, undefined).pipe(Effect.andThen(Fiber.await(running)))))
    )
  })
