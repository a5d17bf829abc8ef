/** The whole command line: `agent`, `produce` and `start`. */
import { Command } from "effect/cli"
import { agent, produceCommand, root } from "./commands.ts"
import { start } from "./start.ts"

export const cli = root.pipe(Command.withSubcommands([agent, produceCommand, start]))
