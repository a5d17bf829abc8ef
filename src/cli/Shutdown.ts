/**
 * SIGINT/SIGTERM for commands that stop gracefully. While a command is inside `Shutdown.graceful`,
 * the first signal asks it to stop (it finishes its work and exits 0); otherwise, or on a second
 * signal, the program is interrupted.
 */
import { Context, Deferred, Effect, Exit, Layer } from "effect"

export class Shutdown extends Context.Service<Shutdown, {
  /** Runs `body` with a Deferred completed when a stop is requested. */
  graceful<A, E, R>(body: (stop: Deferred.Deferred<void>) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R>
}>()("pipeline/cli/Shutdown") {
  /** Never asks to stop: for tests and embedded use. */
  static readonly never = Layer.succeed(Shutdown, Shutdown.of({ graceful: (body) => Effect.suspend(() => body(Deferred.makeUnsafe<void>())) }))

  /** Listens to process signals; `interrupt` ends the program the hard way. */
  static readonly onSignals = (interrupt: () => void) =>
    Layer.effect(
      Shutdown,
      Effect.gen(function*() {
        const requested = Deferred.makeUnsafe<void>()
        let gracefulBodies = 0
        let signals = 0
        const onSignal = () => {
          signals++
          if (signals === 1 && gracefulBodies > 0) Deferred.doneUnsafe(requested, Exit.void)
          else interrupt()
        }
        yield* Effect.acquireRelease(
          Effect.sync(() => {
            process.on("SIGINT", onSignal)
            process.on("SIGTERM", onSignal)
          }),
          () =>
            Effect.sync(() => {
              process.off("SIGINT", onSignal)
              process.off("SIGTERM", onSignal)
            })
        )
        return Shutdown.of({
          graceful: (body) =>
            Effect.acquireUseRelease(
              Effect.sync(() => gracefulBodies++),
              () => body(requested),
              () => Effect.sync(() => gracefulBodies--)
            )
        })
      })
    )
}
