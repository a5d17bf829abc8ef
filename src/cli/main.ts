/** The whole command line: `agent`, `produce`, `start`, `status`, `dlq`, `trace`, `diagram`, `build`, `deploy` and `publish`. */
import { Command } from "effect/cli"
import { agent, produceCommand, root } from "./commands.ts"
import { buildCommand, deployCommand, publishCommand } from "./deploy.ts"
import { diagram, dlq, status, trace } from "./operate.ts"
import { start } from "./start.ts"

export const cli = root.pipe(Command.withSubcommands([agent, produceCommand, start, status, dlq, trace, diagram, buildCommand, deployCommand, publishCommand]))
