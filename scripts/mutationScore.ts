/**
 * Mutation score per folder from Stryker's JSON report (`npm run test:mutation` writes it).
 *
 *   node scripts/mutationScore.ts [reports/mutation/mutation.json] [--survivors]
 *
 * Score = detected / (detected + undetected), as Stryker counts it: killed and timed-out mutants
 * are detected, survivors and mutants no test reaches are not; compile errors are left out.
 */
import { readFileSync } from "node:fs"
import { dirname } from "node:path"

interface Mutant {
  readonly mutatorName: string
  readonly replacement?: string
  readonly status: string
  readonly location: { readonly start: { readonly line: number; readonly column: number } }
}
interface Report {
  readonly files: Readonly<Record<string, { readonly mutants: ReadonlyArray<Mutant> }>>
}

const args = process.argv.slice(2)
const path = args.find((arg) => !arg.startsWith("--")) ?? "reports/mutation/mutation.json"
const report = JSON.parse(readFileSync(path, "utf8")) as Report

const DETECTED = new Set(["Killed", "Timeout"])
const UNDETECTED = new Set(["Survived", "NoCoverage"])

interface Tally { detected: number; undetected: number; survived: number; noCoverage: number }
const tallies = new Map<string, Tally>()
const tally = (key: string): Tally => {
  let found = tallies.get(key)
  if (found === undefined) {
    found = { detected: 0, undetected: 0, survived: 0, noCoverage: 0 }
    tallies.set(key, found)
  }
  return found
}

const survivors: Array<string> = []
for (const [file, { mutants }] of Object.entries(report.files)) {
  for (const mutant of mutants) {
    for (const key of [dirname(file), "total"]) {
      const t = tally(key)
      if (DETECTED.has(mutant.status)) t.detected++
      if (UNDETECTED.has(mutant.status)) t.undetected++
      if (mutant.status === "Survived") t.survived++
      if (mutant.status === "NoCoverage") t.noCoverage++
    }
    if (UNDETECTED.has(mutant.status)) {
      const { line, column } = mutant.location.start
      const replacement = (mutant.replacement ?? "").replace(/\s+/g, " ").slice(0, 100)
      survivors.push(`${file}:${line}:${column} ${mutant.status} ${mutant.mutatorName}: ${replacement}`)
    }
  }
}

const score = (t: Tally) => t.detected + t.undetected === 0 ? "n/a" : `${(100 * t.detected / (t.detected + t.undetected)).toFixed(2)}%`
const rows = [...tallies].sort(([a], [b]) => (a === "total" ? 1 : b === "total" ? -1 : a.localeCompare(b)))
console.log("folder".padEnd(16), "score".padStart(8), "killed".padStart(7), "survived".padStart(9), "no cov".padStart(7))
for (const [folder, t] of rows) {
  console.log(folder.padEnd(16), score(t).padStart(8), String(t.detected).padStart(7), String(t.survived).padStart(9), String(t.noCoverage).padStart(7))
}
if (args.includes("--survivors")) for (const line of survivors) console.log(line)
