/**
 * The function run the way Lambda runs it: the zip unpacked as the task root, AWS's Runtime
 * Interface Emulator (built from its Go module) in front, AWS's Node runtime client
 * (`aws-lambda-ric`, its native part built against this project's Node 24) loading the handler.
 * Both are built on first use into git-ignored folders under .tools/, like moto; a machine that
 * cannot build them fails the test saying which tool and why, in its first line.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs"
import { connect } from "node:net"
import { dirname, join } from "node:path"
import { unzipSync } from "fflate"
import { freePort } from "./moto.ts"

/** The emulator's module has no tags: a pseudo-version pins the commit (2026-10-30). */
export const RIE_VERSION = "v0.0.0-20261030222936-bef5c4ba774d"
export const RIC_VERSION = "4.0.2"

const tools = join(import.meta.dirname, "..", "..", ".tools")
const rieDir = join(tools, `aws-lambda-rie-${RIE_VERSION}`)
const rieBinary = join(rieDir, "aws-lambda-rie")
const ricDir = join(tools, `aws-lambda-ric-${RIC_VERSION}`)
export const ricEntry = join(ricDir, "node_modules", "aws-lambda-ric", "index.mjs")
const ricNative = join(ricDir, "node_modules", "aws-lambda-ric", "rapid-client.node")

const run = (tool: string, command: string, args: ReadonlyArray<string>, options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) => {
  const result = spawnSync(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8", maxBuffer: 64 * 1024 * 1024 })
  if (result.error !== undefined || result.status !== 0) {
    const output = `${result.error?.message ?? ""}${result.stdout}${result.stderr}`.trim().split("\n").slice(-30).join("\n")
    throw new Error(`cannot build ${tool}: ${command} ${args.join(" ")} failed\n${output}`)
  }
}

/** Builds into a temporary folder and renames it, so an interrupted or concurrent build never looks complete. */
const buildInto = (dir: string, done: string, make: (staging: string) => void) => {
  if (existsSync(done)) return
  const staging = `${dir}.${process.pid}.tmp`
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging, { recursive: true })
  make(staging)
  rmSync(dir, { recursive: true, force: true })
  try {
    renameSync(staging, dir)
  } catch (error) {
    if (!existsSync(done)) throw error
    rmSync(staging, { recursive: true, force: true })
  }
}

/** The emulator: `go install` of its module at `RIE_VERSION` (Go from PATH; the module proxy or a module cache). */
export const ensureRie = (): string => {
  buildInto(rieDir, rieBinary, (staging) =>
    run("the Lambda Runtime Interface Emulator (needs Go)", "go", [
      "install",
      `github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@${RIE_VERSION}`
    ], { env: { ...process.env, GOBIN: staging, CGO_ENABLED: "0" } }))
  return rieBinary
}

/**
 * The runtime client: npm installs it with its install scripts, which build curl and
 * aws-lambda-cpp (cmake, make, a C/C++ compiler) and its addon with node-gyp against the Node
 * running this (Node 24). Not a project dependency: only this test needs it, and its build takes minutes.
 */
export const ensureRic = (): string => {
  buildInto(ricDir, ricNative, (staging) => {
    writeFileSync(join(staging, "package.json"), `${JSON.stringify({ private: true, allowScripts: { "aws-lambda-ric": true } })}\n`)
    // the Node that runs this (the project's 24), first on PATH for npm, its scripts and node-gyp
    const path = `${dirname(process.execPath)}:${process.env["PATH"] ?? ""}`
    run("the Lambda runtime client aws-lambda-ric (needs cmake, make and a C/C++ compiler)", "npm", [
      "install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund", `aws-lambda-ric@${RIC_VERSION}`
    ], { cwd: staging, env: { ...process.env, PATH: path } })
  })
  return ricEntry
}

