/**
 * moto's server, the AWS-compatible endpoint the integration tests talk to.
 * Installed on first use into a git-ignored virtualenv, started on a free loopback port.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process"
import { existsSync } from "node:fs"
import { createServer } from "node:net"
import { join } from "node:path"

export const MOTO_VERSION = "5.2.5"
const venv = join(import.meta.dirname, "..", "..", ".tools", `moto-${MOTO_VERSION}`)
const motoServer = join(venv, "bin", "moto_server")

const run = (command: string, args: ReadonlyArray<string>) => {
  const result = spawnSync(command, args, { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" })
  if (result.error !== undefined || result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} failed:\n${result.error?.message ?? ""}${result.stderr}`)
  }
}

export const ensureMotoInstalled = (): string => {
  if (existsSync(motoServer)) return motoServer
  const probe = spawnSync("python3", ["--version"])
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error("The integration tests need python3 (3.9 or newer, with venv) to run moto's server: install python3 and python3-venv.")
  }
  run("python3", ["-m", "venv", venv])
  run(join(venv, "bin", "pip"), ["install", "--quiet", "--disable-pip-version-check", `moto[server]==${MOTO_VERSION}`])
  return motoServer
}

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port")))
    })
  })

export interface Moto {
  readonly endpoint: string
  /** The server's process, for benchmarks that count its CPU time. */
  readonly pid: number
  readonly stop: () => Promise<void>
}

export const startMoto = async (): Promise<Moto> => {
  const binary = ensureMotoInstalled()
  const port = await freePort()
  const endpoint = `http://127.0.0.1:${port}`
  const child: ChildProcess = spawn(binary, ["-H", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "ignore", "pipe"] })
  let stderr = ""
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  const deadline = Date.now() + 60_000
  while (true) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}:\n${stderr}`)
    try {
      const response = await fetch(`${endpoint}/moto-api/`)
      if (response.ok) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`moto_server did not start within 60 s:\n${stderr}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve()
      child.once("exit", () => resolve())
      child.kill("SIGTERM")
    })
  return { endpoint, pid: child.pid!, stop }
}
