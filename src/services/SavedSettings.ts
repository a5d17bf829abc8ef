/**
 * Settings saved in the data dir: `<PIPELINE_DATA_DIR>/settings.json` fills in what the
 * environment leaves unset (`npm start` saves the `IMAGE_SOURCE` of its samples there).
 */
import { join } from "node:path"
import { ConfigProvider, Effect, FileSystem, Layer, Option, Schema, type Config } from "effect"
import { DataDirConfig } from "./DataDir.ts"

/** Settings the environment leaves unset, read from this file in `PIPELINE_DATA_DIR` (`npm start` saves `IMAGE_SOURCE` there). */
export const SETTINGS_FILE = "settings.json"

export class SettingsFileError extends Schema.TaggedError<SettingsFileError>()("SettingsFileError", { message: Schema.String }) {}

const SavedSettings = Schema.fromJsonString(Schema.Record(Schema.String, Schema.String))
const decodeSaved = Schema.decodeUnknownEffect(SavedSettings)

const readSaved = (path: string) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(path).pipe(Effect.option)
    if (Option.isNone(text)) return Option.none<Record<string, string>>()
    const values = yield* decodeSaved(text.value).pipe(
      Effect.mapError((error) => new SettingsFileError({ message: `${path} is not a JSON object of settings (names to strings): ${error.message}` }))
    )
    return Option.some(values)
  })

/** The settings of `<PIPELINE_DATA_DIR>/settings.json` under the environment's: the environment wins, the file fills in. */
export const savedSettingsLayer: Layer.Layer<never, SettingsFileError | Config.ConfigError, FileSystem.FileSystem> = Layer.unwrap(
  Effect.gen(function*() {
    const path = join(yield* DataDirConfig, SETTINGS_FILE)
    const saved = yield* readSaved(path)
    return Option.isNone(saved) ? Layer.empty : ConfigProvider.layerAdd(ConfigProvider.fromUnknown(saved.value))
  })
)

/** Saves `values` in `<dataDir>/settings.json`, keeping the other settings there. */
export const saveSettings = Effect.fn("saveSettings")(function*(dataDir: string, values: Readonly<Record<string, string>>) {
  const fs = yield* FileSystem.FileSystem
  const path = join(dataDir, SETTINGS_FILE)
  const saved = Option.getOrElse(yield* readSaved(path), () => ({}))
  yield* fs.makeDirectory(dataDir, { recursive: true })
  yield* fs.writeFileString(path, `${JSON.stringify({ ...saved, ...values }, null, 2)}\n`)
})