/** Unpacks a function's zip into `dir` (emptied first), as Lambda unpacks it into /var/task. */
export const unpackZip = (zip: string, dir: string): string => {
  rmSync(dir, { recursive: true, force: true })
  for (const [name, data] of Object.entries(unzipSync(readFileSync(zip)))) {
    if (name.endsWith("/")) continue
    const path = join(dir, name)
    mkdirSync(dirname(path), { recursive: true })
    writeFileSync(path, data)
  }
  return dir
}

export interface Invocation {
  readonly status: number
  readonly body: unknown
  /** From sending the invoke to the answer's last byte (without the wait for the last log lines). */
  readonly millis: number
  /** What the runtime wrote while this invocation ran (its and the function's log lines). */
  readonly logs: ReadonlyArray<string>
}

export interface LambdaContainer {
  /** The emulator's process id; the runtime is its child. */
  readonly pid: number
  readonly invoke: (event: unknown) => Promise<Invocation>
  /** Every line written so far, the emulator's own included. */
  readonly output: () => ReadonlyArray<string>
  readonly stop: () => Promise<void>
}

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1")
    socket.once("connect", () => {
      socket.destroy()
      resolve(true)
    })
    socket.once("error", () => resolve(false))
  })

export interface ContainerOptions {
  /** The unpacked zip. */
  readonly taskRoot: string
  /** The function's handler setting, e.g. `dist/lambda/handler.handler`. */
  readonly handler: string
  /** The function's environment (the AWS endpoint and credentials included). */
  readonly environment: Readonly<Record<string, string>>
}

/**
 * One execution environment: the emulator running the runtime client on the task root. The
 * emulator runs init on the first invoke, as Lambda does for an on-demand cold start.
 */
export const startContainer = async (options: ContainerOptions): Promise<LambdaContainer> => {
  const rie = ensureRie()
  const ric = ensureRic()
  const port = await freePort()
  // the runtime API's port too: its default, 9001, would be taken by a second container
  const runtimeApiPort = await freePort()
  // only what Lambda would give the function, not this machine's environment
  const env: Record<string, string> = {
    PATH: `${dirname(process.execPath)}:/usr/bin:/bin`,
    LAMBDA_TASK_ROOT: options.taskRoot,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "128",
    ...options.environment
  }
  const child: ChildProcess = spawn(rie, [
    "--runtime-interface-emulator-address", `127.0.0.1:${port}`,
    "--runtime-api-address", `127.0.0.1:${runtimeApiPort}`,
    "--log-level", "error",
    process.execPath, ric, options.handler
    // its own process group: stopping it stops the runtime it started too
  ], { cwd: options.taskRoot, env, stdio: ["ignore", "pipe", "pipe"], detached: true })
  const lines: Array<string> = []
  let partial = ""
  const collect = (chunk: Buffer) => {
    const text = partial + chunk.toString()
    const parts = text.split("\n")
    partial = parts.pop() ?? ""
    lines.push(...parts)
  }
  child.stdout?.on("data", collect)
  child.stderr?.on("data", collect)
  const deadline = Date.now() + 10_000
  while (!(await listening(port))) {
    if (child.exitCode !== null) throw new Error(`aws-lambda-rie exited with ${child.exitCode}:\n${lines.join("\n")}`)
    if (Date.now() > deadline) throw new Error(`aws-lambda-rie did not listen within 10 s:\n${lines.join("\n")}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const invoke = async (event: unknown): Promise<Invocation> => {
    const before = lines.length
    const started = performance.now()
    const response = await fetch(`http://127.0.0.1:${port}/2015-03-31/functions/function/invocations`, {
      method: "POST",
      body: JSON.stringify(event)
    })
    const text = await response.text()
    const millis = performance.now() - started
    // the runtime's last lines may still be in the pipe
    await new Promise((resolve) => setTimeout(resolve, 100))
    return { status: response.status, body: text === "" ? null : JSON.parse(text), millis, logs: lines.slice(before) }
  }
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      child.once("exit", () => resolve())
      process.kill(-child.pid!, "SIGKILL")
    })
  return { pid: child.pid!, invoke, output: () => [...lines], stop }
}
