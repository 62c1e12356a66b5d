/** The release version; `deno task compile` also stamps the commit (see scripts/). */
export const VERSION = "0.1.0";
