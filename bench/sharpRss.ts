/**
 * Peak RSS of bare sharp on one image in a fresh process, for `bench/thumbnails.ts`:
 *
 *   node bench/sharpRss.ts <file> <sizes>
 *
 * Same settings as the pipeline (cache off, concurrency 1) and the cheapest way: one decode with
 * shrink-on-load to the largest width, each smaller size from those pixels. Prints one JSON line.
 */
import { readFileSync } from "node:fs"
import { readFile } from "node:fs/promises"
import sharp from "sharp"

sharp.cache(false)
sharp.concurrency(1)
const mb = (kilobytes: number) => Math.round((kilobytes / 1024) * 10) / 10
/**
 * Peak RSS of this process in KB: VmHWM, not getrusage's maxRSS, which on Linux carries over the
 * parent's RSS at fork time into a child that is started from a large process.
 */
const peakKB = () => {
  const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"))
  return hwm === null ? process.resourceUsage().maxRSS : Number(hwm[1])
}
const afterImport = peakKB()
const [file, sizesText] = process.argv.slice(2)
const sizes = (sizesText ?? "200,100").split(",").map(Number).sort((a, b) => b - a)
const input = await readFile(file!)
const largest = await sharp(input).autoOrient().resize({ width: sizes[0]!, withoutEnlargement: true }).raw()
  .toBuffer({ resolveWithObject: true })
for (const size of sizes) {
  await sharp(largest.data, { raw: largest.info }).resize({ width: size, withoutEnlargement: true }).jpeg({ quality: 80 }).toBuffer()
}
process.stdout.write(JSON.stringify({ maxRssMB: mb(peakKB()), afterImportMB: mb(afterImport) }) + "\n")
