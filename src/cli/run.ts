/**
 * The command line, run by effect's `runMain`
 * (SIGINT and SIGTERM interrupt the command; long-running ones stop gracefully, see `graceful`).
 * Exit codes: 0 success or a stop by signal, 1 failure, 2 bad usage.
 */
import { createRequire } from "node:module"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cause, Config, Console, Effect, Exit, Layer, Logger, Runtime } from "effect"
import { CliError, CliOutput, Command } from "effect/cli"
import { savedSettingsLayer } from "../services/SavedSettings.ts"
import { logLevelLayer, settingProblem } from "../services/settings.ts"
import { cli } from "./main.ts"

// Logs go to stderr (stdout is for results): readable on a terminal, JSON lines for anything else
const logger = Layer.mergeAll(
  Logger.layer([process.stderr.isTTY ? Logger.consolePretty() : Logger.withConsoleError(Logger.formatJson)]),
  Layer.succeed(Logger.LogToStderr, true)
)

// errors a command reports itself (`CliError.userMessage`) read as one line, like every other error here
const output = CliOutput.layer({ ...CliOutput.defaultFormatter(), formatError: (error) => `error: ${error.message}` })

/** One line for a person, for errors the CLI has not already shown. */
const reportFailure = (cause: Cause.Cause<unknown>) => {
  if (Cause.hasInterruptsOnly(cause)) return Effect.void
  const error = Cause.squash(cause)
  if (CliError.isCliError(error) || (typeof error === "object" && error !== null && CliError.getUserMessage(error) !== undefined)) {
    return Effect.void
  }
  if (error instanceof Config.ConfigError) return Console.error(`error: ${settingProblem(error)}`)
  if (error instanceof Error && Cause.hasFails(cause)) return Console.error(`error: ${error.message}`)
  return Console.error(Cause.pretty(cause))
}

/** Effect's exit codes, but bad usage is 2 and a stop by signal (after a graceful finish) is 0. */
const teardown: Runtime.Teardown = (exit, onExit) => {
  if (Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause)) return onExit(0)
  if (Exit.isFailure(exit)) {
    const error = Cause.squash(exit.cause)
    if (CliError.isCliError(error) && error._tag === "ShowHelp" && error.errors.length > 0) return onExit(2)
  }
  return Runtime.defaultTeardown(exit, onExit)
}

// the same from src/cli/ and from the compiled lib/cli/
const { version } = createRequire(import.meta.url)("../../package.json") as { readonly version: string }

Command.run(cli, { version }).pipe(
  // PIPELINE_LOG_LEVEL; inside the report, so that a wrong value is reported like any setting
  Effect.provide(logLevelLayer),
  // what the environment leaves unset, from the data dir's settings.json (npm start saves IMAGE_SOURCE there)
  Effect.provide(savedSettingsLayer),
  Effect.tapCause(reportFailure),
  Effect.provide(Layer.mergeAll(NodeServices.layer, logger, output)),
  (program) => NodeRuntime.runMain(program, { disableErrorReporting: true, teardown })
)
