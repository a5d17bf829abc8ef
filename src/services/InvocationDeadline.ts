/**
 * When the current invocation must have answered (epoch ms): a Lambda's deadline, which the
 * handler sets from its context. None elsewhere (the agent's own process has no deadline).
 * The engine runs ahead only while there is time left before it.
 */
import { Context, Option } from "effect"

export const InvocationDeadline = Context.Reference<Option.Option<number>>("pipeline/services/InvocationDeadline", {
  defaultValue: () => Option.none()
})
