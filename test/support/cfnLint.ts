/**
 * cfn-lint in a git-ignored virtualenv under .tools/, installed once by the global setup (so the
 * first run's pip install is not charged to the template test's own time).
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"

const CFN_LINT_VERSION = "1.58.0"
const venv = join(import.meta.dirname, "..", "..", ".tools", `cfn-lint-${CFN_LINT_VERSION}`)
export const python = join(venv, "bin", "python")
export const cfnLint = join(venv, "bin", "cfn-lint")

export const ensureCfnLint = () => {
  if (existsSync(cfnLint)) return
  for (const [command, args] of [
    ["python3", ["-m", "venv", venv]],
    [join(venv, "bin", "pip"), ["install", "--quiet", "--disable-pip-version-check", `cfn-lint==${CFN_LINT_VERSION}`]]
  ] as const) {
    const result = spawnSync(command, args, { encoding: "utf8" })
    if (result.error !== undefined || result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed:\n${result.stderr}`)
  }
}
