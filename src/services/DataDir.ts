/** `PIPELINE_DATA_DIR`: where the embedded queue and bucket live; default `.pipeline` in the working directory. */
import { Config } from "effect"

export const DataDirConfig = Config.String("PIPELINE_DATA_DIR").pipe(Config.withDefault(".pipeline"))
