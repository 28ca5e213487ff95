import config from "../../deno.json" with { type: "json" };

/** courier's version, stamped from `deno.json` (embedded in compiled binaries). */
export const VERSION: string = config.version;
