/**
 * `build`, `deploy` and `publish`: the function's zip and the stack on AWS (src/deploy/ does the
 * work). The shared `--pipeline` names a built-in pipeline (the function runs it by PIPELINE_NAME)
 * or an author's module, which is bundled into the function, so the handler needs no registry.
 */
import { Console, Effect, Option, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import { architectures, build, defaultArchitecture, report } from "../deploy/build.ts"
import { deploy as deployStack, printOutputs } from "../deploy/deploy.ts"
import { publish as publishCode } from "../deploy/publish.ts"
import { builtinPipelines } from "../pipelines/index.ts"
import { root, UsageError } from "./commands.ts"

export class DeployFailed extends Schema.TaggedError<DeployFailed>()("DeployFailed", { message: Schema.String }) {}

/** A failure of the AWS SDK or the build, as one line, with what to do about missing credentials. */
const attempt = <A>(run: () => Promise<A>) =>
  Effect.tryPromise({
    try: run,
    catch: (error) => {
      const message = error instanceof Error ? error.message : String(error)
      const hint = /Could not load credentials|Region is missing/i.test(message)
        ? " (configure AWS credentials and a region in the default chain: AWS_PROFILE, aws configure, aws sso login, or AWS_* variables)"
        : ""
      return new DeployFailed({ message: message + hint })
    }
  })

const arch = Flag.Literals("arch", architectures).pipe(
  Flag.withDescription(`The function's architecture (default ${defaultArchitecture}; an existing stack keeps its own)`),
  Flag.optional
)

/** `--pipeline`: a built-in name is PIPELINE_NAME for the built-in bundle; anything else is a module to bundle. */
const pipelineChoice = Effect.map(root, ({ pipeline }) =>
  Option.match(pipeline, {
    onNone: () => ({ builtin: undefined, path: undefined }),
    onSome: (value) => (value in builtinPipelines ? { builtin: value, path: undefined } : { builtin: undefined, path: value })
  }))

export const buildCommand = Command.make(
  "build",
  { arch },
  Effect.fn("cli.build")(function*(flags) {
    const { path } = yield* pipelineChoice
    const architecture = Option.getOrElse(flags.arch, () => defaultArchitecture)
    const result = yield* attempt(() => build(architecture, path))
    yield* Effect.sync(() => report(result, architecture))
  })
).pipe(Command.withDescription("Build the Lambda function's zip into dist/ (with --pipeline ./module.ts, your pipeline's)"))

export const deployCommand = Command.make(
  "deploy",
  {
    stack: Flag.String("stack").pipe(Flag.withDescription("The CloudFormation stack (created on first use)")),
    arch,
    memory: Flag.Int("memory").pipe(Flag.withDescription("The function's memory in MB (MemorySize)"), Flag.optional),
    imageSource: Flag.String("image-source").pipe(
      Flag.withDescription("IMAGE_SOURCE for the thumbnail pipeline, a template with {stock_no}"),
      Flag.optional
    ),
    param: Flag.KeyValuePair("param").pipe(
      Flag.withDescription("Any other template parameter, KEY=VALUE, repeatable (e.g. FunctionTimeout=120)"),
      Flag.optional
    )
  },
  Effect.fn("cli.deploy")(function*(flags) {
    const { builtin, path } = yield* pipelineChoice
    const parameters: Record<string, string> = { ...Option.getOrElse(flags.param, () => ({})) }
    for (const key of Object.keys(parameters)) {
      if (!/^[A-Za-z0-9]+$/.test(key)) return yield* new UsageError({ message: `--param wants KEY=VALUE with a parameter name as KEY, not ${key}` })
    }
    if (Option.isSome(flags.memory)) parameters["MemorySize"] = String(flags.memory.value)
    if (Option.isSome(flags.imageSource)) parameters["ImageSource"] = flags.imageSource.value
    if (builtin !== undefined) parameters["PipelineName"] = builtin
    const result = yield* attempt(() =>
      deployStack({ stackName: flags.stack, parameters, arch: Option.getOrUndefined(flags.arch), pipelinePath: path })
    )
    yield* Console.log("Outputs:")
    yield* Effect.sync(() => printOutputs(result.outputs))
  })
).pipe(Command.withDescription("Build if needed, then create or update the whole pipeline on AWS (infra/template.yaml)"))

export const publishCommand = Command.make(
  "publish",
  {
    stack: Flag.String("stack").pipe(Flag.withDescription("The stack whose function to update"), Flag.optional),
    function: Flag.String("function").pipe(Flag.withDescription("The function to update"), Flag.optional)
  },
  Effect.fn("cli.publish")(function*(flags) {
    if (Option.isSome(flags.stack) === Option.isSome(flags.function)) {
      return yield* new UsageError({ message: "give --stack NAME or --function NAME" })
    }
    const { path } = yield* pipelineChoice
    const result = yield* attempt(() =>
      publishCode({ stackName: Option.getOrUndefined(flags.stack), functionName: Option.getOrUndefined(flags.function), pipelinePath: path })
    )
    yield* Console.log(`Published ${result.functionName} (${result.arch}): CodeSha256 ${result.codeSha256}`)
  })
).pipe(Command.withDescription("Replace the deployed function's code only (UpdateFunctionCode), after a deploy"))
