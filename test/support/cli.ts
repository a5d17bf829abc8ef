/**
 * The command line as a user runs it: `node src/bin/cli.ts ...` in a child process.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { join } from "node:path"

export interface CliResult {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export interface StartedCli {
  readonly child: ChildProcess
  readonly exit: Promise<CliResult>
}

/**
 * Node's compile cache for the children (V8 code and stripped TypeScript), shared by every launch
 * of a run: a launch spends about a third less CPU loading modules. Only a cache, never behaviour.
 */
const compileCache = join(import.meta.dirname, "..", "..", "node_modules", ".cache", "node-compile-cache")

/**
 * The child's environment: this process's without its PIPELINE_* settings (a developer's shell may
 * point at a real queue), with `env` on top (`undefined` removes a variable).
 */
export const cliEnv = (env: Readonly<Record<string, string | undefined>> = {}): NodeJS.ProcessEnv => {
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith("PIPELINE_"))
  const merged: Record<string, string | undefined> = { NODE_COMPILE_CACHE: compileCache, ...Object.fromEntries(inherited), ...env }
  for (const [name, value] of Object.entries(merged)) if (value === undefined) delete merged[name]
  return merged
}

const running = new Set<ChildProcess>()

/** SIGKILLs every command line still running, so a failed test leaves no agent behind (for `afterEach`). */
export const killRunningClis = () => {
  for (const child of running) child.kill("SIGKILL")
  running.clear()
}

/**
 * Starts `node src/bin/cli.ts ...args`; `stdin` is written and closed (none: an empty stdin).
 * `command` runs another program instead, e.g. `script` for a pseudo-terminal.
 */
export const startCli = (
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>> = {},
  options: { readonly stdin?: string; readonly command?: { readonly file: string; readonly args: ReadonlyArray<string> } } = {}
): StartedCli => {
  const file = options.command?.file ?? process.execPath
  const argv = options.command?.args ?? ["src/bin/cli.ts", ...args]
  const child = spawn(file, argv, { env: cliEnv(env), stdio: ["pipe", "pipe", "pipe"] })
  running.add(child)
  child.on("exit", () => running.delete(child))
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
  child.stdin!.end(options.stdin ?? "")
  const exit = new Promise<CliResult>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })))
  return { child, exit }
}

/** Runs the command line to its end. */
export const runCli = (
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>> = {},
  options: { readonly stdin?: string } = {}
): Promise<CliResult> => startCli(args, env, options).exit

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `condition` every 100 ms until it holds; fails naming `what` after `timeoutMs`. */
export const waitFor = async (condition: () => Promise<boolean>, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}
