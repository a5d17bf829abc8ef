/** The whole command line: `agent`, `produce`, `start`, `status`, `dlq`, `trace` and `diagram`. */
import { Command } from "effect/cli"
import { agent, produceCommand, root } from "./commands.ts"
import { diagram, dlq, status, trace } from "./operate.ts"
import { start } from "./start.ts"

export const cli = root.pipe(Command.withSubcommands([agent, produceCommand, start, status, dlq, trace, diagram]))
