/**
 * The command-line entry point: `node src/bin/cli.ts <agent|produce> ...`.
 * Exit codes: 0 success, 1 failure, 2 bad usage.
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cause, Effect, Exit, Fiber, Layer, Logger } from "effect"
import { Command } from "effect/cli"
import { cli } from "../cli/main.ts"
import { Shutdown } from "../cli/Shutdown.ts"

const isUsageError = (error: unknown) =>
  typeof error === "object" && error !== null && "_tag" in error &&
  (error._tag === "UsageError" || error._tag === "PipelineNotFound" ||
    (Symbol.for("effect/cli/CliError") in error || error.constructor.name === "ShowHelp"))

// Logs go to stderr (stdout is for results): readable on a terminal, JSON lines for anything else
const logger = Layer.mergeAll(
  Logger.layer([process.stderr.isTTY ? Logger.consolePretty() : Logger.withConsoleError(Logger.formatJson)]),
  Layer.succeed(Logger.LogToStderr, true)
)

/** One line for a person: a setting that is missing or wrong names itself; other errors their message. */
const describe = (error: unknown): string | undefined => {
  if (typeof error !== "object" || error === null || !("message" in error) || typeof error.message !== "string") return undefined
  if ("_tag" in error && error._tag === "ConfigError") {
    const setting = /at \["([^"]+)"\]/.exec(error.message)?.[1]
    return `error: ${setting === undefined ? "a setting is missing or invalid" : `the setting ${setting} is missing or invalid`} (${error.message.replace(/\s+/g, " ")})`
  }
  return `error: ${error.message}`
}

let fiber: Fiber.Fiber<unknown, unknown> | undefined
const program = Command.run(cli, { version: "0.1.0" }).pipe(
  Effect.provide(Layer.mergeAll(NodeServices.layer, logger, Shutdown.onSignals(() => fiber?.interruptUnsafe())))
)

fiber = Effect.runFork(program)
fiber.addObserver((exit) => {
  if (Exit.isSuccess(exit)) return process.exit(0)
  if (Cause.hasInterruptsOnly(exit.cause)) return process.exit(130)
  const error = Cause.squash(exit.cause)
  if (isUsageError(error)) {
    if (!(typeof error === "object" && error !== null && "errors" in error)) console.error(String((error as Error).message ?? error))
    return process.exit(2)
  }
  console.error(describe(error) ?? Cause.pretty(exit.cause))
  process.exit(1)
})
