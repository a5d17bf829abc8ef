/** The whole command line: `agent`, `produce`, `start`, `status` and `dlq`. */
import { Command } from "effect/cli"
import { agent, produceCommand, root } from "./commands.ts"
import { dlq, status } from "./operate.ts"
import { start } from "./start.ts"

export const cli = root.pipe(Command.withSubcommands([agent, produceCommand, start, status, dlq]))
